//! The `[acd]` config table (queues, agents, not-ready reasons), validated into
//! [`AcdConfig`] by [`parse_acd`].
//!
//! Contract: [`parse_acd`] takes the `[acd]` table as a `toml::Value`, the file name (for
//! errors) and [`AcdReferences`] (what exists elsewhere in the config: mailboxes, flows
//! and their nodes, trunks, prompt files). Validation happens once; every error is a
//! [`ConfigError`] naming the file and the full dotted key (`acd.queues[0].strategy`)
//! with what was expected. Nothing here does IO (prompt files are checked through the
//! `prompt_exists` closure).
//!
//! Flows refer to queues (`type = "queue"` nodes) and queue exits refer to flows, so the
//! integrator parses in this order: [`queue_names`] (a cheap, unvalidated list of the
//! queue names) → `ivr::flow::parse_flows` with those names → [`parse_acd`] with
//! [`AcdReferences::flows_of`] the parsed flow set.
//!
//! # Reference
//!
//! ```toml
//! [acd]
//! # Not-ready reason codes an agent (or supervisor) may pick. Default:
//! # ["break", "lunch", "training"]. "no answer" (set after max_no_answer missed offers)
//! # and "restart" (agents found logged in after a server restart) are always added.
//! reasons = ["break", "lunch", "training", "after missed call"]
//!
//! [acd.defaults]                       # optional: defaults for every queue / agent
//! ring_timeout_s = 15                  # 1..=300
//! retry_delay_s = 5                    # 0..=3600
//! wrap_up_s = 0                        # 0..=3600
//! service_level_s = 20                 # 1..=3600
//! max_no_answer = 3                    # 1..=100
//!
//! [[acd.queues]]
//! name = "sales"                       # letters, digits, `-`, `_` (unique)
//! strategy = "longest-idle"            # longest-idle (default), least-talk-time,
//!                                      # fewest-calls, round-robin, ring-all, top-down,
//!                                      # random, best-skill, ring-progressively
//! skills = { english = 1, sales = 2 }  # required skill = minimum level 1..=5 (default {})
//! priority = 0                         # -1000..=1000; higher is served first by an
//!                                      # agent in several queues
//! ring_timeout_s = 15                  # default: acd.defaults
//! retry_delay_s = 5                    # default: acd.defaults
//! max_wait_s = 600                     # optional, 1..=86400; then the exit
//! max_len = 50                         # optional, 1..=100000 waiting calls; then the exit
//! wrap_up_s = 0                        # default: acd.defaults
//! music = "moh"                        # optional prompt name, looped while waiting
//! announcement = { prompt = "please-hold", every_s = 30 }   # optional, every_s 1..=3600
//! position_every_s = 60                # optional, 1..=3600: position and expected wait
//! service_level_s = 20                 # default: acd.defaults
//! exit_key = "0"                       # optional, one DTMF key (0-9 * # A-D)
//! exit = { mailbox = "200" }           # or { queue = "support" }
//!                                      # or { flow = "main" } / { flow = "main", node = "menu" }
//!                                      # or { hangup = ["goodbye"] } (prompts, then BYE)
//!                                      # default: { hangup = [] }
//! relax = [ { after_s = 30, min_level = 1 }, { after_s = 60, drop = "sales" } ]
//! members = ["alice", "bob"]           # optional; default: every agent having all the
//!                                      # required skills at >= the minimum level, in
//!                                      # [[acd.agents]] order
//!
//! [[acd.agents]]
//! id = "alice"                         # login id: letters, digits, `-`, `_`, `.` (unique)
//! name = "Alice Example"               # display name (default: the id)
//! token = "alice-secret"               # agent client secret, required, unique
//! skills = { english = 5, sales = 3 }  # skill = level 1..=5 (default {})
//! max_no_answer = 3                    # default: acd.defaults
//! phone = { user = "alice", password = "alice-pass" }   # a phone registering to caruso
//! # or phone = { uri = "sip:alice@127.0.0.1:5070" }     # a fixed SIP URI
//! # or phone = { trunk = "pstn", number = "+48..." }    # refused while no trunks exist
//! ```
//!
//! Seconds are integers or decimals. Rejected: unknown keys; duplicate queue names,
//! agent ids, registered user names or tokens; unknown strategies; skill levels outside
//! 1..=5; relax steps whose `after_s` does not strictly increase, a `min_level` that does
//! not lower the levels (it must be below every earlier `min_level` step and below the
//! highest required level), dropping a skill the queue does not require (or twice);
//! exits to unknown queues, mailboxes, flows or nodes; a queue exiting to itself, or a
//! chain of queue exits that loops back (a caller would bounce forever when no agent is
//! logged in); unknown or duplicate members; unknown prompts; empty tokens or passwords;
//! an `exit_key` that is not one DTMF key; a trunk phone (trunks are not configurable
//! yet).
//!
//! ```
//! use caruso::acd::config::{parse_acd, AcdReferences};
//! let v: toml::Value = toml::from_str(r#"
//! [[queues]]
//! name = "sales"
//! skills = { sales = 2 }
//! [[agents]]
//! id = "alice"
//! token = "t"
//! skills = { sales = 3 }
//! phone = { user = "alice", password = "p" }
//! "#).unwrap();
//! let refs = AcdReferences::new(&|_| true);
//! let acd = parse_acd(&v, "caruso.toml", &refs).unwrap();
//! assert_eq!(acd.queue("sales").unwrap().members[0].as_ref(), "alice");
//! assert_eq!(acd.queue("sales").unwrap().ring_timeout.as_secs(), 15);
//! ```

