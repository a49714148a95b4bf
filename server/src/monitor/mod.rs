//! The live status monitor behind `caruso.v1.Monitor`: agents, queues, campaigns (once
//! the dialer exists) and server figures, for supervisors and wallboards.
//!
//! - [`model`] (sans-IO): the live model, fed by the event bus from an initial
//!   [`crate::acd::api::AcdView`]; numbered changes (`seq` 1, 2, 3 ...) and filtered
//!   snapshots; today's counters reset at local midnight ([`clock`]).
//! - [`hub`] (one tokio task): owns the model, reads the bus, the server's figures and
//!   the clock, and fans every change out to the watchers. Each watcher has a bounded
//!   queue; a watcher whose queue is full is cut off ([`MonitorError::TooSlow`]) and the
//!   hub moves on: it never waits for a watcher, so watchers never slow the bus or calls.
//!   When the hub itself falls behind the bus it re-synchronises from the ACD and sends
//!   every watcher a fresh snapshot.
//!
//! ```no_run
//! # async fn demo(bus: caruso::events::EventBus, acd: caruso::acd::api::AcdHandle) {
//! use caruso::monitor::{hub, model::Filter};
//! let monitor = hub::spawn(&bus, Some(acd), None, Default::default(), Default::default());
//! let mut watcher = monitor.watch(Filter::all()).await.unwrap();
//! println!("{} agents", watcher.snapshot.agents.len());
//! while let Some(update) = watcher.updates.recv().await {
//!     println!("{update:?}");
//! }
//! # }
//! ```

pub mod clock;
pub mod hub;
pub mod model;

/// Why the monitor refused or ended a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// A filter names a queue the config does not have.
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// A filter names an agent the config does not have.
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    /// The watcher read too slowly: its queue of `buffer` messages filled up.
    #[error("watcher too slow: {buffer} messages were waiting unread; the stream is stopped, watch again")]
    TooSlow {
        /// The watcher's queue capacity.
        buffer: usize,
    },
    /// The monitor is not running (shutdown).
    #[error("the monitor is not running")]
    Stopped,
}
