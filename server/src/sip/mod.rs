//! SIP: message codec, transactions (RFC 3261 §17), dialogs (§12), transport (§18).
pub mod auth;
pub mod dialog;
pub mod message;
pub mod mwi;
pub mod registrar;
pub mod transaction;
pub mod transport;