use super::{
    AgentConfig, AgentId, ExitTarget, QueueConfig, QueueName, RelaxChange, Relaxation, Requirement,
    Skill, Strategy, VoiceContact,
};
use crate::config::ConfigError;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The reason an agent goes not ready with after `max_no_answer` missed offers.
pub const REASON_NO_ANSWER: &str = "no answer";
/// The reason of agents found logged in when the server restarts.
pub const REASON_RESTART: &str = "restart";
/// Reasons configured when `acd.reasons` is absent (the two above are always added).
pub const DEFAULT_REASONS: [&str; 3] = ["break", "lunch", "training"];
/// Default ring timeout of an offer.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(15);
/// Default pause before an agent who missed a call is offered it again.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Default wrap-up after a call.
pub const DEFAULT_WRAP_UP: Duration = Duration::ZERO;
/// Default service-level threshold.
pub const DEFAULT_SERVICE_LEVEL: Duration = Duration::from_secs(20);
/// Default consecutive missed offers before "not ready: no answer".
pub const DEFAULT_MAX_NO_ANSWER: u32 = 3;

/// DTMF keys a caller can press (the exit key is one of them).
const DTMF_KEYS: &str = "0123456789*#ABCD";

/// Defaults of every queue and agent (`[acd.defaults]`, else the issue's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcdDefaults {
    /// Ring timeout of an offer (15 s).
    pub ring_timeout: Duration,
    /// Pause before re-offering to an agent who missed (5 s).
    pub retry_delay: Duration,
    /// Wrap-up after a call (0), also for calls not from a queue (direct transfers).
    pub wrap_up: Duration,
    /// Service-level threshold (20 s).
    pub service_level: Duration,
    /// Missed offers before "not ready: no answer" (3).
    pub max_no_answer: u32,
}

impl Default for AcdDefaults {
    fn default() -> Self {
        AcdDefaults {
            ring_timeout: DEFAULT_RING_TIMEOUT,
            retry_delay: DEFAULT_RETRY_DELAY,
            wrap_up: DEFAULT_WRAP_UP,
            service_level: DEFAULT_SERVICE_LEVEL,
            max_no_answer: DEFAULT_MAX_NO_ANSWER,
        }
    }
}

/// The validated `[acd]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AcdConfig {
    /// Queues in config order (names unique).
    pub queues: Vec<Arc<QueueConfig>>,
    /// Agents in config order (ids, registered users and tokens unique).
    pub agents: Vec<Arc<AgentConfig>>,
    /// Not-ready reason codes, config order, always with "no answer" and "restart".
    pub reasons: Vec<String>,
    /// The defaults queues and agents were filled with.
    pub defaults: AcdDefaults,
}

impl Default for AcdConfig {
    fn default() -> Self {
        AcdConfig {
            queues: Vec::new(),
            agents: Vec::new(),
            reasons: with_builtin_reasons(DEFAULT_REASONS.iter().map(|s| s.to_string())),
            defaults: AcdDefaults::default(),
        }
    }
}

impl AcdConfig {
    /// The queue of this name.
    pub fn queue(&self, name: &str) -> Option<&Arc<QueueConfig>> {
        self.queues.iter().find(|q| &*q.name == name)
    }

    /// The agent with this id.
    pub fn agent(&self, id: &str) -> Option<&Arc<AgentConfig>> {
        self.agents.iter().find(|a| &*a.id == id)
    }

    /// The agent whose phone registers as this SIP user.
    pub fn agent_by_user(&self, user: &str) -> Option<&Arc<AgentConfig>> {
        self.agents
            .iter()
            .find(|a| matches!(&a.contact, VoiceContact::Registered { user: u, .. } if u == user))
    }

    /// Whether `reason` is a configured not-ready reason code.
    pub fn has_reason(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r == reason)
    }

    /// The queues this agent is a member of, in config order.
    pub fn queues_of<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a Arc<QueueConfig>> {
        self.queues
            .iter()
            .filter(move |q| q.members.iter().any(|m| &**m == agent))
    }

    /// Every prompt the queues may play (music, announcements, hang-up exits), sorted,
    /// so the server can preload them.
    pub fn prompt_names(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for q in &self.queues {
            out.extend(q.music.iter().cloned());
            out.extend(q.announcement.iter().map(|(p, _)| p.clone()));
            if let ExitTarget::Hangup(ps) = &q.exit {
                out.extend(ps.iter().cloned());
            }
        }
        out
    }
}

