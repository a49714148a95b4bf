//! Calls: the endpoint that routes SIP by Call-ID, and one actor task per call.
//!
//! - [`endpoint::Endpoint`] owns the Call-ID → [`CallHandle`] map, the RTP port pool and a
//!   transaction layer for requests outside any call (OPTIONS, 481, 405, 501). It never
//!   waits on a call: a full call mailbox drops the message (UDP peers retransmit).
//! - [`actor`] runs one call: its transactions, its dialog, its RTP session and sockets,
//!   its prompt; it ends with BYE from either side, CANCEL, RTP inactivity or shutdown.
//! - [`originate`]: the dialer's call side; a dial is a call actor that starts from an
//!   outbound INVITE to the contact (through [`CallReport::Originate`]) instead of an
//!   inbound one, then uses the same queue and bridge code as an inbound caller.

pub mod actor;
pub mod app;
pub mod endpoint;
pub mod leg;
pub mod originate;
pub mod ports;

use crate::config::{AllowList, Config};
use crate::media::wav::Prompt;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::Inbound;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a call actor receives.
#[derive(Debug)]
pub enum CallMsg {
    /// A SIP message with this call's Call-ID.
    Sip(Box<Inbound>),
    /// The server is shutting down: end the call (BYE) and exit.
    Shutdown,
    /// The endpoint's answer to [`CallReport::LegStarted`]: the leg's Call-ID is now
    /// routed to this call; its RTP/RTCP sockets (`None`: no port pair free) and the UDP
    /// link to send its SIP on (`None`: no UDP listener).
    LegReady {
        /// The leg's Call-ID (the call may have moved on to another leg).
        call_id: String,
        /// The leg's media sockets.
        media: Option<actor::MediaSockets>,
        /// The endpoint's UDP socket.
        udp: Option<crate::sip::transport::Link>,
    },
}

/// The address of a running call actor.
#[derive(Debug, Clone)]
pub struct CallHandle {
    tx: mpsc::Sender<CallMsg>,
}

impl CallHandle {
    /// Delivers a message without waiting; `false` when the mailbox is full or the call is gone.
    pub fn try_send(&self, msg: CallMsg) -> bool {
        self.tx.try_send(msg).is_ok()
    }
}

/// Read-only data every call needs, shared by `Arc`.
pub struct CallContext {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Prompts of play-and-hang-up numbers, by number.
    pub prompts: HashMap<String, Prompt>,
    /// The prompt library (`ivr.prompt_dir`), by name.
    pub library: HashMap<String, Prompt>,
    /// The registrar's bindings (agents' phones), if `[acd]` has registering agents.
    pub registrations:
        Option<tokio::sync::watch::Receiver<Arc<crate::sip::registrar::Registrations>>>,
    /// The ACD task, if `[acd]` is configured (shared by every config generation).
    pub acd: Option<crate::acd::task::AcdCalls>,
    /// Voicemail storage (shared by every config generation), if mailboxes exist.
    pub voicemail: Option<Arc<crate::voicemail::storage::Voicemail>>,
    /// RFC 3261 timer values.
    pub timers: TimerConfig,
    /// Destination allow-list.
    pub allow: AllowList,
    /// Plug-in hooks (`[hooks]` of this config over the shared registry), if running.
    pub hooks: Option<crate::hooks::Hooks>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("config", &self.config.source)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (wall clock, for records).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a call ended (metrics label and log text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The prompt finished and we sent BYE.
    Completed,
    /// The caller sent BYE.
    CallerHangup,
    /// The caller cancelled before the answer.
    Cancelled,
    /// The call was refused with a final error response.
    Rejected,
    /// No RTP from the peer for `rtp.inactivity_timeout_s`.
    RtpTimeout,
    /// No ACK for our 2xx.
    AckTimeout,
    /// The server shut down.
    Shutdown,
    /// A transport or protocol failure.
    Failed,
}

impl EndReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::CallerHangup => "caller_hangup",
            EndReason::Cancelled => "cancelled",
            EndReason::Rejected => "rejected",
            EndReason::RtpTimeout => "rtp_timeout",
            EndReason::AckTimeout => "ack_timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::Failed => "failed",
        }
    }
}

/// What a call actor tells the endpoint.
#[derive(Debug)]
pub enum CallReport {
    /// The call's media is over: its RTP port pair may be reused (sent at hang-up, while
    /// the call still lingers to absorb SIP retransmissions).
    PortFreed(u16),
    /// The call hung up: its record, to store and hand to the `call.ended` hook at
    /// once (the actor itself lingers up to 64×T1 to absorb SIP retransmissions).
    Record(Box<crate::store::CallRecord>),
    /// The actor exited.
    Ended(CallEnded),
    /// The call places an outbound leg: route messages with `leg_call_id` and our tag
    /// `leg_tag` to the call (`call_id` / `local_tag`), bind an RTP port pair for it and
    /// answer with [`CallMsg::LegReady`].
    LegStarted {
        /// The calling call's Call-ID.
        call_id: String,
        /// The calling call's tag.
        local_tag: String,
        /// The leg's new Call-ID.
        leg_call_id: String,
        /// Our From tag on the leg.
        leg_tag: String,
    },
    /// A dial to place (from [`originate::CallOriginator`]): a new call actor that
    /// starts with an outbound INVITE to the contact.
    Originate(Box<originate::DialStart>),
    /// The leg is over: stop routing its Call-ID (its port comes back by `PortFreed`).
    LegEnded {
        /// The leg's Call-ID.
        leg_call_id: String,
        /// Our tag on the leg.
        leg_tag: String,
    },
}

/// Sent by a call actor to the endpoint when it exits.
#[derive(Debug)]
pub struct CallEnded {
    /// The call's Call-ID.
    pub call_id: String,
    /// Our To tag for this call (with the Call-ID, its key in the call table).
    pub local_tag: String,
    /// What the store keeps of it, unless [`CallReport::Record`] already carried it.
    pub record: Option<crate::store::CallRecord>,
}

/// Log wrapper for phone numbers and user parts: internal extensions (up to 4
/// characters) print as they are, longer numbers keep their first 2 and last 2
/// characters (`+4…89`).
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

/// Wraps a number for logging.
pub fn redact(s: &str) -> Redacted<'_> {
    Redacted(s)
}

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 4 {
            return f.write_str(self.0);
        }
        let head: String = chars[..2].iter().collect();
        let tail: String = chars[chars.len() - 2..].iter().collect();
        write!(f, "{head}…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_extensions_and_hides_long_numbers() {
        assert_eq!(redact("100").to_string(), "100");
        assert_eq!(redact("+4915123456789").to_string(), "+4…89");
        assert_eq!(redact("").to_string(), "");
        assert_eq!(redact("ääääää").to_string(), "ää…ää");
    }
}
