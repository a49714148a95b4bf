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
//!                                      # optional; after_s > 0 and strictly increasing;
//!                                      # each step either lowers every required level to
//!                                      # min_level or drops one required skill
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
use crate::config::reader::{Reader, Tbl};
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
    r: Reader<'a>,
    refs: &'a AcdReferences<'a>,
}

impl<'a> std::ops::Deref for Cx<'a> {
    type Target = Reader<'a>;
    fn deref(&self) -> &Reader<'a> {
        &self.r
    }
}

impl<'a> Cx<'a> {
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
    let cx = Cx {
        r: Reader::new(file),
        refs,
    };
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
            if !crate::config::is_sip_uri(&uri) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: &[&str] = &["moh", "please-hold", "goodbye", "sorry"];

    fn flows() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "main".to_string(),
            vec!["welcome".to_string(), "menu".to_string()],
        )])
    }

    fn parse_refs(text: &str, trunks: &[&str]) -> Result<AcdConfig, ConfigError> {
        let doc: toml::Table = toml::from_str(text).expect("test TOML parses");
        let exists = |p: &str| PROMPTS.contains(&p);
        let refs = AcdReferences {
            mailboxes: vec!["200".into()],
            flows: flows(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            prompt_exists: &exists,
        };
        let empty = toml::Value::Table(toml::Table::new());
        parse_acd(doc.get("acd").unwrap_or(&empty), "test.toml", &refs)
    }

    fn parse(text: &str) -> Result<AcdConfig, ConfigError> {
        parse_refs(text, &[])
    }

    /// The rejected config's key (the file is named too) and message.
    fn err(text: &str) -> (String, String) {
        let e = parse(text).expect_err("config should be rejected");
        assert_eq!(e.file, "test.toml");
        (e.key, e.expected)
    }

    fn err_key(text: &str) -> String {
        err(text).0
    }

    const AGENTS: &str = r#"
[[acd.agents]]
id = "alice"
name = "Alice Example"
token = "alice-secret"
skills = { english = 5, sales = 3 }
max_no_answer = 2
phone = { user = "alice", password = "alice-pass" }
[[acd.agents]]
id = "bob"
token = "bob-secret"
skills = { english = 2, support = 4 }
phone = { uri = "sip:bob@127.0.0.1:5070" }
[[acd.agents]]
id = "carol"
token = "carol-secret"
skills = { english = 1, sales = 1, support = 1 }
phone = { user = "carol", password = "c" }
"#;

    const FULL: &str = r#"
[acd]
reasons = ["break", "lunch", "training", "after missed call"]
[[acd.queues]]
name = "sales"
strategy = "best-skill"
skills = { english = 1, sales = 2 }
priority = 5
ring_timeout_s = 20
retry_delay_s = 2.5
max_wait_s = 600
max_len = 50
wrap_up_s = 10
music = "moh"
announcement = { prompt = "please-hold", every_s = 30 }
position_every_s = 60
service_level_s = 30
exit_key = "0"
exit = { mailbox = "200" }
relax = [ { after_s = 30, min_level = 1 }, { after_s = 60, drop = "sales" } ]
members = ["carol", "alice"]
[[acd.queues]]
name = "support"
skills = { support = 2 }
exit = { queue = "overflow" }
[[acd.queues]]
name = "overflow"
strategy = "ring-all"
exit = { flow = "main", node = "menu" }
[[acd.queues]]
name = "last"
exit = { hangup = ["sorry", "goodbye"] }
"#;

    fn full() -> AcdConfig {
        parse(&format!("{FULL}{AGENTS}")).expect("full example parses")
    }

    fn ids(q: &QueueConfig) -> Vec<&str> {
        q.members.iter().map(|m| &**m).collect()
    }

    #[test]
    fn full_example_parses_to_typed_values() {
        let c = full();
        assert_eq!(
            c.reasons,
            vec![
                "break",
                "lunch",
                "training",
                "after missed call",
                "no answer",
                "restart"
            ]
        );
        assert_eq!(c.queues.len(), 4);
        let s = c.queue("sales").unwrap();
        assert_eq!(&*s.name, "sales");
        assert_eq!(s.strategy, Strategy::BestSkill);
        assert_eq!(
            s.requirements,
            vec![
                Requirement {
                    skill: "english".into(),
                    min_level: 1
                },
                Requirement {
                    skill: "sales".into(),
                    min_level: 2
                },
            ]
        );
        assert_eq!(s.priority, 5);
        assert_eq!(s.ring_timeout, Duration::from_secs(20));
        assert_eq!(s.retry_delay, Duration::from_millis(2500));
        assert_eq!(s.max_wait, Some(Duration::from_secs(600)));
        assert_eq!(s.max_len, Some(50));
        assert_eq!(s.wrap_up, Duration::from_secs(10));
        assert_eq!(s.music.as_deref(), Some("moh"));
        assert_eq!(
            s.announcement,
            Some(("please-hold".to_string(), Duration::from_secs(30)))
        );
        assert_eq!(s.position_every, Some(Duration::from_secs(60)));
        assert_eq!(s.service_level, Duration::from_secs(30));
        assert_eq!(s.exit_key, Some('0'));
        assert_eq!(s.exit, ExitTarget::Mailbox("200".into()));
        assert_eq!(
            s.relaxations,
            vec![
                Relaxation {
                    after: Duration::from_secs(30),
                    change: RelaxChange::MinLevel(1)
                },
                Relaxation {
                    after: Duration::from_secs(60),
                    change: RelaxChange::DropSkill("sales".into())
                },
            ]
        );
        // Explicit members keep their order.
        assert_eq!(ids(s), vec!["carol", "alice"]);

        let sup = c.queue("support").unwrap();
        assert_eq!(sup.exit, ExitTarget::Queue("overflow".into()));
        // Default members: support >= 2 -> only bob.
        assert_eq!(ids(sup), vec!["bob"]);
        let over = c.queue("overflow").unwrap();
        assert_eq!(over.strategy, Strategy::RingAll);
        assert_eq!(
            over.exit,
            ExitTarget::Flow {
                flow: "main".into(),
                node: Some("menu".into())
            }
        );
        // No requirements: every agent, in config order.
        assert_eq!(ids(over), vec!["alice", "bob", "carol"]);
        assert_eq!(
            c.queue("last").unwrap().exit,
            ExitTarget::Hangup(vec!["sorry".into(), "goodbye".into()])
        );

        let a = c.agent("alice").unwrap();
        assert_eq!(a.name, "Alice Example");
        assert_eq!(a.token, "alice-secret");
        assert_eq!(a.max_no_answer, 2);
        assert_eq!(
            a.skills,
            vec![
                Skill {
                    name: "english".into(),
                    level: 5
                },
                Skill {
                    name: "sales".into(),
                    level: 3
                },
            ]
        );
        assert_eq!(
            a.contact,
            VoiceContact::Registered {
                user: "alice".into(),
                password: "alice-pass".into()
            }
        );
        let b = c.agent("bob").unwrap();
        assert_eq!(b.name, "bob");
        assert_eq!(
            b.contact,
            VoiceContact::Uri("sip:bob@127.0.0.1:5070".into())
        );

        // Lookups.
        assert_eq!(&*c.agent_by_user("carol").unwrap().id, "carol");
        assert!(c.agent_by_user("bob").is_none());
        assert!(c.agent("dave").is_none() && c.queue("nope").is_none());
        assert!(c.has_reason("lunch") && c.has_reason("no answer") && !c.has_reason("nap"));
        let of_alice: Vec<&str> = c.queues_of("alice").map(|q| &*q.name).collect();
        assert_eq!(of_alice, vec!["sales", "overflow", "last"]);
        let prompts: Vec<String> = c.prompt_names().into_iter().collect();
        assert_eq!(prompts, vec!["goodbye", "moh", "please-hold", "sorry"]);
    }

    #[test]
    fn defaults_apply() {
        let c = parse(&format!("[[acd.queues]]\nname = \"q\"\n{AGENTS}")).unwrap();
        let q = &c.queues[0];
        assert_eq!(q.strategy, Strategy::LongestIdle);
        assert!(q.requirements.is_empty() && q.relaxations.is_empty());
        assert_eq!(q.priority, 0);
        assert_eq!(q.ring_timeout, Duration::from_secs(15));
        assert_eq!(q.retry_delay, Duration::from_secs(5));
        assert_eq!(q.wrap_up, Duration::ZERO);
        assert_eq!(q.service_level, Duration::from_secs(20));
        assert_eq!(q.max_wait, None);
        assert_eq!(q.max_len, None);
        assert_eq!(q.music, None);
        assert_eq!(q.announcement, None);
        assert_eq!(q.position_every, None);
        assert_eq!(q.exit_key, None);
        assert_eq!(q.exit, ExitTarget::Hangup(vec![]));
        assert_eq!(c.agent("bob").unwrap().max_no_answer, 3);
        assert_eq!(
            c.reasons,
            vec!["break", "lunch", "training", "no answer", "restart"]
        );
        assert_eq!(c.defaults, AcdDefaults::default());

        let empty = parse("").unwrap();
        assert_eq!(empty, AcdConfig::default());
        assert!(empty.has_reason("restart") && empty.has_reason("break"));
    }

    #[test]
    fn acd_defaults_table_changes_the_defaults() {
        let c = parse(&format!(
            "[acd.defaults]\nring_timeout_s = 25\nretry_delay_s = 1\nwrap_up_s = 7\n\
             service_level_s = 45\nmax_no_answer = 5\n\
             [[acd.queues]]\nname = \"q\"\n[[acd.queues]]\nname = \"r\"\nring_timeout_s = 9\n{AGENTS}"
        ))
        .unwrap();
        let q = &c.queues[0];
        assert_eq!(q.ring_timeout, Duration::from_secs(25));
        assert_eq!(q.retry_delay, Duration::from_secs(1));
        assert_eq!(q.wrap_up, Duration::from_secs(7));
        assert_eq!(q.service_level, Duration::from_secs(45));
        assert_eq!(c.queues[1].ring_timeout, Duration::from_secs(9));
        assert_eq!(c.agent("bob").unwrap().max_no_answer, 5);
        assert_eq!(c.agent("alice").unwrap().max_no_answer, 2);
        assert_eq!(c.defaults.wrap_up, Duration::from_secs(7));
    }

    #[test]
    fn reasons_keep_builtins_once() {
        let c = parse("[acd]\nreasons = [\"restart\", \"coffee\"]\n").unwrap();
        assert_eq!(c.reasons, vec!["restart", "coffee", "no answer"]);
        assert_eq!(
            err_key("[acd]\nreasons = [\"a\", \"a\"]\n"),
            "acd.reasons[1]"
        );
        assert_eq!(err_key("[acd]\nreasons = [\"\"]\n"), "acd.reasons[0]");
        assert_eq!(err_key("[acd]\nreasons = [3]\n"), "acd.reasons[0]");
        assert_eq!(err_key("[acd]\nreasons = \"break\"\n"), "acd.reasons");
    }

    /// `FULL` + agents with `from` replaced by `to` (which must occur).
    fn full_with(from: &str, to: &str) -> String {
        let text = format!("{FULL}{AGENTS}");
        assert!(text.contains(from), "{from:?} not in the example");
        text.replacen(from, to, 1)
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert_eq!(err_key("[acd]\nqueue = []\n"), "acd.queue");
        assert_eq!(
            err_key("[acd.defaults]\nring_s = 1\n"),
            "acd.defaults.ring_s"
        );
        assert_eq!(
            err_key(&full_with("priority = 5", "prio = 5")),
            "acd.queues[0].prio"
        );
        assert_eq!(
            err_key(&full_with("every_s = 30", "every = 30")),
            "acd.queues[0].announcement.every"
        );
        assert_eq!(
            err_key(&full_with("after_s = 30,", "after = 30,")),
            "acd.queues[0].relax[0].after"
        );
        assert_eq!(
            err_key(&full_with(
                "{ mailbox = \"200\" }",
                "{ voicemail = \"200\" }"
            )),
            "acd.queues[0].exit.voicemail"
        );
        assert_eq!(
            err_key(&full_with("max_no_answer = 2", "max_missed = 2")),
            "acd.agents[0].max_missed"
        );
        assert_eq!(
            err_key(&full_with("password = \"alice-pass\"", "pass = \"x\"")),
            "acd.agents[0].phone.pass"
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        let (k, m) = err(&full_with("name = \"last\"", "name = \"sales\""));
        assert_eq!(k, "acd.queues[3].name");
        assert!(m.contains("acd.queues[0]"), "{m}");
        assert_eq!(
            err_key(&full_with("id = \"bob\"", "id = \"alice\"")),
            "acd.agents[1].id"
        );
        let (k, m) = err(&full_with("user = \"carol\"", "user = \"alice\""));
        assert_eq!(k, "acd.agents[2].phone.user");
        assert!(m.contains("acd.agents[0]"), "{m}");
        let (k, m) = err(&full_with(
            "token = \"bob-secret\"",
            "token = \"alice-secret\"",
        ));
        assert_eq!(k, "acd.agents[1].token");
        assert!(
            !m.contains("alice-secret"),
            "a token must not be echoed: {m}"
        );
        assert_eq!(
            err_key(&full_with(
                "members = [\"carol\", \"alice\"]",
                "members = [\"carol\", \"carol\"]"
            )),
            "acd.queues[0].members[1]"
        );
    }

    #[test]
    fn unknown_strategy_lists_the_names() {
        let (k, m) = err(&full_with("\"best-skill\"", "\"fastest\""));
        assert_eq!(k, "acd.queues[0].strategy");
        for s in Strategy::ALL {
            assert!(m.contains(s.as_str()), "{m}");
        }
        assert!(m.contains("fastest"), "{m}");
        // Every documented name parses.
        for s in Strategy::ALL {
            let c = parse(&full_with("\"best-skill\"", &format!("{:?}", s.as_str()))).unwrap();
            assert_eq!(c.queues[0].strategy, s);
        }
    }

    #[test]
    fn skill_levels_must_be_1_to_5() {
        assert_eq!(
            err_key(&full_with("sales = 2 }", "sales = 6 }")),
            "acd.queues[0].skills.sales"
        );
        assert_eq!(
            err_key(&full_with("english = 5,", "english = 0,")),
            "acd.agents[0].skills.english"
        );
        assert_eq!(
            err_key(&full_with("english = 5,", "english = \"5\",")),
            "acd.agents[0].skills.english"
        );
        assert_eq!(
            err_key(&full_with(
                "skills = { support = 2 }",
                "skills = [\"support\"]"
            )),
            "acd.queues[1].skills"
        );
        assert_eq!(
            err_key(&full_with("english = 5,", "\"eng lish\" = 5,")),
            "acd.agents[0].skills.eng lish"
        );
    }

    #[test]
    fn relax_steps_must_increase_in_time_and_lower_levels() {
        let relax =
            "relax = [ { after_s = 30, min_level = 1 }, { after_s = 60, drop = \"sales\" } ]";
        let with = |r: &str| full_with(relax, &format!("relax = [ {r} ]"));
        let (k, m) = err(&with(
            "{ after_s = 30, min_level = 1 }, { after_s = 30, drop = \"sales\" }",
        ));
        assert_eq!(k, "acd.queues[0].relax[1].after_s");
        assert!(m.contains("increasing"), "{m}");
        assert_eq!(
            err_key(&with(
                "{ after_s = 60, drop = \"sales\" }, { after_s = 30, min_level = 1 }"
            )),
            "acd.queues[0].relax[1].after_s"
        );
        // Highest required level is 2: min_level 2 lowers nothing, 3 would raise.
        assert_eq!(
            err_key(&with("{ after_s = 30, min_level = 3 }")),
            "acd.queues[0].relax[0].min_level"
        );
        assert_eq!(
            err_key(&with("{ after_s = 30, min_level = 2 }")),
            "acd.queues[0].relax[0].min_level"
        );
        // A later min_level must be lower than an earlier one.
        let c = parse(&full_with("sales = 2 }", "sales = 4 }").replacen(
            relax,
            "relax = [ { after_s = 10, min_level = 3 }, { after_s = 20, min_level = 1 } ]",
            1,
        ))
        .unwrap();
        assert_eq!(c.queues[0].relaxations[1].change, RelaxChange::MinLevel(1));
        let raised = full_with("sales = 2 }", "sales = 4 }").replacen(
            relax,
            "relax = [ { after_s = 10, min_level = 2 }, { after_s = 20, min_level = 3 } ]",
            1,
        );
        assert_eq!(
            parse(&raised).unwrap_err().key,
            "acd.queues[0].relax[1].min_level"
        );
        assert_eq!(
            err_key(&with("{ after_s = 30, drop = \"support\" }")),
            "acd.queues[0].relax[0].drop"
        );
        assert_eq!(
            err_key(&with(
                "{ after_s = 30, drop = \"sales\" }, { after_s = 40, drop = \"sales\" }"
            )),
            "acd.queues[0].relax[1].drop"
        );
        assert_eq!(
            err_key(&with("{ after_s = 30, drop = \"sales\", min_level = 1 }")),
            "acd.queues[0].relax[0]"
        );
        assert_eq!(
            err_key(&with("{ min_level = 1 }")),
            "acd.queues[0].relax[0].after_s"
        );
        assert_eq!(
            err_key(&with("{ after_s = 0, min_level = 1 }")),
            "acd.queues[0].relax[0].after_s"
        );
        // A queue without requirements has no level to lower.
        assert_eq!(
            err_key(&full_with(
                "strategy = \"ring-all\"",
                "relax = [ { after_s = 5, min_level = 1 } ]"
            )),
            "acd.queues[2].relax[0].min_level"
        );
    }

    #[test]
    fn exit_targets_must_exist() {
        let exit = "exit = { mailbox = \"200\" }";
        let with = |e: &str| full_with(exit, &format!("exit = {e}"));
        assert_eq!(
            err_key(&with("{ mailbox = \"999\" }")),
            "acd.queues[0].exit.mailbox"
        );
        assert_eq!(
            err_key(&with("{ queue = \"nope\" }")),
            "acd.queues[0].exit.queue"
        );
        let (k, m) = err(&with("{ queue = \"sales\" }"));
        assert_eq!(k, "acd.queues[0].exit.queue");
        assert!(m.contains("itself"), "{m}");
        assert_eq!(
            err_key(&with("{ flow = \"other\" }")),
            "acd.queues[0].exit.flow"
        );
        assert_eq!(
            err_key(&with("{ flow = \"main\", node = \"nowhere\" }")),
            "acd.queues[0].exit.node"
        );
        assert_eq!(
            err_key(&with("{ queue = \"support\", node = \"menu\" }")),
            "acd.queues[0].exit.node"
        );
        assert_eq!(
            err_key(&with("{ hangup = [\"nope\"] }")),
            "acd.queues[0].exit.hangup[0]"
        );
        assert_eq!(
            err_key(&with("{ mailbox = \"200\", queue = \"support\" }")),
            "acd.queues[0].exit"
        );
        assert_eq!(err_key(&with("{}")), "acd.queues[0].exit");
        assert_eq!(err_key(&with("\"200\"")), "acd.queues[0].exit");
        // A flow without a node starts at the flow's start.
        let c = parse(&with("{ flow = \"main\" }")).unwrap();
        assert_eq!(
            c.queues[0].exit,
            ExitTarget::Flow {
                flow: "main".into(),
                node: None
            }
        );
        // An exit to a queue defined later is fine (support -> overflow above).
    }

    #[test]
    fn queue_exit_loops_are_rejected() {
        // sales -> support -> overflow -> sales.
        let text = full_with(
            "exit = { flow = \"main\", node = \"menu\" }",
            "exit = { queue = \"sales\" }",
        )
        .replacen(
            "exit = { mailbox = \"200\" }",
            "exit = { queue = \"support\" }",
            1,
        );
        let (k, m) = err(&text);
        assert_eq!(k, "acd.queues[0].exit.queue");
        assert!(m.contains("sales -> support -> overflow -> sales"), "{m}");
        // A chain without a loop is fine.
        let ok = full_with(
            "exit = { mailbox = \"200\" }",
            "exit = { queue = \"support\" }",
        );
        assert_eq!(
            parse(&ok).unwrap().queues[0].exit,
            ExitTarget::Queue("support".into())
        );
    }

    #[test]
    fn members_must_be_agents() {
        let (k, m) = err(&full_with("\"carol\", \"alice\"", "\"carol\", \"dave\""));
        assert_eq!(k, "acd.queues[0].members[1]");
        assert!(m.contains("dave"), "{m}");
        // Explicit members need not have the skills (relaxation may make them eligible).
        let c = parse(&full_with("\"carol\", \"alice\"", "\"bob\"")).unwrap();
        assert_eq!(ids(&c.queues[0]), vec!["bob"]);
        // Default members: every required skill at or above the minimum level.
        let c = parse(&full_with("members = [\"carol\", \"alice\"]\n", "")).unwrap();
        assert_eq!(ids(&c.queues[0]), vec!["alice"]);
        let c = parse(
            &full_with("sales = 2 }", "sales = 1 }")
                .replacen("members = [\"carol\", \"alice\"]\n", "", 1)
                .replacen("{ after_s = 30, min_level = 1 }, ", "", 1),
        )
        .unwrap();
        assert_eq!(ids(&c.queues[0]), vec!["alice", "carol"]);
    }

    #[test]
    fn prompts_must_exist() {
        assert_eq!(
            err_key(&full_with("\"moh\"", "\"jazz\"")),
            "acd.queues[0].music"
        );
        assert_eq!(
            err_key(&full_with("\"please-hold\"", "\"hold-on\"")),
            "acd.queues[0].announcement.prompt"
        );
        assert_eq!(
            err_key(&full_with("\"moh\"", "\"../etc/passwd\"")),
            "acd.queues[0].music"
        );
        assert_eq!(
            err_key(&full_with(
                "{ prompt = \"please-hold\", every_s = 30 }",
                "{ prompt = \"please-hold\" }"
            )),
            "acd.queues[0].announcement.every_s"
        );
    }

    #[test]
    fn phones_and_secrets() {
        assert_eq!(
            err_key(&full_with("token = \"alice-secret\"", "token = \"\"")),
            "acd.agents[0].token"
        );
        assert_eq!(
            err_key(&full_with("token = \"bob-secret\"\n", "")),
            "acd.agents[1].token"
        );
        assert_eq!(
            err_key(&full_with("password = \"alice-pass\"", "password = \"\"")),
            "acd.agents[0].phone.password"
        );
        assert_eq!(
            err_key(&full_with(", password = \"alice-pass\"", "")),
            "acd.agents[0].phone.password"
        );
        assert_eq!(
            err_key(&full_with("\"sip:bob@127.0.0.1:5070\"", "\"http://bob\"")),
            "acd.agents[1].phone.uri"
        );
        assert_eq!(
            err_key(&full_with(
                "uri = \"sip:bob@127.0.0.1:5070\"",
                "uri = \"sip:x\", user = \"bob\""
            )),
            "acd.agents[1].phone"
        );
        assert_eq!(
            err_key(&full_with(
                "phone = { uri = \"sip:bob@127.0.0.1:5070\" }\n",
                ""
            )),
            "acd.agents[1].phone"
        );
        let trunk = full_with(
            "{ uri = \"sip:bob@127.0.0.1:5070\" }",
            "{ trunk = \"pstn\", number = \"+48123456789\" }",
        );
        let (k, m) = err(&trunk);
        assert_eq!(k, "acd.agents[1].phone.trunk");
        assert!(m.contains("trunks are not configurable yet"), "{m}");
        // Once trunks exist, a known trunk works and an unknown one does not.
        let c = parse_refs(&trunk, &["pstn"]).unwrap();
        assert_eq!(
            c.agent("bob").unwrap().contact,
            VoiceContact::External {
                trunk: "pstn".into(),
                number: "+48123456789".into()
            }
        );
        assert_eq!(
            parse_refs(&trunk, &["other"]).unwrap_err().key,
            "acd.agents[1].phone.trunk"
        );
        assert_eq!(
            parse_refs(&trunk.replace("+48123456789", "12a"), &["pstn"])
                .unwrap_err()
                .key,
            "acd.agents[1].phone.number"
        );
        assert_eq!(
            err_key(&full_with("id = \"bob\"", "id = \"b o b\"")),
            "acd.agents[1].id"
        );
    }

    #[test]
    fn exit_key_is_one_dtmf_key() {
        assert_eq!(
            err_key(&full_with("exit_key = \"0\"", "exit_key = \"00\"")),
            "acd.queues[0].exit_key"
        );
        assert_eq!(
            err_key(&full_with("exit_key = \"0\"", "exit_key = \"x\"")),
            "acd.queues[0].exit_key"
        );
        assert_eq!(
            err_key(&full_with("exit_key = \"0\"", "exit_key = \"\"")),
            "acd.queues[0].exit_key"
        );
        assert_eq!(
            err_key(&full_with("exit_key = \"0\"", "exit_key = 0")),
            "acd.queues[0].exit_key"
        );
        let c = parse(&full_with("exit_key = \"0\"", "exit_key = \"#\"")).unwrap();
        assert_eq!(c.queues[0].exit_key, Some('#'));
        let c = parse(&full_with("exit_key = \"0\"", "exit_key = \"b\"")).unwrap();
        assert_eq!(c.queues[0].exit_key, Some('B'));
    }

    #[test]
    fn values_out_of_range() {
        for (from, to, key) in [
            (
                "ring_timeout_s = 20",
                "ring_timeout_s = 0",
                "acd.queues[0].ring_timeout_s",
            ),
            (
                "retry_delay_s = 2.5",
                "retry_delay_s = -1",
                "acd.queues[0].retry_delay_s",
            ),
            (
                "max_wait_s = 600",
                "max_wait_s = \"long\"",
                "acd.queues[0].max_wait_s",
            ),
            ("max_len = 50", "max_len = 0", "acd.queues[0].max_len"),
            (
                "wrap_up_s = 10",
                "wrap_up_s = 99999",
                "acd.queues[0].wrap_up_s",
            ),
            ("priority = 5", "priority = 5000", "acd.queues[0].priority"),
            (
                "service_level_s = 30",
                "service_level_s = 0",
                "acd.queues[0].service_level_s",
            ),
            (
                "position_every_s = 60",
                "position_every_s = 0",
                "acd.queues[0].position_every_s",
            ),
            (
                "max_no_answer = 2",
                "max_no_answer = 0",
                "acd.agents[0].max_no_answer",
            ),
            (
                "name = \"sales\"",
                "name = \"sa les\"",
                "acd.queues[0].name",
            ),
        ] {
            assert_eq!(err_key(&full_with(from, to)), key, "{to}");
        }
        assert_eq!(err_key("[acd]\nqueues = 1\n"), "acd.queues");
        assert_eq!(
            err_key("[[acd.queues]]\nstrategy = \"random\"\n"),
            "acd.queues[0].name"
        );
        let e = parse("[[acd.queues]]\nname = 1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("test.toml: key `acd.queues[0].name`"),
            "{e}"
        );
    }

    #[test]
    fn queue_names_and_flow_references() {
        let doc: toml::Table = toml::from_str(FULL).unwrap();
        assert_eq!(
            queue_names(&doc["acd"]),
            vec!["sales", "support", "overflow", "last"]
        );
        assert!(queue_names(&toml::Value::Integer(1)).is_empty());

        // Flows parsed with those queue names, then their nodes as exit references.
        let text = r#"
[flows.main]
start = "hello"
[flows.main.nodes.hello]
type = "play"
prompts = ["goodbye"]
next = "q"
[flows.main.nodes.q]
type = "queue"
queue = "sales"
"#;
        let flows_doc: toml::Table = toml::from_str(text).unwrap();
        let frefs = crate::ivr::flow::References {
            mailboxes: vec![],
            trunks: vec![],
            queues: Some(queue_names(&doc["acd"])),
        };
        let set =
            crate::ivr::flow::parse_flows(&flows_doc["flows"], "test.toml", &frefs, &|_| true)
                .unwrap();
        let flows = AcdReferences::flows_of(&set);
        assert_eq!(flows.len(), 1);
        let mut nodes = flows["main"].clone();
        nodes.sort();
        assert_eq!(nodes, vec!["hello", "q"]);
    }
}