/// What exists elsewhere in the config, for checking the names `[acd]` refers to.
pub struct AcdReferences<'a> {
    /// Mailbox numbers (`[[voicemail.mailboxes]]`).
    pub mailboxes: Vec<String>,
    /// Flow names and each flow's node names (`[flows]`).
    pub flows: BTreeMap<String, Vec<String>>,
    /// Trunk names (none are configurable yet: a trunk phone is refused while empty).
    pub trunks: Vec<String>,
    /// Whether `<prompt dir>/<name>.wav` exists.
    pub prompt_exists: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for AcdReferences<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcdReferences")
            .field("mailboxes", &self.mailboxes)
            .field("flows", &self.flows)
            .field("trunks", &self.trunks)
            .finish_non_exhaustive()
    }
}

impl<'a> AcdReferences<'a> {
    /// No mailboxes, flows or trunks; prompts checked by `prompt_exists`.
    pub fn new(prompt_exists: &'a dyn Fn(&str) -> bool) -> Self {
        AcdReferences {
            mailboxes: Vec::new(),
            flows: BTreeMap::new(),
            trunks: Vec::new(),
            prompt_exists,
        }
    }

    /// The flow and node names of a parsed flow set, for [`AcdReferences::flows`].
    pub fn flows_of(set: &crate::ivr::flow::FlowSet) -> BTreeMap<String, Vec<String>> {
        set.names()
            .filter_map(|n| {
                let flow = set.flow(n)?;
                Some((
                    n.to_string(),
                    flow.node_names().map(str::to_string).collect(),
                ))
            })
            .collect()
    }
}

