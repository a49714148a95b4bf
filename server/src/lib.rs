//! caruso: a lightweight contact-center communication server.
//!
//! Protocol cores (`sip::{message,transaction,dialog}`, `media::*`) are sans-IO: time is
//! an input and they never touch a socket. `sip::transport`, `call`, `api` and `store` do IO.
#![warn(missing_docs)]

pub mod acd;
pub mod api;
pub mod call;
pub mod config;
pub mod dialer;
pub mod events;
pub mod hooks;
pub mod ivr;
pub mod media;
pub mod metrics;
pub mod monitor;
pub mod registry;
pub mod server;
pub mod sip;
pub mod store;
pub mod voicemail;
