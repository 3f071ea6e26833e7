//! Publishing to RabbitMQ (AMQP 0-9-1) with publisher confirms, as sapcc `audittools` does
//! for Hermes, but losing nothing the broker did not confirm.
//!
//! - [`config`]: [`RabbitMqConfig`](crate::RabbitMqConfig), plain data read from code, the
//!   configuration document or the environment (in every build);
//! - [`publish`]: [`RabbitMqSink`](crate::RabbitMqSink) on lapin (feature `rabbitmq`);
//! - `size`: the broker's limit on a message's size, learned from its refusal.

pub(crate) mod config;
#[cfg(feature = "rabbitmq")]
pub(crate) mod publish;
#[cfg(feature = "rabbitmq")]
mod size;

pub use config::RabbitMqConfig;
#[cfg(feature = "rabbitmq")]
pub use publish::RabbitMqSink;