/// The queue names under `[[acd.queues]]`, unvalidated (entries without a string `name`
/// are skipped), for checking flows' queue nodes before [`parse_acd`] runs.
pub fn queue_names(acd: &toml::Value) -> Vec<String> {
    acd.get("queues")
        .and_then(toml::Value::as_array)
        .map(|qs| {
            qs.iter()
                .filter_map(|q| q.get("name").and_then(toml::Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn with_builtin_reasons(reasons: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = reasons.collect();
    for r in [REASON_NO_ANSWER, REASON_RESTART] {
        if !out.iter().any(|o| o == r) {
            out.push(r.to_string());
        }
    }
    out
}

const TOP_KEYS: &[&str] = &["reasons", "defaults", "queues", "agents"];
const DEFAULTS_KEYS: &[&str] = &[
    "ring_timeout_s",
    "retry_delay_s",
    "wrap_up_s",
    "service_level_s",
    "max_no_answer",
];
const QUEUE_KEYS: &[&str] = &[
    "name",
    "strategy",
    "skills",
    "priority",
    "ring_timeout_s",
    "retry_delay_s",
    "max_wait_s",
    "max_len",
    "wrap_up_s",
    "music",
    "announcement",
    "position_every_s",
    "service_level_s",
    "exit_key",
    "exit",
    "relax",
    "members",
];
const AGENT_KEYS: &[&str] = &["id", "name", "token", "skills", "max_no_answer", "phone"];
const ANNOUNCEMENT_KEYS: &[&str] = &["prompt", "every_s"];
const RELAX_KEYS: &[&str] = &["after_s", "min_level", "drop"];
const EXIT_KEYS: &[&str] = &["mailbox", "queue", "flow", "node", "hangup"];
const PHONE_KEYS: &[&str] = &["user", "password", "uri", "trunk", "number"];

struct Cx<'a> {
    file: &'a str,
    refs: &'a AcdReferences<'a>,
}

/// A TOML table being read: its dotted key and its entries.
struct Tbl<'t> {
    key: String,
    t: &'t toml::Table,
}

impl<'t> Tbl<'t> {
    fn get(&self, name: &str) -> Option<&'t toml::Value> {
        self.t.get(name)
    }

    fn k(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }
}

impl<'a> Cx<'a> {
    fn err(&self, key: impl Into<String>, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            expected: expected.into(),
        }
    }

    /// `v` as a table at `key` whose keys are all in `allowed`.
    fn table<'t>(
        &self,
        key: String,
        v: &'t toml::Value,
        allowed: &[&str],
    ) -> Result<Tbl<'t>, ConfigError> {
        let t = v
            .as_table()
            .ok_or_else(|| self.err(&key, format!("expected a table, found {}", v.type_str())))?;
        for name in t.keys() {
            if !allowed.contains(&name.as_str()) {
                return Err(self.err(
                    format!("{key}.{name}"),
                    format!("unknown key; expected one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Tbl { key, t })
    }

    fn array<'t>(
        &self,
        key: &str,
        v: Option<&'t toml::Value>,
    ) -> Result<&'t [toml::Value], ConfigError> {
        match v {
            None => Ok(&[]),
            Some(toml::Value::Array(a)) => Ok(a),
            Some(other) => Err(self.err(
                key,
                format!("expected an array, found {}", other.type_str()),
            )),
        }
    }

    fn string(&self, key: &str, v: Option<&toml::Value>) -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn required(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        what: &str,
    ) -> Result<String, ConfigError> {
        self.string(key, v)?
            .ok_or_else(|| self.err(key, format!("expected {what} (required)")))
    }

    fn secs(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        min: f64,
        max: f64,
    ) -> Result<Option<Duration>, ConfigError> {
        let s = match v {
            None => return Ok(None),
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(toml::Value::Float(f)) => *f,
            Some(other) => {
                return Err(self.err(
                    key,
                    format!("expected seconds (a number), found {}", other.type_str()),
                ))
            }
        };
        if !(s.is_finite() && s >= min && s <= max) {
            return Err(self.err(
                key,
                format!("expected seconds between {min} and {max}, found {s}"),
            ));
        }
        Ok(Some(Duration::from_secs_f64(s)))
    }

    fn int(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let n = match v {
            None => return Ok(None),
            Some(toml::Value::Integer(i)) => *i,
            Some(other) => {
                return Err(self.err(
                    key,
                    format!("expected an integer, found {}", other.type_str()),
                ))
            }
        };
        if n < min || n > max {
            return Err(self.err(
                key,
                format!("expected an integer between {min} and {max}, found {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// A name of letters, digits and `extra` characters, 1 to 64 long.
    fn name(&self, key: &str, s: &str, what: &str, extra: &str) -> Result<(), ConfigError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
        if ok {
            return Ok(());
        }
        let extra: Vec<String> = extra.chars().map(|c| format!("`{c}`")).collect();
        Err(self.err(
            key,
            format!(
                "expected {what} of 1 to 64 letters, digits, {}, found {s:?}",
                extra.join(", ")
            ),
        ))
    }

    fn prompt(&self, key: &str, v: Option<&toml::Value>) -> Result<Option<String>, ConfigError> {
        let Some(p) = self.string(key, v)? else {
            return Ok(None);
        };
        let ok = !p.is_empty()
            && p.len() <= 128
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(self.err(
                key,
                format!("expected a prompt name of letters, digits, `-`, `_` and `.`, found {p:?}"),
            ));
        }
        if !(self.refs.prompt_exists)(&p) {
            return Err(self.err(
                key,
                format!(
                    "expected the name of a prompt in the prompt directory, {p}.wav does not exist"
                ),
            ));
        }
        Ok(Some(p))
    }

    /// `{ skill = level, ... }` with levels 1..=5, in name order.
    fn skills(&self, key: &str, v: Option<&toml::Value>) -> Result<Vec<(String, u8)>, ConfigError> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        let t = v.as_table().ok_or_else(|| {
            self.err(
                key,
                format!(
                    "expected a table of skill = level, like {{ english = 3 }}, found {}",
                    v.type_str()
                ),
            )
        })?;
        let mut out = Vec::with_capacity(t.len());
        for (name, level) in t {
            let k = format!("{key}.{name}");
            self.name(&k, name, "a skill name", "-_")?;
            let level = match level {
                toml::Value::Integer(l @ 1..=5) => *l as u8,
                other => {
                    return Err(self.err(
                        &k,
                        format!("expected a skill level from 1 to 5, found {other}"),
                    ))
                }
            };
            out.push((name.clone(), level));
        }
        Ok(out)
    }
}

/// Parses and validates the `[acd]` table (see the module doc).
pub fn parse_acd(
    v: &toml::Value,
    file: &str,
    refs: &AcdReferences,
) -> Result<AcdConfig, ConfigError> {
    let cx = Cx { file, refs };
    let top = cx.table("acd".to_string(), v, TOP_KEYS)?;

    let reasons = parse_reasons(&cx, &top)?;
    let defaults = parse_defaults(&cx, &top)?;
    let agents = parse_agents(&cx, &top, &defaults)?;
    let queues = parse_queues(&cx, &top, &defaults, &agents)?;

    Ok(AcdConfig {
        queues: queues.into_iter().map(Arc::new).collect(),
        agents: agents.into_iter().map(Arc::new).collect(),
        reasons,
        defaults,
    })
}

fn parse_reasons(cx: &Cx, top: &Tbl) -> Result<Vec<String>, ConfigError> {
    let key = top.k("reasons");
    let Some(v) = top.get("reasons") else {
        return Ok(with_builtin_reasons(
            DEFAULT_REASONS.iter().map(|s| s.to_string()),
        ));
    };
    let mut out: Vec<String> = Vec::new();
    for (i, r) in cx.array(&key, Some(v))?.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let r = cx.required(&k, Some(r), "a reason code")?;
        if r.trim().is_empty() || r.trim() != r || r.len() > 64 || r.chars().any(char::is_control) {
            return Err(cx.err(
                &k,
                format!(
                    "expected a reason code of 1 to 64 characters without leading or trailing spaces, found {r:?}"
                ),
            ));
        }
        if out.contains(&r) {
            return Err(cx.err(&k, format!("reason {r:?} is listed twice")));
        }
        out.push(r);
    }
    Ok(with_builtin_reasons(out.into_iter()))
}

fn parse_defaults(cx: &Cx, top: &Tbl) -> Result<AcdDefaults, ConfigError> {
    let mut d = AcdDefaults::default();
    let Some(v) = top.get("defaults") else {
        return Ok(d);
    };
    let t = cx.table(top.k("defaults"), v, DEFAULTS_KEYS)?;
    let ring = "ring_timeout_s";
    d.ring_timeout = cx
        .secs(&t.k(ring), t.get(ring), 1.0, 300.0)?
        .unwrap_or(d.ring_timeout);
    let retry = "retry_delay_s";
    d.retry_delay = cx
        .secs(&t.k(retry), t.get(retry), 0.0, 3600.0)?
        .unwrap_or(d.retry_delay);
    let wrap = "wrap_up_s";
    d.wrap_up = cx
        .secs(&t.k(wrap), t.get(wrap), 0.0, 3600.0)?
        .unwrap_or(d.wrap_up);
    let sl = "service_level_s";
    d.service_level = cx
        .secs(&t.k(sl), t.get(sl), 1.0, 3600.0)?
        .unwrap_or(d.service_level);
    let mna = "max_no_answer";
    d.max_no_answer = cx
        .int(&t.k(mna), t.get(mna), 1, 100)?
        .map_or(d.max_no_answer, |n| n as u32);
    Ok(d)
}

fn parse_agents(
    cx: &Cx,
    top: &Tbl,
    defaults: &AcdDefaults,
) -> Result<Vec<AgentConfig>, ConfigError> {
    let list = cx.array(&top.k("agents"), top.get("agents"))?;
    let mut agents: Vec<AgentConfig> = Vec::with_capacity(list.len());
    let mut users: HashMap<String, usize> = HashMap::new();
    for (i, entry) in list.iter().enumerate() {
        let t = cx.table(format!("acd.agents[{i}]"), entry, AGENT_KEYS)?;
        let id = cx.required(&t.k("id"), t.get("id"), "an agent id")?;
        cx.name(&t.k("id"), &id, "an agent id", "-_.")?;
        if let Some(j) = agents.iter().position(|a| *a.id == *id) {
            return Err(cx.err(
                t.k("id"),
                format!("expected a unique agent id, but {id:?} is also acd.agents[{j}]"),
            ));
        }
        let name = cx
            .string(&t.k("name"), t.get("name"))?
            .unwrap_or_else(|| id.clone());
        let token = cx.required(
            &t.k("token"),
            t.get("token"),
            "a token for the agent client",
        )?;
        if token.trim().is_empty() {
            return Err(cx.err(t.k("token"), "expected a non-empty token"));
        }
        if let Some(j) = agents.iter().position(|a| a.token == token) {
            return Err(cx.err(
                t.k("token"),
                format!("expected a unique token, but acd.agents[{j}] has the same one"),
            ));
        }
        let skills = cx
            .skills(&t.k("skills"), t.get("skills"))?
            .into_iter()
            .map(|(name, level)| Skill {
                name: name.into(),
                level,
            })
            .collect();
        let max_no_answer = cx
            .int(&t.k("max_no_answer"), t.get("max_no_answer"), 1, 100)?
            .map_or(defaults.max_no_answer, |n| n as u32);
        let phone = t
            .get("phone")
            .ok_or_else(|| cx.err(t.k("phone"), "expected the agent's phone: { user, password }, { uri } or { trunk, number } (required)"))?;
        let contact = parse_phone(cx, t.k("phone"), phone)?;
        if let VoiceContact::Registered { user, .. } = &contact {
            if let Some(j) = users.insert(user.clone(), i) {
                return Err(cx.err(
                    format!("{}.phone.user", t.key),
                    format!("expected a unique SIP user, but {user:?} is also the phone of acd.agents[{j}]"),
                ));
            }
        }
        agents.push(AgentConfig {
            id: id.into(),
            name,
            skills,
            token,
            contact,
            max_no_answer,
        });
    }
    Ok(agents)
}

fn parse_phone(cx: &Cx, key: String, v: &toml::Value) -> Result<VoiceContact, ConfigError> {
    let t = cx.table(key, v, PHONE_KEYS)?;
    let has = |n: &str| t.get(n).is_some();
    let shapes =
        "expected exactly one of { user, password } (registers to caruso), { uri } or { trunk, number }";
    match (
        has("user") || has("password"),
        has("uri"),
        has("trunk") || has("number"),
    ) {
        (true, false, false) => {
            let user = cx.required(
                &t.k("user"),
                t.get("user"),
                "the SIP user name the phone registers as",
            )?;
            cx.name(&t.k("user"), &user, "a SIP user name", "-_.+")?;
            let password = cx.required(
                &t.k("password"),
                t.get("password"),
                "the phone's digest password",
            )?;
            if password.is_empty() {
                return Err(cx.err(t.k("password"), "expected a non-empty password"));
            }
            Ok(VoiceContact::Registered { user, password })
        }
        (false, true, false) => {
            let uri = cx.required(&t.k("uri"), t.get("uri"), "a SIP URI")?;
            if !is_sip_uri(&uri) {
                return Err(cx.err(
                    t.k("uri"),
                    format!("expected a SIP URI like \"sip:alice@127.0.0.1:5070\", found {uri:?}"),
                ));
            }
            Ok(VoiceContact::Uri(uri))
        }
        (false, false, true) => {
            if cx.refs.trunks.is_empty() {
                return Err(cx.err(
                    t.k("trunk"),
                    "trunks are not configurable yet; use { user, password } or { uri }",
                ));
            }
            let trunk = cx.required(&t.k("trunk"), t.get("trunk"), "a trunk name")?;
            if !cx.refs.trunks.contains(&trunk) {
                return Err(cx.err(
                    t.k("trunk"),
                    format!(
                        "expected one of the trunks ({}), found {trunk:?}",
                        cx.refs.trunks.join(", ")
                    ),
                ));
            }
            let number = cx.required(&t.k("number"), t.get("number"), "the number to dial")?;
            let ok = !number.is_empty()
                && number.len() <= 32
                && number.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_digit() || (i == 0 && c == '+') || c == '*' || c == '#'
                });
            if !ok {
                return Err(cx.err(
                    t.k("number"),
                    format!(
                        "expected a number of digits (optionally a leading +), found {number:?}"
                    ),
                ));
            }
            Ok(VoiceContact::External { trunk, number })
        }
        _ => Err(cx.err(t.key.clone(), shapes)),
    }
}

/// Whether `s` looks like `sip:[user@]host[:port][;params]` (or `sips:`).
fn is_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")) else {
        return false;
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?']).next().unwrap_or("");
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    !host.is_empty()
}

