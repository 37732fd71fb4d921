//! Notifications: the channels (email, webhook), the messages they carry,
//! and the notifier that delivers the outbox through outages.

pub mod channel;
pub mod config;
pub mod message;
pub mod notifier;
