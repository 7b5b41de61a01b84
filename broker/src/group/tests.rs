//! Coordinator scenarios without a network: the state machine and the timer.
