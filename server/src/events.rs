//! The server's internal event bus: every state change that the monitor, reports and
//! registered services may want (mailboxes, agents, queues; campaigns later).
//!
//! One `tokio::sync::broadcast` channel of [`BusEvent`]s numbered by a gap-free sequence.
//! Publishing never waits: a subscriber that falls more than the channel's capacity
//! behind gets `RecvError::Lagged` (and must re-sync), it never slows a call.

use crate::acd::AgentState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events kept for slow subscribers before they lag.
pub const BUS_CAPACITY: usize = 4096;

/// A mailbox change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxChange {
    /// A new message was stored.
    New,
    /// A message was listened to or moved to the saved folder.
    Read,
    /// A message was deleted.
    Deleted,
    /// The greeting or PIN changed (no message id).
    Settings,
}

/// A mailbox event with the counts after it (for message-waiting indication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEvent {
    /// Mailbox number.
    pub mailbox: String,
    /// What happened.
    pub change: MailboxChange,
    /// The message concerned, if any.
    pub message_id: Option<String>,
    /// Messages in the `new` folder afterwards.
    pub new_count: u32,
    /// Messages in the `saved` folder afterwards.
    pub saved_count: u32,
}

/// Everything published on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A mailbox changed.
    Mailbox(MailboxEvent),
    /// An agent's state changed (`from`/`to` as shown to people: `ready`, `on call` ...).
    /// It entered `state` at the event's `at_ms`.
    AgentState {
        /// Agent id.
        agent: String,
        /// Previous state.
        from: String,
        /// New state.
        to: String,
        /// The new state, typed (with its call or not-ready reason).
        state: AgentState,
        /// Why it changed: `client`, `supervisor`, `offered`, `answered`, `missed`,
        /// `cancelled`, `call_ended`, `wrap_up_ended`, `wrap_up_timeout`.
        cause: &'static str,
    },
    /// A queue changed: a call joined, was answered, abandoned or left (`change`).
    Queue {
        /// Queue name.
        queue: String,
        /// ACD call key.
        call: u64,
        /// `joined`, `answered`, `abandoned`, `max_wait`, `exit_key` ...
        change: String,
        /// Calls waiting afterwards.
        waiting: u32,
        /// How long the call had waited in the queue (0 for `joined`), in ms.
        waited_ms: u64,
        /// The caller's priority in the queue.
        priority: i32,
        /// The agent who answered (`answered` only).
        agent: Option<String>,
    },
    /// An agent ended a wrap-up with a disposition code (for the call it wrapped up).
    Disposition {
        /// Agent id.
        agent: String,
        /// ACD call key of the call the wrap-up followed.
        call: u64,
        /// Disposition code (may be empty).
        disposition: String,
        /// Free note (may be empty).
        note: String,
    },
    /// A campaign's figures changed (published by the dialer task).
    Campaign(CampaignStats),
}

/// A campaign's figures as the bus carries them (see `dialer::campaign::CampaignFigures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignStats {
    /// Campaign name.
    pub campaign: String,
    /// Run state: `idle`, `running`, `paused`, `stopped`, `finished`.
    pub state: String,
    /// Dials placed.
    pub dialed: u64,
    /// Dials in progress.
    pub in_flight: u64,
    /// Answered: human + machine + abandoned.
    pub answered: u64,
    /// Persons connected to an agent (or who heard the agentless message).
    pub human: u64,
    /// Machines.
    pub machine: u64,
    /// Busy.
    pub busy: u64,
    /// Rang out.
    pub no_answer: u64,
    /// Failed.
    pub failed: u64,
    /// Abandoned (AMD false positives included).
    pub abandoned: u64,
    /// Persons taken for machines.
    pub amd_false_positives: u64,
    /// Contacts skipped for the do-not-call list.
    pub dnc_skipped: u64,
    /// Dials put off because the contact's window was closed.
    pub outside_window: u64,
    /// Abandoned rate in the rolling window, in basis points (1/100 of a percent).
    pub abandon_rate_bp: u32,
    /// Contacts.
    pub contacts: u64,
    /// Contacts not final yet.
    pub contacts_left: u64,
    /// Today's figures (the local day in the campaign's zone).
    pub today: crate::dialer::campaign::DayFigures,
}

/// An event with its place in the bus order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    /// 1, 2, 3 ... without gaps, in publication order.
    pub seq: u64,
    /// Wall-clock time of publication, ms since the Unix epoch.
    pub at_ms: u64,
    /// The event.
    pub event: Event,
}

/// The bus: cheap to clone, shared by every publisher and subscriber.
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Arc<BusEvent>>,
    /// Held while numbering and sending, so sequence order is send order.
    seq: Mutex<u64>,
    published: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(BUS_CAPACITY)
    }
}

impl EventBus {
    /// A bus keeping `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> EventBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus {
            inner: Arc::new(Inner {
                tx,
                seq: Mutex::new(0),
                published: AtomicU64::new(0),
            }),
        }
    }

    /// Publishes an event; returns its sequence number. Never waits.
    pub fn publish(&self, event: Event) -> u64 {
        let mut seq = self.inner.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let ev = Arc::new(BusEvent {
            seq: *seq,
            at_ms: crate::call::unix_ms(),
            event,
        });
        // No subscriber is not an error.
        let _ = self.inner.tx.send(ev);
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        *seq
    }

    /// A new subscriber, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.inner.tx.subscribe()
    }

    /// The sequence number of the last event published (0 before the first). A
    /// publisher that reads it after publishing knows every event it published has a
    /// sequence number at most this (the monitor matches ACD snapshots to bus events so).
    pub fn last_seq(&self) -> u64 {
        *self.inner.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events published so far.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u32) -> Event {
        Event::Mailbox(MailboxEvent {
            mailbox: "200".into(),
            change: MailboxChange::New,
            message_id: Some(format!("m{n}")),
            new_count: n,
            saved_count: 0,
        })
    }

    #[test]
    fn subscribers_see_events_in_order_without_gaps() {
        let bus = EventBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        for n in 1..=5 {
            assert_eq!(bus.publish(ev(n)), u64::from(n));
        }
        for rx in [&mut a, &mut b] {
            for n in 1..=5u64 {
                let got = rx.try_recv().expect("event");
                assert_eq!(got.seq, n);
            }
            assert!(rx.try_recv().is_err());
        }
        assert_eq!(bus.published(), 5);
        assert_eq!(bus.last_seq(), 5);
    }

    #[test]
    fn a_slow_subscriber_lags_and_never_blocks_the_publisher() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for n in 1..=10 {
            bus.publish(ev(n));
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert_eq!(missed, 6),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(slow.try_recv().expect("oldest kept").seq, 7);
    }
}