fn parse_queues(
    cx: &Cx,
    top: &Tbl,
    defaults: &AcdDefaults,
    agents: &[AgentConfig],
) -> Result<Vec<QueueConfig>, ConfigError> {
    let list = cx.array(&top.k("queues"), top.get("queues"))?;
    // First the names, so exits may refer to queues defined later.
    let mut names: Vec<String> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let t = cx.table(format!("acd.queues[{i}]"), entry, QUEUE_KEYS)?;
        let name = cx.required(&t.k("name"), t.get("name"), "a queue name")?;
        cx.name(&t.k("name"), &name, "a queue name", "-_")?;
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(cx.err(
                t.k("name"),
                format!("expected a unique queue name, but {name:?} is also acd.queues[{j}]"),
            ));
        }
        names.push(name);
    }
    let mut queues = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let t = cx.table(format!("acd.queues[{i}]"), entry, QUEUE_KEYS)?;
        queues.push(parse_queue(cx, &t, &names[i], &names, defaults, agents)?);
    }
    check_exit_loops(cx, &queues)?;
    Ok(queues)
}

fn parse_queue(
    cx: &Cx,
    t: &Tbl,
    name: &str,
    names: &[String],
    d: &AcdDefaults,
    agents: &[AgentConfig],
) -> Result<QueueConfig, ConfigError> {
    let strategy = match cx.string(&t.k("strategy"), t.get("strategy"))? {
        None => Strategy::default(),
        Some(s) => Strategy::from_name(&s).ok_or_else(|| {
            let all: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
            cx.err(
                t.k("strategy"),
                format!("expected one of {}, found {s:?}", all.join(", ")),
            )
        })?,
    };
    let requirements: Vec<Requirement> = cx
        .skills(&t.k("skills"), t.get("skills"))?
        .into_iter()
        .map(|(skill, min_level)| Requirement {
            skill: skill.into(),
            min_level,
        })
        .collect();
    let priority = cx
        .int(&t.k("priority"), t.get("priority"), -1000, 1000)?
        .unwrap_or(0) as i32;
    let secs = |n: &str, min: f64, max: f64| cx.secs(&t.k(n), t.get(n), min, max);
    let ring_timeout = secs("ring_timeout_s", 1.0, 300.0)?.unwrap_or(d.ring_timeout);
    let retry_delay = secs("retry_delay_s", 0.0, 3600.0)?.unwrap_or(d.retry_delay);
    let max_wait = secs("max_wait_s", 1.0, 86_400.0)?;
    let max_len = cx
        .int(&t.k("max_len"), t.get("max_len"), 1, 100_000)?
        .map(|n| n as usize);
    let wrap_up = secs("wrap_up_s", 0.0, 3600.0)?.unwrap_or(d.wrap_up);
    let music = cx.prompt(&t.k("music"), t.get("music"))?;
    let announcement = match t.get("announcement") {
        None => None,
        Some(v) => {
            let a = cx.table(t.k("announcement"), v, ANNOUNCEMENT_KEYS)?;
            let prompt = cx
                .prompt(&a.k("prompt"), a.get("prompt"))?
                .ok_or_else(|| cx.err(a.k("prompt"), "expected a prompt name (required)"))?;
            let every = cx
                .secs(&a.k("every_s"), a.get("every_s"), 1.0, 3600.0)?
                .ok_or_else(|| {
                    cx.err(a.k("every_s"), "expected the period in seconds (required)")
                })?;
            Some((prompt, every))
        }
    };
    let position_every = secs("position_every_s", 1.0, 3600.0)?;
    let service_level = secs("service_level_s", 1.0, 3600.0)?.unwrap_or(d.service_level);
    let exit_key = match cx.string(&t.k("exit_key"), t.get("exit_key"))? {
        None => None,
        Some(s) => {
            let mut chars = s.chars().map(|c| c.to_ascii_uppercase());
            match (chars.next(), chars.next()) {
                (Some(c), None) if DTMF_KEYS.contains(c) => Some(c),
                _ => {
                    return Err(cx.err(
                        t.k("exit_key"),
                        format!("expected one DTMF key (0-9, *, #, A-D), found {s:?}"),
                    ))
                }
            }
        }
    };
    let exit = match t.get("exit") {
        None => ExitTarget::Hangup(Vec::new()),
        Some(v) => parse_exit(cx, t.k("exit"), v, name, names)?,
    };
    let relaxations = parse_relax(cx, &t.k("relax"), t.get("relax"), &requirements)?;
    let members: Vec<AgentId> = match t.get("members") {
        None => agents
            .iter()
            .filter(|a| qualifies(a, &requirements))
            .map(|a| a.id.clone())
            .collect(),
        Some(v) => {
            let key = t.k("members");
            let mut out: Vec<AgentId> = Vec::new();
            for (j, m) in cx.array(&key, Some(v))?.iter().enumerate() {
                let k = format!("{key}[{j}]");
                let id = cx.required(&k, Some(m), "an agent id")?;
                let Some(agent) = agents.iter().find(|a| *a.id == *id) else {
                    return Err(cx.err(
                        &k,
                        format!("expected the id of an agent under [[acd.agents]], found {id:?}"),
                    ));
                };
                if out.contains(&agent.id) {
                    return Err(cx.err(&k, format!("agent {id:?} is listed twice")));
                }
                out.push(agent.id.clone());
            }
            out
        }
    };
    Ok(QueueConfig {
        name: QueueName::from(name),
        requirements,
        relaxations,
        priority,
        strategy,
        ring_timeout,
        retry_delay,
        max_wait,
        max_len,
        wrap_up,
        music,
        announcement,
        position_every,
        service_level,
        exit_key,
        exit,
        members,
    })
}

