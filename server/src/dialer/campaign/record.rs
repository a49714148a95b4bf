//! What a campaign keeps in the store: its state, its contacts and their attempts.
//!
//! Trees (values are TOML):
//! - [`CAMPAIGNS_TREE`]: key `<campaign>` → [`CampaignRecord`];
//! - [`CONTACTS_TREE`]: key `<campaign> 0x00 <contact id, 8 bytes big-endian>` →
//!   [`ContactRecord`];
//! - [`ATTEMPTS_TREE`]: key `<campaign> 0x00 <attempt id, 8 bytes big-endian>` →
//!   [`AttemptRecord`] (written when the dial starts, rewritten with its outcome and
//!   with the agent's disposition).

use crate::store::{Store, StoreError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// Campaign states, by name.
pub const CAMPAIGNS_TREE: &str = "dialer_campaigns";
/// Contacts of every campaign.
pub const CONTACTS_TREE: &str = "dialer_contacts";
/// Attempts (dials) of every campaign, with outcomes and dispositions.
pub const ATTEMPTS_TREE: &str = "dialer_attempts";

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, never started.
    Idle,
    /// Dialing.
    Running,
    /// No new dials; calls in progress go on.
    Paused,
    /// Stopped by a person; may be started again.
    Stopped,
    /// Every contact reached a final state.
    Finished,
}

impl RunState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopped => "stopped",
            RunState::Finished => "finished",
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A person answered and talked to an agent (or heard the agentless message).
    Human,
    /// An answering machine answered.
    Machine,
    /// Busy.
    Busy,
    /// Rang out.
    NoAnswer,
    /// The call failed (trunk, network, number).
    Failed,
    /// A person answered and no agent took the call within 2 s.
    Abandoned,
    /// The server stopped during the attempt: the outcome is unknown.
    Interrupted,
}

impl Outcome {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Human => "human",
            Outcome::Machine => "machine",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// A contact's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalState {
    /// A person was reached.
    Reached,
    /// A message was left on a machine.
    MessageLeft,
    /// On the do-not-call list: skipped.
    Dnc,
    /// No more re-dials allowed after this outcome (or `max_attempts` reached).
    Exhausted(Outcome),
    /// The calling window never opens in the contact's zones.
    NoWindow,
}

impl FinalState {
    /// Lower-case name (`exhausted:busy`).
    pub fn name(self) -> String {
        match self {
            FinalState::Reached => "reached".into(),
            FinalState::MessageLeft => "message_left".into(),
            FinalState::Dnc => "dnc".into(),
            FinalState::Exhausted(o) => format!("exhausted:{}", o.as_str()),
            FinalState::NoWindow => "no_window".into(),
        }
    }
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// Id within the campaign.
    pub id: u64,
    /// E.164 number.
    pub number: String,
    /// Name.
    pub name: String,
    /// ISO country from the list.
    pub country: Option<String>,
    /// IANA zone from the list.
    pub timezone: Option<String>,
    /// Dials so far.
    pub attempts: u32,
    /// Dials per outcome (`busy`, `no_answer` ...).
    pub outcomes: BTreeMap<String, u32>,
    /// Earliest next dial (Unix ms); absent when final.
    pub next_at_ms: Option<u64>,
    /// Last abandoned (or interrupted) dial (Unix ms).
    pub last_abandon_ms: Option<u64>,
    /// Final state, once reached.
    pub done: Option<FinalState>,
    /// Call variables (CSV columns).
    pub variables: BTreeMap<String, String>,
}

/// One dial as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Id within the campaign.
    pub id: u64,
    /// The contact dialed.
    pub contact: u64,
    /// The number dialed.
    pub number: String,
    /// Dial start (Unix ms).
    pub dialed_ms: u64,
    /// Agent reserved for the call (preview, progressive).
    pub reserved_agent: Option<String>,
    /// Outcome; absent while the call is in progress.
    pub outcome: Option<Outcome>,
    /// When the outcome was known (Unix ms).
    pub ended_ms: Option<u64>,
    /// AMD verdict (`human`, `machine`, `unknown`).
    pub amd: Option<String>,
    /// Agent who took the call.
    pub agent: Option<String>,
    /// Whether a message was left on a machine.
    pub message_left: bool,
    /// A person taken for a machine (counted as abandoned).
    pub false_positive: bool,
    /// Disposition code from the agent's wrap-up.
    pub disposition: Option<String>,
    /// The agent's note.
    pub note: Option<String>,
    /// When the attempt was reported as an AMD false positive (Unix ms).
    #[serde(default)]
    pub false_positive_ms: Option<u64>,
}

/// A campaign's figures for one local day (the campaign's zone), reset at its midnight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// The local date, `YYYY-MM-DD` (empty: nothing counted yet).
    pub day: String,
    /// Dials placed that day.
    pub dialed: u64,
    /// Answered that day: human + machine + abandoned.
    pub answered: u64,
    /// Persons connected to an agent (or who heard the agentless message).
    pub human: u64,
    /// Machines.
    pub machine: u64,
    /// Abandoned (AMD false positives reported that day included).
    pub abandoned: u64,
}

/// A campaign's own state as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// Run state.
    pub state: RunState,
    /// Next contact id.
    pub next_contact: u64,
    /// Next attempt id.
    pub next_attempt: u64,
    /// Today's figures (absent in records written before they existed).
    #[serde(default)]
    pub today: DayFigures,
}

/// Key `<campaign> 0x00 <id be>`.
pub fn key(campaign: &str, id: u64) -> Vec<u8> {
    let mut k = prefix(campaign);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Key prefix of a campaign's entries.
pub fn prefix(campaign: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(campaign.len() + 9);
    k.extend_from_slice(campaign.as_bytes());
    k.push(0);
    k
}

/// Writes a value.
pub fn put<T: Serialize>(
    store: &dyn Store,
    tree: &str,
    key: &[u8],
    v: &T,
) -> Result<(), StoreError> {
    let text = toml::to_string(v).map_err(|e| StoreError::Corrupt {
        tree: tree.to_string(),
        reason: e.to_string(),
    })?;
    store.put(tree, key, text.as_bytes())
}

/// Decodes a value.
pub fn decode<T: DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: tree.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
    toml::from_str(text).map_err(|e| corrupt(e.to_string()))
}

/// Every value under a campaign's prefix, in id order.
pub fn scan<T: DeserializeOwned>(
    store: &dyn Store,
    tree: &str,
    campaign: &str,
) -> Result<Vec<T>, StoreError> {
    store
        .scan_prefix(tree, &prefix(campaign))?
        .into_iter()
        .map(|(_, v)| decode(tree, &v))
        .collect()
}
