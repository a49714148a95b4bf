//! Metric names (one place) and the Prometheus exporter.
//!
//! Names follow `caruso_<area>_<what>[_unit]`; labels are noted beside each constant.

use std::net::SocketAddr;

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (seconds).
    Histogram,
}

/// Defines each metric's name constant (documented by its help text) and [`ALL`].
macro_rules! metrics {
    ($($(#[doc = $doc:literal])+ $name:ident: $kind:ident = $value:literal;)+) => {
        $($(#[doc = $doc])+ pub const $name: &str = $value;)+
        /// Every metric: name, kind and help text (its constant's doc comment).
        pub const ALL: &[(&str, Kind, &str)] = &[$(($value, Kind::$kind, concat!($($doc),+))),+];
    };
}

metrics! {
    /// SIP requests received, label `method`.
    SIP_REQUESTS_RECEIVED: Counter = "caruso_sip_requests_received_total";
    /// SIP responses sent, labels `status`, `method`.
    SIP_RESPONSES_SENT: Counter = "caruso_sip_responses_sent_total";
    /// SIP requests sent, label `method`.
    SIP_REQUESTS_SENT: Counter = "caruso_sip_requests_sent_total";
    /// SIP responses received, label `status`.
    SIP_RESPONSES_RECEIVED: Counter = "caruso_sip_responses_received_total";
    /// Messages that could not be parsed, label `transport`.
    SIP_PARSE_ERRORS: Counter = "caruso_sip_parse_errors_total";
    /// Packets not sent because the destination is outside the allow-list, label `kind`.
    DESTINATION_DENIED: Counter = "caruso_destination_denied_total";
    /// Messages dropped because a call's mailbox was full.
    SIP_DROPPED_OVERLOAD: Counter = "caruso_sip_dropped_overload_total";
    /// Live SIP transactions (gauge).
    SIP_TRANSACTIONS: Gauge = "caruso_sip_transactions";
    /// Live registrar bindings: registered contacts of all users (gauge).
    SIP_REGISTRATIONS: Gauge = "caruso_sip_registrations";
    /// Live dialogs (gauge).
    SIP_DIALOGS: Gauge = "caruso_sip_dialogs";
    /// Active calls (gauge).
    CALLS_ACTIVE: Gauge = "caruso_calls_active";
    /// Calls ended, label `reason`.
    CALLS_ENDED: Counter = "caruso_calls_ended_total";
    /// RTP packets sent.
    RTP_PACKETS_SENT: Counter = "caruso_rtp_packets_sent_total";
    /// RTP packets received.
    RTP_PACKETS_RECEIVED: Counter = "caruso_rtp_packets_received_total";
    /// RTP packets lost (sequence gaps seen by the receiver).
    RTP_PACKETS_LOST: Counter = "caruso_rtp_packets_lost_total";
    /// RTP packets sent more than one ptime after their due time (the pacing tick ran late).
    RTP_PACKETS_LATE: Counter = "caruso_rtp_packets_late_total";
    /// RTP packets not sent at all because the pacing tick ran too late to catch up.
    RTP_PACKETS_SKIPPED: Counter = "caruso_rtp_packets_skipped_total";
    /// DTMF key presses delivered (once per press, whichever way came first), label `source`.
    DTMF_DIGITS: Counter = "caruso_dtmf_digits_total";
    /// DTMF digits dropped as the same key press arriving a second way, label `source`.
    DTMF_DUPLICATES: Counter = "caruso_dtmf_duplicates_total";
    /// IVR node entries, labels `flow`, `node`.
    IVR_NODES_ENTERED: Counter = "caruso_ivr_nodes_entered_total";
    /// Calls handed over by an IVR flow, label `target` (queue, mailbox, voicemail,
    /// extension, external) and `routed` (`yes`, or `no` while the target is not built).
    IVR_TRANSFERS: Counter = "caruso_ivr_transfers_total";
    /// Voicemail messages stored.
    VOICEMAIL_SAVED: Counter = "caruso_voicemail_messages_saved_total";
    /// Voicemail recordings that could not be stored, label `reason`.
    VOICEMAIL_SAVE_FAILED: Counter = "caruso_voicemail_save_failures_total";
    /// Failed voicemail logins by phone (wrong mailbox or PIN).
    VOICEMAIL_LOGIN_FAILURES: Counter = "caruso_voicemail_login_failures_total";
    /// Calls that entered an ACD queue, label `queue`.
    ACD_QUEUED: Counter = "caruso_acd_calls_queued_total";
    /// Calls waiting in a queue now, label `queue`.
    ACD_WAITING: Gauge = "caruso_acd_calls_waiting";
    /// Calls answered by an agent, label `queue`.
    ACD_ANSWERED: Counter = "caruso_acd_calls_answered_total";
    /// Callers who hung up while waiting, label `queue`.
    ACD_ABANDONED: Counter = "caruso_acd_calls_abandoned_total";
    /// Callers sent to the queue's exit, labels `queue`, `reason`.
    ACD_EXITS: Counter = "caruso_acd_exits_total";
    /// Offers an agent did not take, label `queue`.
    ACD_MISSED: Counter = "caruso_acd_offers_missed_total";
    /// Blind transfers by agents (REFER or gRPC), label `target`.
    ACD_TRANSFERS: Counter = "caruso_acd_transfers_total";
    /// Wait from queueing to the agent's answer, label `queue`.
    ACD_WAIT_SECONDS: Histogram = "caruso_queue_wait_seconds";
    /// Config reloads, label `result` (`applied`, `refused`).
    CONFIG_RELOADS: Counter = "caruso_config_reloads_total";
    /// Plug-in hook calls, labels `hook`, `outcome` (`ok`, `timeout`, `error`, `no_instance`,
    /// `dropped`).
    HOOK_CALLS: Counter = "caruso_hook_calls_total";
    /// Plug-in hook call latency in seconds, label `hook`.
    HOOK_DURATION: Histogram = "caruso_hook_duration_seconds";
    /// Service instances registered now (gauge).
    REGISTRY_INSTANCES: Gauge = "caruso_registry_instances";
    /// Service instances removed, label `reason` (`deregistered`, `expired`).
    REGISTRY_REMOVED: Counter = "caruso_registry_removed_total";
    /// Monitor watchers connected now (gauge).
    MONITOR_WATCHERS: Gauge = "caruso_monitor_watchers";
    /// Monitor watchers cut off for reading too slowly.
    MONITOR_WATCHERS_CUT: Counter = "caruso_monitor_watchers_cut_total";
    /// Monitor re-synchronisations from the ACD (the hub fell behind the bus).
    MONITOR_RESYNCS: Counter = "caruso_monitor_resyncs_total";
    /// Campaign dials ended, label `result`.
    DIALER_CALLS: Counter = "caruso_dialer_calls_total";
    /// Answering-machine detection verdicts, label `outcome` (`human`, `machine`, `unknown`).
    DIALER_AMD_VERDICTS: Counter = "caruso_dialer_amd_verdicts_total";
}

/// Error starting the exporter.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the Prometheus exporter on {addr}: {reason}")]
pub struct MetricsError {
    /// The listen address.
    pub addr: SocketAddr,
    /// Why.
    pub reason: String,
}

/// Installs the global recorder and serves `/metrics` on `addr` (must be called inside a
/// tokio runtime).
pub fn install(addr: SocketAddr) -> Result<(), MetricsError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| MetricsError {
            addr,
            reason: e.to_string(),
        })?;
    describe();
    Ok(())
}

fn describe() {
    for &(name, kind, help) in ALL {
        let help = help.trim();
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_metric_is_named_by_the_convention_once_and_described() {
        let mut seen = HashSet::new();
        for &(name, kind, help) in ALL {
            assert!(seen.insert(name), "{name} defined twice");
            assert!(name.starts_with("caruso_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(
                kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}: {kind:?}"
            );
            if kind == Kind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
            assert!(help.trim().len() > 10, "{name} has no help text");
        }
        assert!(ALL.len() >= 40, "{}", ALL.len());
    }
}
