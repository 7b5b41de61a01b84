//! Kafka v2 record batch header (bytes only). Implemented by the storage work.
