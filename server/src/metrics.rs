//! Metric names (one place) and the Prometheus exporter.
//!
//! Names follow `caruso_<area>_<what>[_unit]`; labels are noted beside each constant.

use std::net::SocketAddr;

/// SIP requests received, label `method`.
pub const SIP_REQUESTS_RECEIVED: &str = "caruso_sip_requests_received_total";
/// SIP responses sent, labels `status`, `method`.
pub const SIP_RESPONSES_SENT: &str = "caruso_sip_responses_sent_total";
/// SIP requests sent, label `method`.
pub const SIP_REQUESTS_SENT: &str = "caruso_sip_requests_sent_total";
/// SIP responses received, label `status`.
pub const SIP_RESPONSES_RECEIVED: &str = "caruso_sip_responses_received_total";
/// Messages that could not be parsed, label `transport`.
pub const SIP_PARSE_ERRORS: &str = "caruso_sip_parse_errors_total";
/// Packets not sent because the destination is outside the allow-list, label `kind`.
pub const DESTINATION_DENIED: &str = "caruso_destination_denied_total";
/// Messages dropped because a call's mailbox was full.
pub const SIP_DROPPED_OVERLOAD: &str = "caruso_sip_dropped_overload_total";
/// Live SIP transactions (gauge).
pub const SIP_TRANSACTIONS: &str = "caruso_sip_transactions";
/// Live registrar bindings: registered contacts of all users (gauge).
pub const SIP_REGISTRATIONS: &str = "caruso_sip_registrations";
/// Live dialogs (gauge).
pub const SIP_DIALOGS: &str = "caruso_sip_dialogs";
/// Active calls (gauge).
pub const CALLS_ACTIVE: &str = "caruso_calls_active";
/// Calls ended, label `reason`.
pub const CALLS_ENDED: &str = "caruso_calls_ended_total";
/// RTP packets sent.
pub const RTP_PACKETS_SENT: &str = "caruso_rtp_packets_sent_total";
/// RTP packets received.
pub const RTP_PACKETS_RECEIVED: &str = "caruso_rtp_packets_received_total";
/// RTP packets lost (sequence gaps seen by the receiver).
pub const RTP_PACKETS_LOST: &str = "caruso_rtp_packets_lost_total";
/// RTP packets sent more than one ptime after their due time (the pacing tick ran late).
pub const RTP_PACKETS_LATE: &str = "caruso_rtp_packets_late_total";
/// RTP packets not sent at all because the pacing tick ran too late to catch up.
pub const RTP_PACKETS_SKIPPED: &str = "caruso_rtp_packets_skipped_total";
/// DTMF key presses delivered (once per press, whichever way came first), label `source`.
pub const DTMF_DIGITS: &str = "caruso_dtmf_digits_total";
/// DTMF digits dropped as the same key press arriving a second way, label `source`.
pub const DTMF_DUPLICATES: &str = "caruso_dtmf_duplicates_total";
/// IVR node entries, labels `flow`, `node`.
pub const IVR_NODES_ENTERED: &str = "caruso_ivr_nodes_entered_total";
/// Calls handed over by an IVR flow, label `target` (queue, mailbox, voicemail,
/// extension, external) and `routed` (`yes`, or `no` while the target is not built).
pub const IVR_TRANSFERS: &str = "caruso_ivr_transfers_total";
/// Voicemail messages stored.
pub const VOICEMAIL_SAVED: &str = "caruso_voicemail_messages_saved_total";
/// Voicemail recordings that could not be stored, label `reason`.
pub const VOICEMAIL_SAVE_FAILED: &str = "caruso_voicemail_save_failures_total";
/// Failed voicemail logins by phone (wrong mailbox or PIN).
pub const VOICEMAIL_LOGIN_FAILURES: &str = "caruso_voicemail_login_failures_total";
/// Calls that entered an ACD queue, label `queue`.
pub const ACD_QUEUED: &str = "caruso_acd_calls_queued_total";
/// Calls waiting in a queue now, label `queue`.
pub const ACD_WAITING: &str = "caruso_acd_calls_waiting";
/// Calls answered by an agent, label `queue`.
pub const ACD_ANSWERED: &str = "caruso_acd_calls_answered_total";
/// Callers who hung up while waiting, label `queue`.
pub const ACD_ABANDONED: &str = "caruso_acd_calls_abandoned_total";
/// Callers sent to the queue's exit, labels `queue`, `reason`.
pub const ACD_EXITS: &str = "caruso_acd_exits_total";
/// Offers an agent did not take, label `queue`.
pub const ACD_MISSED: &str = "caruso_acd_offers_missed_total";
/// Blind transfers by agents (REFER or gRPC), label `target`.
pub const ACD_TRANSFERS: &str = "caruso_acd_transfers_total";
/// Wait from queueing to the agent's answer, label `queue`.
pub const ACD_WAIT_SECONDS: &str = "caruso_queue_wait_seconds";
/// Config reloads, label `result` (`applied`, `refused`).
pub const CONFIG_RELOADS: &str = "caruso_config_reloads_total";

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
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(SIP_REQUESTS_RECEIVED, "SIP requests received by method");
    describe_counter!(
        SIP_RESPONSES_SENT,
        "SIP responses sent by status and method"
    );
    describe_counter!(SIP_REQUESTS_SENT, "SIP requests sent by method");
    describe_counter!(SIP_RESPONSES_RECEIVED, "SIP responses received by status");
    describe_counter!(SIP_PARSE_ERRORS, "SIP messages that could not be parsed");
    describe_counter!(
        DESTINATION_DENIED,
        "packets not sent: destination outside network.allow"
    );
    describe_counter!(
        SIP_DROPPED_OVERLOAD,
        "SIP messages dropped: call mailbox full"
    );
    describe_gauge!(SIP_TRANSACTIONS, "live SIP transactions");
    describe_gauge!(SIP_DIALOGS, "live SIP dialogs");
    describe_gauge!(SIP_REGISTRATIONS, "registered contacts of all users");
    describe_gauge!(CALLS_ACTIVE, "active calls");
    describe_counter!(CALLS_ENDED, "calls ended by reason");
    describe_counter!(RTP_PACKETS_SENT, "RTP packets sent");
    describe_counter!(RTP_PACKETS_RECEIVED, "RTP packets received");
    describe_counter!(
        RTP_PACKETS_LOST,
        "RTP packets lost (receiver sequence gaps)"
    );
    describe_counter!(
        RTP_PACKETS_LATE,
        "RTP packets sent more than one ptime behind schedule"
    );
    describe_counter!(
        RTP_PACKETS_SKIPPED,
        "RTP packets skipped: pacing tick too late to catch up"
    );
    describe_counter!(DTMF_DIGITS, "DTMF digits received");
}