/// Whether the agent has every required skill at the minimum level or above.
fn qualifies(agent: &AgentConfig, requirements: &[Requirement]) -> bool {
    requirements.iter().all(|r| {
        agent
            .skills
            .iter()
            .any(|s| s.name == r.skill && s.level >= r.min_level)
    })
}

fn parse_exit(
    cx: &Cx,
    key: String,
    v: &toml::Value,
    own: &str,
    names: &[String],
) -> Result<ExitTarget, ConfigError> {
    let t = cx.table(key, v, EXIT_KEYS)?;
    let kinds: Vec<&str> = ["mailbox", "queue", "flow", "hangup"]
        .into_iter()
        .filter(|k| t.get(k).is_some())
        .collect();
    if kinds.len() != 1 {
        return Err(cx.err(
            t.key.clone(),
            "expected exactly one of { mailbox }, { queue }, { flow[, node] } or { hangup = [prompts] }",
        ));
    }
    if kinds[0] != "flow" && t.get("node").is_some() {
        return Err(cx.err(t.k("node"), "`node` goes only with `flow`"));
    }
    match kinds[0] {
        "mailbox" => {
            let m = cx.required(&t.k("mailbox"), t.get("mailbox"), "a mailbox number")?;
            if !cx.refs.mailboxes.contains(&m) {
                return Err(cx.err(
                    t.k("mailbox"),
                    format!("expected the number of a mailbox under [[voicemail.mailboxes]], found {m:?}"),
                ));
            }
            Ok(ExitTarget::Mailbox(m))
        }
        "queue" => {
            let q = cx.required(&t.k("queue"), t.get("queue"), "a queue name")?;
            if q == own {
                return Err(cx.err(
                    t.k("queue"),
                    format!("expected another queue; queue {own:?} cannot exit to itself"),
                ));
            }
            if !names.contains(&q) {
                return Err(cx.err(
                    t.k("queue"),
                    format!("expected the name of a queue under [[acd.queues]], found {q:?}"),
                ));
            }
            Ok(ExitTarget::Queue(q.into()))
        }
        "flow" => {
            let f = cx.required(&t.k("flow"), t.get("flow"), "a flow name")?;
            let Some(nodes) = cx.refs.flows.get(&f) else {
                return Err(cx.err(
                    t.k("flow"),
                    format!("expected the name of a flow under [flows], found {f:?}"),
                ));
            };
            let node = cx.string(&t.k("node"), t.get("node"))?;
            if let Some(n) = &node {
                if !nodes.contains(n) {
                    return Err(cx.err(
                        t.k("node"),
                        format!("expected a node of flow {f:?} ([flows.{f}.nodes]), found {n:?}"),
                    ));
                }
            }
            Ok(ExitTarget::Flow { flow: f, node })
        }
        _ => {
            let key = t.k("hangup");
            let mut prompts = Vec::new();
            for (j, p) in cx.array(&key, t.get("hangup"))?.iter().enumerate() {
                let k = format!("{key}[{j}]");
                prompts.extend(cx.prompt(&k, Some(p))?);
            }
            Ok(ExitTarget::Hangup(prompts))
        }
    }
}

