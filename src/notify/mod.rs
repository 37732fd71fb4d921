//! Notifications: the channels (email, webhook), the messages they carry,
//! and the delivery of the outbox through outages.

pub mod config;
pub mod message;
