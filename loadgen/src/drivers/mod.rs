//! Client drivers: `native` (this crate's minimal Kafka client) and `rdkafka` (librdkafka).

pub mod native;
pub mod rdkafka;
