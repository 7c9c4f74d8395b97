//! The brokers, one file each; each implements [`super::source::Source`].

pub mod aws;
pub mod jetstream;
pub mod kinesis;
pub mod rabbitmq;
pub mod redis_streams;
pub mod sqs;

/// A broker URL without its password, for messages.
pub fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}
