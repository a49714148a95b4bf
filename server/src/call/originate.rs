//! The call side of the dialer: [`CallOriginator`] places each [`Originate`] as a call
//! actor that starts from an outbound customer leg instead of an inbound INVITE.
//!
//! ```text
//! campaign task --originate()--> CallOriginator --CallReport::Originate--> endpoint
//!   endpoint: Call-ID + our tag routed to a new call actor, RTP port pair, UDP link
//!   call actor (call::actor, its `dial` part): UAC INVITE through the trunk
//!     180/183 -> Ringing; 486/600 -> Busy; ring timeout -> CANCEL, NoAnswer
//!     200 -> RTP session (the contact plays the caller's role), AMD on its audio
//!       -> core::DialCore decides: machine (hang up / message after the beep),
//!          person (the ACD offers the call to the agent or queue, like a queued
//!          caller; bridged by the same code), agentless (prompt or IVR flow)
//!   every event -> the campaign's channel, ending with Done(CallResult)
//! ```
//!
//! The contact is "the caller" for the queue and bridge code: the agent's Offered event
//! shows its number and the dial's variables (contact, script); the agent's phone is
//! rung and bridged exactly as for an inbound call. `network.allow` applies to every
//! send (the trunk's address is checked before the INVITE).

pub mod core;

use crate::call::CallReport;
use crate::dialer::campaign::CallResult;
use crate::dialer::originate::{Originate, OriginateEvent, Originator};
use tokio::sync::mpsc;
use tracing::warn;

/// AMD verdicts: `caruso_dialer_amd_verdicts_total{outcome}`.
pub use crate::metrics::DIALER_AMD_VERDICTS;
/// Dials by result: `caruso_dialer_calls_total{result}`.
pub use crate::metrics::DIALER_CALLS;

/// How many events a dial may have queued for a slow campaign task (a dial has at most
/// five: Ringing, Answered, Connected, Done and slack).
const EVENTS: usize = 8;

/// One dial on its way to the endpoint: what to place and where its events go.
#[derive(Debug)]
pub struct DialStart {
    /// The dial.
    pub dial: Originate,
    /// Its events.
    pub events: mpsc::Sender<OriginateEvent>,
}

/// The endpoint's side door for dials (from [`crate::call::endpoint::Endpoint::dialer`]).
#[derive(Debug, Clone)]
pub struct DialLink {
    pub(crate) tx: mpsc::UnboundedSender<CallReport>,
}

/// Places dials as call actors of the endpoint (see the module doc).
#[derive(Debug, Clone)]
pub struct CallOriginator {
    link: DialLink,
}

impl CallOriginator {
    /// An originator placing calls through the endpoint behind `link`.
    pub fn new(link: DialLink) -> CallOriginator {
        CallOriginator { link }
    }
}

impl Originator for CallOriginator {
    fn originate(&self, dial: Originate) -> mpsc::Receiver<OriginateEvent> {
        let (tx, rx) = mpsc::channel(EVENTS);
        let start = DialStart {
            dial,
            events: tx.clone(),
        };
        if self
            .link
            .tx
            .send(CallReport::Originate(Box::new(start)))
            .is_err()
        {
            warn!("dial not placed: the endpoint is gone");
            finish(
                &tx,
                CallResult::Failed {
                    reason: "the SIP endpoint is not running".into(),
                },
            );
        }
        rx
    }
}

/// Reports a dial's end: `Done(result)` and the metric.
pub(crate) fn finish(events: &mpsc::Sender<OriginateEvent>, result: CallResult) {
    metrics::counter!(DIALER_CALLS, "result" => result_label(&result)).increment(1);
    send(events, OriginateEvent::Done(result));
}

/// Sends one event without waiting (a campaign task that stopped listening loses it).
pub(crate) fn send(events: &mpsc::Sender<OriginateEvent>, ev: OriginateEvent) {
    if let Err(e) = events.try_send(ev) {
        warn!(error = %e, "dial event not delivered");
    }
}

/// The metric label of a result.
pub fn result_label(r: &CallResult) -> &'static str {
    match r {
        CallResult::Connected { .. } => "connected",
        CallResult::Abandoned { .. } => "abandoned",
        CallResult::Machine { .. } => "machine",
        CallResult::Played { .. } => "played",
        CallResult::Busy => "busy",
        CallResult::NoAnswer => "no_answer",
        CallResult::Failed { .. } => "failed",
    }
}