fn parse_relax(
    cx: &Cx,
    key: &str,
    v: Option<&toml::Value>,
    requirements: &[Requirement],
) -> Result<Vec<Relaxation>, ConfigError> {
    let highest = requirements.iter().map(|r| r.min_level).max();
    let mut out: Vec<Relaxation> = Vec::new();
    let mut level_bound: Option<u8> = highest;
    let mut dropped: HashSet<String> = HashSet::new();
    for (j, step) in cx.array(key, v)?.iter().enumerate() {
        let s = cx.table(format!("{key}[{j}]"), step, RELAX_KEYS)?;
        let after = cx
            .secs(&s.k("after_s"), s.get("after_s"), 0.001, 86_400.0)?
            .ok_or_else(|| {
                cx.err(
                    s.k("after_s"),
                    "expected the wait in seconds after which the step applies (required)",
                )
            })?;
        if let Some(prev) = out.last() {
            if after <= prev.after {
                return Err(cx.err(
                    s.k("after_s"),
                    format!(
                        "expected a time after the previous step's {} s (steps go by increasing wait), found {} s",
                        prev.after.as_secs_f64(),
                        after.as_secs_f64()
                    ),
                ));
            }
        }
        let change = match (s.get("min_level"), s.get("drop")) {
            (Some(_), None) => {
                let k = s.k("min_level");
                let level = cx.int(&k, s.get("min_level"), 1, 5)?.unwrap_or(1) as u8;
                match level_bound {
                    None => {
                        return Err(cx.err(
                            &k,
                            "the queue requires no skills, so there is no level to lower",
                        ))
                    }
                    Some(b) if level >= b => {
                        return Err(cx.err(
                            &k,
                            format!(
                                "expected a level below {b} (relaxation only lowers levels: below the highest required level and every earlier min_level), found {level}"
                            ),
                        ))
                    }
                    Some(_) => level_bound = Some(level),
                }
                RelaxChange::MinLevel(level)
            }
            (None, Some(_)) => {
                let k = s.k("drop");
                let skill = cx.required(&k, s.get("drop"), "a skill name")?;
                if !requirements.iter().any(|r| *r.skill == *skill) {
                    return Err(cx.err(
                        &k,
                        format!("expected one of the queue's required skills, found {skill:?}"),
                    ));
                }
                if !dropped.insert(skill.clone()) {
                    return Err(cx.err(
                        &k,
                        format!("skill {skill:?} is already dropped by an earlier step"),
                    ));
                }
                RelaxChange::DropSkill(skill.into())
            }
            _ => {
                return Err(cx.err(
                    s.key.clone(),
                    "expected exactly one of `min_level` and `drop` besides `after_s`",
                ))
            }
        };
        out.push(Relaxation { after, change });
    }
    Ok(out)
}

/// Refuses chains of queue exits that come back to where they started.
fn check_exit_loops(cx: &Cx, queues: &[QueueConfig]) -> Result<(), ConfigError> {
    let next = |q: &QueueConfig| match &q.exit {
        ExitTarget::Queue(n) => queues.iter().position(|o| o.name == *n),
        _ => None,
    };
    for (i, q) in queues.iter().enumerate() {
        let mut path = vec![i];
        let mut at = next(q);
        while let Some(j) = at {
            if j == i {
                let names: Vec<&str> = path
                    .iter()
                    .chain(std::iter::once(&i))
                    .map(|&k| &*queues[k].name)
                    .collect();
                return Err(cx.err(
                    format!("acd.queues[{i}].exit.queue"),
                    format!(
                        "expected queue exits not to loop, found {} (a caller would bounce between them when no agent is logged in)",
                        names.join(" -> ")
                    ),
                ));
            }
            if path.contains(&j) {
                break; // a loop not through `i`: reported at its own queue
            }
            path.push(j);
            at = next(&queues[j]);
        }
    }
    Ok(())
}
