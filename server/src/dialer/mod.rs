//! Outbound campaigns: the dialer's sans-IO core.
//!
//! Everything here is pure or talks only to [`crate::store::Store`]; nothing touches
//! tokio, sockets or a clock. Time is an input (`now: SystemTime`, wall clock, because
//! calling windows, the abandoned-call window and the 72-hour rule are legal wall-clock
//! rules that must survive restarts).
//!
//! - [`phone`]: E.164 normalisation with a default country;
//! - [`contacts`]: CSV import with one error per bad row;
//! - [`window`]: calling windows in the contact's local time;
//! - [`dnc`]: the do-not-call list;
//! - [`pacing`]: how many numbers to dial now (progressive, predictive) under the
//!   abandoned-call limit;
//! - [`amd`]: answering-machine detection on 20 ms frames;
//! - [`campaign`]: one campaign's state machine (contacts, attempts, retries,
//!   dispositions, figures) with persistence;
//! - [`config`]: the `[[campaigns]]` config tables.

pub mod amd;
pub mod campaign;
pub mod config;
pub mod contacts;
pub mod dnc;
pub mod originate;
pub mod pacing;
pub mod phone;
pub mod window;
