//! Response framing.
