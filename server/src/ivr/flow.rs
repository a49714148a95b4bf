//! IVR flow definitions: the `[flows]` table of the config, parsed and validated into a
//! [`FlowSet`] by [`parse_flows`].
//!
//! A flow is a graph of named nodes entered at `start`. Validation happens once, at
//! parse time; every error names the file and the full dotted key
//! (`flows.main.nodes.menu.timeout_s`). Rejected: unknown keys, unknown node names in
//! any edge, a missing or unknown `start`, nodes unreachable from `start`, missing prompt
//! files, unknown mailboxes / trunks / queues, values out of range, and loops on which
//! no node waits for the caller (only `menu` and `collect` wait for input).
//!
//! # Node reference (TOML, `[flows.<flow>.nodes.<node>]`, `type = ...`)
//!
//! ```text
//! play        prompts = [..], interruptible = false, next
//! menu        prompts = [..], options = { "1" = node, "42" = node, ... }, fallback,
//!             timeout_s = 10, inter_digit_timeout_s = 2, max_failures = 3,
//!             max_timeouts = 3, invalid_prompts = ["invalid"], timeout_prompts = ["no-input"]
//! collect     prompts = [..], variable, max_len, min_len = 1, terminator = "#" ("" = none),
//!             pattern (see ivr::pattern), next, fallback, timeout_s = 10,
//!             inter_digit_timeout_s = 5, max_failures = 3, max_timeouts = 3,
//!             invalid_prompts = ["invalid"], timeout_prompts = ["no-input"]
//! hours       zone = "Europe/Warsaw", windows = [{ days = "mon-fri" | ["sat", ..],
//!             from = "08:00", to = "17:00" }], closed_dates = ["2026-12-25"], open, closed
//! branch      variable, cases = { "value" = node }, match = "equals" | "prefix", default
//! set         variable, value ("${var}" is replaced by a variable's value), next
//! say_digits  variable | value, next        (digit by digit, prompts "0".."9")
//! say_number  variable | value, next        (a number, no leading zeros)
//! queue       queue
//! mailbox     mailbox, greeting = "unavailable" | "busy"
//! voicemail   mailbox (optional: else the caller is asked)
//! extension   user ("${var}" allowed)
//! external    trunk, number ("${var}" allowed)
//! hangup      prompts = []  (played before the BYE)
//! ```
//!
//! Timeouts are seconds (integer or decimal, 1 to 600). Prompt names are file names
//! without `.wav` in the prompt directory (letters, digits, `-`, `_`, `.`).

use super::hours::{self, BusinessHours, Window};
use super::pattern::{Pattern, DTMF_KEYS};
use super::{GreetingKind, Variables};
use crate::config::reader::Reader;
use crate::config::ConfigError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// What exists elsewhere in the config, for checking the names a flow refers to.
#[derive(Debug, Clone, Default)]
pub struct References {
    /// Mailbox numbers (`[[voicemail.mailboxes]]`).
    pub mailboxes: Vec<String>,
    /// Trunk names.
    pub trunks: Vec<String>,
    /// Queue names; `None` while queues are not configurable (any name is accepted).
    pub queues: Option<Vec<String>>,
}

/// Every flow of a config, validated. Calls hold an `Arc<FlowSet>`, so a reload does not
/// change the flow a call is in.
#[derive(Debug, Default)]
pub struct FlowSet {
    flows: BTreeMap<String, Arc<Flow>>,
    prompts: BTreeSet<String>,
}

impl FlowSet {
    /// The flow of this name.
    pub fn flow(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.get(name)
    }

    /// Flow names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flows.keys().map(String::as_str)
    }

    /// Every prompt any flow may play (defaults and the digits `0`-`9` for say nodes
    /// included), sorted, so the server can preload them.
    pub fn prompt_names(&self) -> impl Iterator<Item = &str> {
        self.prompts.iter().map(String::as_str)
    }
}

/// One validated flow.
#[derive(Debug)]
pub struct Flow {
    pub(crate) name: Arc<str>,
    pub(crate) start: NodeId,
    pub(crate) nodes: Vec<Node>,
}

impl Flow {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the first node.
    pub fn start(&self) -> &str {
        &self.nodes[self.start].name
    }

    /// Node names, sorted.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| &*n.name)
    }
}

/// Index of a node in [`Flow::nodes`].
pub(crate) type NodeId = usize;

/// A node: its name and what it does.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: Arc<str>,
    pub(crate) kind: Kind,
}

/// What a node does.
#[derive(Debug)]
pub(crate) enum Kind {
    Play {
        prompts: Vec<Arc<str>>,
        interruptible: bool,
        next: NodeId,
    },
    Menu(Menu),
    Collect(Collect),
    Hours {
        hours: BusinessHours,
        open: NodeId,
        closed: NodeId,
    },
    Branch {
        variable: String,
        prefix: bool,
        cases: Vec<(String, NodeId)>,
        default: NodeId,
    },
    Set {
        variable: String,
        value: Template,
        next: NodeId,
    },
    Say {
        number: bool,
        value: Template,
        next: NodeId,
    },
    Queue(String),
    Mailbox {
        mailbox: String,
        greeting: GreetingKind,
    },
    Voicemail(Option<String>),
    Extension(Template),
    External {
        trunk: String,
        number: Template,
    },
    Hangup(Vec<Arc<str>>),
}

/// What `menu` and `collect` share: prompts, timers, failure handling.
#[derive(Debug)]
pub(crate) struct Input {
    pub(crate) prompts: Vec<Arc<str>>,
    pub(crate) timeout: Duration,
    pub(crate) inter_digit: Duration,
    pub(crate) max_failures: u32,
    pub(crate) max_timeouts: u32,
    pub(crate) invalid_prompts: Vec<Arc<str>>,
    pub(crate) timeout_prompts: Vec<Arc<str>>,
    pub(crate) fallback: NodeId,
}

/// A `menu` node.
#[derive(Debug)]
pub(crate) struct Menu {
    pub(crate) input: Input,
    pub(crate) options: BTreeMap<String, NodeId>,
}

/// A `collect` node.
#[derive(Debug)]
pub(crate) struct Collect {
    pub(crate) input: Input,
    pub(crate) variable: String,
    pub(crate) min_len: usize,
    pub(crate) max_len: usize,
    pub(crate) terminator: Option<char>,
    pub(crate) pattern: Option<Pattern>,
    pub(crate) next: NodeId,
}

/// A string with `${var}` references, checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(String);

impl Template {
    /// A template of plain text (tests build flows by hand).
    #[cfg(test)]
    pub(crate) fn literal(s: &str) -> Template {
        Template(s.to_string())
    }

    /// The text with every `${var}` replaced (unset variables are empty).
    pub(crate) fn render(&self, vars: &Variables) -> String {
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find('}').unwrap_or(after.len());
            out.push_str(vars.get(&after[..end]).map_or("", String::as_str));
            rest = after.get(end + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

impl Kind {
    /// The nodes this one can go to.
    pub(crate) fn edges(&self) -> Vec<NodeId> {
        match self {
            Kind::Play { next, .. } | Kind::Set { next, .. } | Kind::Say { next, .. } => {
                vec![*next]
            }
            Kind::Menu(m) => m
                .options
                .values()
                .copied()
                .chain([m.input.fallback])
                .collect(),
            Kind::Collect(c) => vec![c.next, c.input.fallback],
            Kind::Hours { open, closed, .. } => vec![*open, *closed],
            Kind::Branch { cases, default, .. } => {
                cases.iter().map(|(_, n)| *n).chain([*default]).collect()
            }
            Kind::Queue(_)
            | Kind::Mailbox { .. }
            | Kind::Voicemail(_)
            | Kind::Extension(_)
            | Kind::External { .. }
            | Kind::Hangup(_) => Vec::new(),
        }
    }

    /// The input settings of a `menu` or `collect` node.
    pub(crate) fn input(&self) -> Option<&Input> {
        match self {
            Kind::Menu(m) => Some(&m.input),
            Kind::Collect(c) => Some(&c.input),
            _ => None,
        }
    }

    /// Whether the node waits for the caller's digits.
    pub(crate) fn waits_for_input(&self) -> bool {
        matches!(self, Kind::Menu(_) | Kind::Collect(_))
    }
}

/// Most nodes in one flow (keeps validation's recursion shallow).
const MAX_NODES: usize = 1000;

/// Parses and validates the `[flows]` table. `prompt_exists(name)` tells whether
/// `<prompt dir>/<name>.wav` exists.
pub fn parse_flows(
    flows: &toml::Value,
    file: &str,
    refs: &References,
    prompt_exists: &dyn Fn(&str) -> bool,
) -> Result<FlowSet, ConfigError> {
    let mut cx = Cx {
        r: Reader::new(file),
        refs,
        prompt_exists,
        prompts: BTreeSet::new(),
    };
    let table = flows
        .as_table()
        .ok_or_else(|| cx.err("flows", "expected a table of flows ([flows.<name>])"))?;
    let mut set = FlowSet::default();
    for (name, v) in table {
        let key = format!("flows.{name}");
        if !is_name(name) {
            return Err(cx.err(
                &key,
                format!("expected a flow name of letters, digits, `-` and `_`, found {name:?}"),
            ));
        }
        let flow = parse_flow(&mut cx, name, &key, v)?;
        set.flows.insert(name.clone(), Arc::new(flow));
    }
    set.prompts = cx.prompts;
    Ok(set)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

struct Cx<'a> {
    r: Reader<'a>,
    refs: &'a References,
    prompt_exists: &'a dyn Fn(&str) -> bool,
    prompts: BTreeSet<String>,
}

impl Cx<'_> {
    fn err(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        self.r.err(key, expected)
    }
}

/// The keys of one TOML table, with the ones read remembered (unknown keys are errors).
struct Fields<'t> {
    table: &'t toml::Table,
    key: String,
    used: Vec<&'static str>,
}

impl<'t> Fields<'t> {
    fn new(cx: &Cx, v: &'t toml::Value, key: String) -> Result<Fields<'t>, ConfigError> {
        let table = v
            .as_table()
            .ok_or_else(|| cx.err(&key, "expected a table"))?;
        Ok(Fields {
            table,
            key,
            used: Vec::new(),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }

    fn get(&mut self, name: &'static str) -> Option<&'t toml::Value> {
        self.used.push(name);
        self.table.get(name)
    }

    fn finish(&self, cx: &Cx, what: &str) -> Result<(), ConfigError> {
        match self.table.keys().find(|k| !self.used.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(cx.err(
                &self.key(k),
                format!(
                    "unknown key `{k}` in {what}; known keys: {}",
                    self.used.join(", ")
                ),
            )),
        }
    }

    fn str_opt(&mut self, cx: &Cx, name: &'static str) -> Result<Option<&'t str>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| cx.err(&self.key(name), format!("expected a string, found {v}"))),
        }
    }

    fn str_req(&mut self, cx: &Cx, name: &'static str) -> Result<&'t str, ConfigError> {
        self.str_opt(cx, name)?
            .ok_or_else(|| cx.err(&self.key(name), "expected a string (required)"))
    }

    fn bool_opt(
        &mut self,
        cx: &Cx,
        name: &'static str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        Ok(cx
            .r
            .bool(&self.key(name), self.get(name))?
            .unwrap_or(default))
    }

    fn secs(&mut self, cx: &Cx, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let d = cx.r.secs(&self.key(name), self.get(name), 1.0, 600.0)?;
        Ok(d.unwrap_or(Duration::from_secs_f64(default)))
    }

    fn count(
        &mut self,
        cx: &Cx,
        name: &'static str,
        default: Option<u32>,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let v = match (self.get(name), default) {
            (None, Some(d)) => return Ok(d),
            (None, None) => {
                return Err(cx.err(
                    &self.key(name),
                    format!("expected a number between {min} and {max} (required)"),
                ))
            }
            (Some(v), _) => v,
        };
        match v.as_integer() {
            Some(i) if i >= min as i64 && i <= max as i64 => Ok(i as u32),
            _ => Err(cx.err(
                &self.key(name),
                format!("expected a whole number between {min} and {max}, found {v}"),
            )),
        }
    }

    /// A required reference to a node of this flow.
    fn node(
        &mut self,
        cx: &Cx,
        name: &'static str,
        index: &BTreeMap<&str, NodeId>,
    ) -> Result<NodeId, ConfigError> {
        let target = self.str_req(cx, name)?;
        node_ref(cx, &self.key(name), target, index)
    }

    /// A prompt list; `default` when absent (`None`: required, non-empty).
    fn prompts(
        &mut self,
        cx: &mut Cx,
        name: &'static str,
        default: Option<&[&str]>,
    ) -> Result<Vec<Arc<str>>, ConfigError> {
        let key = self.key(name);
        let Some(v) = self.get(name) else {
            let Some(default) = default else {
                return Err(cx.err(&key, "expected a list of prompt names (required)"));
            };
            for p in default {
                if !(cx.prompt_exists)(p) {
                    return Err(cx.err(
                        &key,
                        format!(
                            "expected prompt {p:?} (the default) to exist in the prompt directory"
                        ),
                    ));
                }
                cx.prompts.insert(p.to_string());
            }
            return Ok(default.iter().map(|p| Arc::from(*p)).collect());
        };
        let list = v
            .as_array()
            .ok_or_else(|| cx.err(&key, format!("expected a list of prompt names, found {v}")))?;
        if list.is_empty() && default.is_none() {
            return Err(cx.err(&key, "expected at least one prompt"));
        }
        if list.len() > 32 {
            return Err(cx.err(&key, "expected at most 32 prompts"));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            let pkey = format!("{key}[{i}]");
            let p = p.as_str().ok_or_else(|| {
                cx.err(
                    &pkey,
                    format!("expected a prompt name (a string), found {p}"),
                )
            })?;
            check_prompt(cx, &pkey, p)?;
            out.push(Arc::from(p));
        }
        Ok(out)
    }

    /// A required variable name.
    fn variable(&mut self, cx: &Cx, name: &'static str) -> Result<String, ConfigError> {
        let v = self.str_req(cx, name)?;
        if !is_variable(v) {
            return Err(cx.err(
                &self.key(name),
                format!("expected a variable name of letters, digits and `_`, found {v:?}"),
            ));
        }
        Ok(v.to_string())
    }

    fn template(&mut self, cx: &Cx, name: &'static str) -> Result<Option<Template>, ConfigError> {
        match self.str_opt(cx, name)? {
            None => Ok(None),
            Some(s) => template(cx, &self.key(name), s).map(Some),
        }
    }
}

fn is_variable(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn template(cx: &Cx, key: &str, s: &str) -> Result<Template, ConfigError> {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(cx.err(key, format!("expected `}}` closing `${{` in {s:?}")));
        };
        if !is_variable(&after[..end]) {
            return Err(cx.err(
                key,
                format!(
                    "expected a variable name inside `${{...}}`, found {:?}",
                    &after[..end]
                ),
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(Template(s.to_string()))
}

fn node_ref(
    cx: &Cx,
    key: &str,
    target: &str,
    index: &BTreeMap<&str, NodeId>,
) -> Result<NodeId, ConfigError> {
    index.get(target).copied().ok_or_else(|| {
        let flow_nodes = key.split(".nodes.").next().unwrap_or(key);
        cx.err(
            key,
            format!(
                "expected the name of a node in {flow_nodes}.nodes, found unknown node {target:?}"
            ),
        )
    })
}

fn check_prompt(cx: &mut Cx, key: &str, p: &str) -> Result<(), ConfigError> {
    let ok_name = !p.is_empty()
        && p.len() <= 128
        && !p.starts_with('.')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok_name {
        return Err(cx.err(
            key,
            format!("expected a prompt name of letters, digits, `-`, `_` and `.`, found {p:?}"),
        ));
    }
    if !(cx.prompt_exists)(p) {
        return Err(cx.err(
            key,
            format!("expected prompt {p:?} to exist ({p}.wav in the prompt directory)"),
        ));
    }
    cx.prompts.insert(p.to_string());
    Ok(())
}

fn parse_flow(cx: &mut Cx, name: &str, key: &str, v: &toml::Value) -> Result<Flow, ConfigError> {
    let mut f = Fields::new(cx, v, key.to_string())?;
    let start = f.str_opt(cx, "start")?;
    let nodes = f.get("nodes");
    f.finish(cx, "a flow")?;
    let nodes_key = format!("{key}.nodes");
    let nodes = nodes
        .and_then(toml::Value::as_table)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            cx.err(
                &nodes_key,
                format!("expected a table of nodes ([{nodes_key}.<name>])"),
            )
        })?;
    if nodes.len() > MAX_NODES {
        return Err(cx.err(&nodes_key, format!("expected at most {MAX_NODES} nodes")));
    }
    let mut index = BTreeMap::new();
    for (i, n) in nodes.keys().enumerate() {
        if !is_name(n) {
            return Err(cx.err(
                &format!("{nodes_key}.{n}"),
                format!("expected a node name of letters, digits, `-` and `_`, found {n:?}"),
            ));
        }
        index.insert(n.as_str(), i);
    }
    let start_key = format!("{key}.start");
    let start = start
        .ok_or_else(|| cx.err(&start_key, "expected the name of the first node (required)"))?;
    let start = node_ref(cx, &start_key, start, &index)?;
    let mut parsed = Vec::with_capacity(nodes.len());
    for (n, v) in nodes {
        let kind = parse_node(cx, &format!("{nodes_key}.{n}"), v, &index)?;
        parsed.push(Node {
            name: Arc::from(n.as_str()),
            kind,
        });
    }
    let flow = Flow {
        name: Arc::from(name),
        start,
        nodes: parsed,
    };
    check_reachable(cx, &flow, &nodes_key)?;
    check_input_loops(cx, &flow, &nodes_key)?;
    Ok(flow)
}

fn parse_node(
    cx: &mut Cx,
    key: &str,
    v: &toml::Value,
    index: &BTreeMap<&str, NodeId>,
) -> Result<Kind, ConfigError> {
    let mut f = Fields::new(cx, v, key.to_string())?;
    let ty = f.str_req(cx, "type")?;
    let kind = match ty {
        "play" => Kind::Play {
            prompts: f.prompts(cx, "prompts", None)?,
            interruptible: f.bool_opt(cx, "interruptible", false)?,
            next: f.node(cx, "next", index)?,
        },
        "menu" => {
            let input = parse_input(cx, &mut f, index, 2.0)?;
            let okey = f.key("options");
            let options = f
                .get("options")
                .and_then(toml::Value::as_table)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| cx.err(&okey, "expected a table of options like { \"1\" = \"node\" }"))?;
            let mut map = BTreeMap::new();
            for (digits, target) in options {
                let dkey = format!("{okey}.{digits}");
                if digits.is_empty() || digits.len() > 16 || !digits.chars().all(|c| DTMF_KEYS.contains(c)) {
                    return Err(cx.err(
                        &dkey,
                        format!("expected an option of 1 to 16 DTMF keys (0-9 * # A-D), found {digits:?}"),
                    ));
                }
                let target = target
                    .as_str()
                    .ok_or_else(|| cx.err(&dkey, format!("expected a node name, found {target}")))?;
                map.insert(digits.clone(), node_ref(cx, &dkey, target, index)?);
            }
            Kind::Menu(Menu {
                input,
                options: map,
            })
        }
        "collect" => {
            let input = parse_input(cx, &mut f, index, 5.0)?;
            let variable = f.variable(cx, "variable")?;
            let max_len = f.count(cx, "max_len", None, 1, 64)? as usize;
            let min_len = f.count(cx, "min_len", Some(1), 0, 64)? as usize;
            if min_len > max_len {
                return Err(cx.err(
                    &f.key("min_len"),
                    format!("expected min_len ({min_len}) not above max_len ({max_len})"),
                ));
            }
            let terminator = match f.str_opt(cx, "terminator")? {
                None => Some('#'),
                Some("") => None,
                Some("#") => Some('#'),
                Some("*") => Some('*'),
                Some(other) => {
                    return Err(cx.err(
                        &f.key("terminator"),
                        format!("expected \"#\", \"*\" or \"\" (none), found {other:?}"),
                    ))
                }
            };
            let pattern = match f.str_opt(cx, "pattern")? {
                None => None,
                Some(p) => Some(Pattern::parse(p).map_err(|e| cx.err(&f.key("pattern"), e))?),
            };
            Kind::Collect(Collect {
                input,
                variable,
                min_len,
                max_len,
                terminator,
                pattern,
                next: f.node(cx, "next", index)?,
            })
        }
        "hours" => Kind::Hours {
            hours: parse_hours(cx, &mut f)?,
            open: f.node(cx, "open", index)?,
            closed: f.node(cx, "closed", index)?,
        },
        "branch" => {
            let variable = f.variable(cx, "variable")?;
            let prefix = match f.str_opt(cx, "match")? {
                None | Some("equals") => false,
                Some("prefix") => true,
                Some(other) => {
                    return Err(cx.err(
                        &f.key("match"),
                        format!("expected \"equals\" or \"prefix\", found {other:?}"),
                    ))
                }
            };
            let ckey = f.key("cases");
            let cases = f
                .get("cases")
                .and_then(toml::Value::as_table)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| cx.err(&ckey, "expected a table of cases like { \"value\" = \"node\" }"))?;
            let mut list = Vec::new();
            for (value, target) in cases {
                let vkey = format!("{ckey}.{value}");
                let target = target
                    .as_str()
                    .ok_or_else(|| cx.err(&vkey, format!("expected a node name, found {target}")))?;
                list.push((value.clone(), node_ref(cx, &vkey, target, index)?));
            }
            Kind::Branch {
                variable,
                prefix,
                cases: list,
                default: f.node(cx, "default", index)?,
            }
        }
        "set" => {
            let variable = f.variable(cx, "variable")?;
            let value = f
                .template(cx, "value")?
                .ok_or_else(|| cx.err(&f.key("value"), "expected a string (required)"))?;
            Kind::Set {
                variable,
                value,
                next: f.node(cx, "next", index)?,
            }
        }
        "say_digits" | "say_number" => {
            let var = f.str_opt(cx, "variable")?;
            let value = f.template(cx, "value")?;
            let value = match (var, value) {
                (Some(v), None) if is_variable(v) => Template(format!("${{{v}}}")),
                (Some(v), None) => {
                    return Err(cx.err(
                        &f.key("variable"),
                        format!("expected a variable name of letters, digits and `_`, found {v:?}"),
                    ))
                }
                (None, Some(t)) => t,
                _ => {
                    return Err(cx.err(
                        &f.key("variable"),
                        "expected exactly one of `variable` and `value`",
                    ))
                }
            };
            for d in 0..=9 {
                let p = d.to_string();
                if !(cx.prompt_exists)(&p) {
                    return Err(cx.err(
                        &f.key("type"),
                        format!("expected the digit prompts \"0\" ... \"9\" for {ty}; prompt {p:?} is missing"),
                    ));
                }
                cx.prompts.insert(p);
            }
            Kind::Say {
                number: ty == "say_number",
                value,
                next: f.node(cx, "next", index)?,
            }
        }
        "queue" => {
            let queue = f.str_req(cx, "queue")?;
            if let Some(queues) = &cx.refs.queues {
                if !queues.iter().any(|q| q == queue) {
                    return Err(cx.err(&f.key("queue"), format!("expected a configured queue, found unknown queue {queue:?}")));
                }
            } else if queue.is_empty() {
                return Err(cx.err(&f.key("queue"), "expected a queue name"));
            }
            Kind::Queue(queue.to_string())
        }
        "mailbox" => {
            let mailbox = f.str_req(cx, "mailbox")?;
            check_mailbox(cx, &f.key("mailbox"), mailbox)?;
            let greeting = match f.str_opt(cx, "greeting")? {
                None | Some("unavailable") => GreetingKind::Unavailable,
                Some("busy") => GreetingKind::Busy,
                Some(other) => {
                    return Err(cx.err(
                        &f.key("greeting"),
                        format!("expected \"unavailable\" or \"busy\", found {other:?}"),
                    ))
                }
            };
            Kind::Mailbox {
                mailbox: mailbox.to_string(),
                greeting,
            }
        }
        "voicemail" => {
            let mailbox = f.str_opt(cx, "mailbox")?;
            if let Some(m) = mailbox {
                check_mailbox(cx, &f.key("mailbox"), m)?;
            }
            Kind::Voicemail(mailbox.map(str::to_string))
        }
        "extension" => Kind::Extension(
            f.template(cx, "user")?
                .ok_or_else(|| cx.err(&f.key("user"), "expected a user or extension (required)"))?,
        ),
        "external" => {
            let trunk = f.str_req(cx, "trunk")?;
            if !cx.refs.trunks.iter().any(|t| t == trunk) {
                return Err(cx.err(&f.key("trunk"), format!("expected a configured trunk, found unknown trunk {trunk:?}")));
            }
            Kind::External {
                trunk: trunk.to_string(),
                number: f
                    .template(cx, "number")?
                    .ok_or_else(|| cx.err(&f.key("number"), "expected a number to dial (required)"))?,
            }
        }
        "hangup" => Kind::Hangup(f.prompts(cx, "prompts", Some(&[]))?),
        other => {
            return Err(cx.err(
                &f.key("type"),
                format!(
                    "expected a node type (play, menu, collect, hours, branch, set, say_digits, say_number, queue, mailbox, voicemail, extension, external, hangup), found {other:?}"
                ),
            ))
        }
    };
    f.finish(cx, &format!("a {ty} node"))?;
    Ok(kind)
}

fn check_mailbox(cx: &Cx, key: &str, mailbox: &str) -> Result<(), ConfigError> {
    if cx.refs.mailboxes.iter().any(|m| m == mailbox) {
        Ok(())
    } else {
        Err(cx.err(key, format!("expected a configured mailbox ([[voicemail.mailboxes]]), found unknown mailbox {mailbox:?}")))
    }
}

fn parse_input(
    cx: &mut Cx,
    f: &mut Fields,
    index: &BTreeMap<&str, NodeId>,
    inter_digit_default: f64,
) -> Result<Input, ConfigError> {
    Ok(Input {
        prompts: f.prompts(cx, "prompts", None)?,
        timeout: f.secs(cx, "timeout_s", 10.0)?,
        inter_digit: f.secs(cx, "inter_digit_timeout_s", inter_digit_default)?,
        max_failures: f.count(cx, "max_failures", Some(3), 1, 10)?,
        max_timeouts: f.count(cx, "max_timeouts", Some(3), 1, 10)?,
        invalid_prompts: f.prompts(cx, "invalid_prompts", Some(&["invalid"]))?,
        timeout_prompts: f.prompts(cx, "timeout_prompts", Some(&["no-input"]))?,
        fallback: f.node(cx, "fallback", index)?,
    })
}

fn parse_hours(cx: &mut Cx, f: &mut Fields) -> Result<BusinessHours, ConfigError> {
    let zone = f.str_req(cx, "zone")?;
    let zone = hours::zone(zone).map_err(|e| cx.err(&f.key("zone"), e))?;
    let wkey = f.key("windows");
    let windows = f
        .get("windows")
        .and_then(toml::Value::as_array)
        .ok_or_else(|| cx.err(&wkey, "expected a list of windows like [{ days = \"mon-fri\", from = \"08:00\", to = \"17:00\" }]"))?;
    let mut parsed = Vec::with_capacity(windows.len());
    for (i, w) in windows.iter().enumerate() {
        let mut wf = Fields::new(cx, w, format!("{wkey}[{i}]"))?;
        let dkey = wf.key("days");
        let days: Vec<&str> = match wf.get("days") {
            Some(toml::Value::String(s)) => vec![s.as_str()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|d| {
                    d.as_str()
                        .ok_or_else(|| cx.err(&dkey, format!("expected day names, found {d}")))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(cx.err(
                    &dkey,
                    "expected days like \"mon-fri\" or [\"sat\", \"sun\"]",
                ))
            }
        };
        let days = hours::days(&days).map_err(|e| cx.err(&dkey, e))?;
        let from = wf.str_req(cx, "from")?;
        let from = hours::time_of_day(from).map_err(|e| cx.err(&wf.key("from"), e))?;
        let to = wf.str_req(cx, "to")?;
        let to = hours::time_of_day(to).map_err(|e| cx.err(&wf.key("to"), e))?;
        parsed.push(Window::new(days, from, to).map_err(|e| cx.err(&wf.key("to"), e))?);
        wf.finish(cx, "a window")?;
    }
    let ckey = f.key("closed_dates");
    let mut closed = BTreeSet::new();
    match f.get("closed_dates") {
        None => {}
        Some(toml::Value::Array(a)) => {
            for (i, d) in a.iter().enumerate() {
                let k = format!("{ckey}[{i}]");
                let s = d.as_str().ok_or_else(|| {
                    cx.err(&k, format!("expected a date \"YYYY-MM-DD\", found {d}"))
                })?;
                closed.insert(hours::date(s).map_err(|e| cx.err(&k, e))?);
            }
        }
        Some(v) => return Err(cx.err(&ckey, format!("expected a list of dates, found {v}"))),
    }
    Ok(BusinessHours::new(zone, parsed, closed))
}

fn check_reachable(cx: &Cx, flow: &Flow, nodes_key: &str) -> Result<(), ConfigError> {
    let mut seen = vec![false; flow.nodes.len()];
    let mut todo = VecDeque::from([flow.start]);
    seen[flow.start] = true;
    while let Some(n) = todo.pop_front() {
        for e in flow.nodes[n].kind.edges() {
            if !seen[e] {
                seen[e] = true;
                todo.push_back(e);
            }
        }
    }
    let unreachable: Vec<&str> = flow
        .nodes
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|(n, _)| &*n.name)
        .collect();
    match unreachable.first() {
        None => Ok(()),
        Some(first) => Err(cx.err(
            &format!("{nodes_key}.{first}"),
            format!(
                "expected every node to be reachable from start {:?}; unreachable: {}",
                flow.start(),
                unreachable.join(", ")
            ),
        )),
    }
}

/// Rejects loops made only of nodes that do not wait for the caller (a runaway flow).
fn check_input_loops(cx: &Cx, flow: &Flow, nodes_key: &str) -> Result<(), ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    fn visit(
        flow: &Flow,
        n: NodeId,
        color: &mut [Color],
        path: &mut Vec<NodeId>,
    ) -> Option<Vec<NodeId>> {
        color[n] = Color::Gray;
        path.push(n);
        for e in flow.nodes[n].kind.edges() {
            if flow.nodes[e].kind.waits_for_input() {
                continue;
            }
            match color[e] {
                Color::Gray => {
                    let at = path.iter().position(|p| *p == e).unwrap_or(0);
                    let mut cycle = path[at..].to_vec();
                    cycle.push(e);
                    return Some(cycle);
                }
                Color::White => {
                    if let Some(c) = visit(flow, e, color, path) {
                        return Some(c);
                    }
                }
                Color::Black => {}
            }
        }
        path.pop();
        color[n] = Color::Black;
        None
    }
    let mut color = vec![Color::White; flow.nodes.len()];
    for n in 0..flow.nodes.len() {
        if color[n] != Color::White || flow.nodes[n].kind.waits_for_input() {
            continue;
        }
        if let Some(cycle) = visit(flow, n, &mut color, &mut Vec::new()) {
            let names: Vec<&str> = cycle.iter().map(|c| &*flow.nodes[*c].name).collect();
            return Err(cx.err(
                &format!("{nodes_key}.{}", names[0]),
                format!(
                    "expected every loop to pass a node that waits for the caller (menu or collect); this one never does: {}",
                    names.join(" -> ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Prompts that exist in the test prompt directory.
    pub(crate) const PROMPTS: &[&str] = &[
        "welcome",
        "goodbye",
        "invalid",
        "no-input",
        "main-menu",
        "sales-menu",
        "enter-account",
        "closed",
        "beep",
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
    ];

    pub(crate) fn refs() -> References {
        References {
            mailboxes: vec!["200".into()],
            trunks: vec!["pstn".into()],
            queues: None,
        }
    }

    pub(crate) fn parse_with(
        text: &str,
        refs: &References,
        exists: &dyn Fn(&str) -> bool,
    ) -> Result<FlowSet, ConfigError> {
        let doc: toml::Table = toml::from_str(text).expect("test TOML parses");
        parse_flows(&doc["flows"], "test.toml", refs, exists)
    }

    pub(crate) fn parse(text: &str) -> Result<FlowSet, ConfigError> {
        parse_with(text, &refs(), &|p| PROMPTS.contains(&p))
    }

    /// The error's key, checking the file is named too.
    fn err_key(text: &str) -> (String, String) {
        let e = parse(text).expect_err("config should be rejected");
        assert_eq!(e.file, "test.toml");
        (e.key, e.expected)
    }

    pub(crate) const DEMO: &str = r#"
[flows.main]
start = "welcome"
[flows.main.nodes.welcome]
type = "play"
prompts = ["welcome"]
interruptible = true
next = "menu"
[flows.main.nodes.menu]
type = "menu"
prompts = ["main-menu"]
options = { "1" = "sales", "2" = "support", "3" = "leave", "9" = "retrieve" }
fallback = "bye"
[flows.main.nodes.sales]
type = "queue"
queue = "sales"
[flows.main.nodes.support]
type = "queue"
queue = "support"
[flows.main.nodes.leave]
type = "mailbox"
mailbox = "200"
[flows.main.nodes.retrieve]
type = "voicemail"
[flows.main.nodes.bye]
type = "hangup"
prompts = ["goodbye"]
"#;

    #[test]
    fn demo_flow_parses_with_defaults() {
        let set = parse(DEMO).unwrap();
        let flow = set.flow("main").unwrap();
        assert_eq!(flow.start(), "welcome");
        assert_eq!(set.names().collect::<Vec<_>>(), ["main"]);
        // Defaults (invalid, no-input) are preloaded too; no digit prompts without say nodes.
        assert_eq!(
            set.prompt_names().collect::<Vec<_>>(),
            ["goodbye", "invalid", "main-menu", "no-input", "welcome"]
        );
        let menu = flow.nodes.iter().find(|n| &*n.name == "menu").unwrap();
        let Kind::Menu(m) = &menu.kind else {
            panic!("not a menu")
        };
        assert_eq!(m.input.timeout, Duration::from_secs(10));
        assert_eq!(m.input.inter_digit, Duration::from_secs(2));
        assert_eq!((m.input.max_failures, m.input.max_timeouts), (3, 3));
        assert_eq!(m.options.len(), 4);
    }

    #[test]
    fn say_nodes_preload_the_digit_prompts_and_need_them() {
        let text = r#"
[flows.f]
start = "s"
[flows.f.nodes.s]
type = "say_number"
value = "42"
next = "h"
[flows.f.nodes.h]
type = "hangup"
"#;
        let set = parse(text).unwrap();
        let names: Vec<_> = set.prompt_names().collect();
        assert_eq!(names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        let e = parse_with(text, &refs(), &|p| p != "7").unwrap_err();
        assert_eq!(e.key, "flows.f.nodes.s.type");
        assert!(e.expected.contains("\"7\""), "{}", e.expected);
    }

    #[test]
    fn unknown_node_in_an_edge_is_named_by_its_key() {
        let (key, expected) =
            err_key(&DEMO.replace("\"9\" = \"retrieve\"", "\"9\" = \"retreive\""));
        assert_eq!(key, "flows.main.nodes.menu.options.9");
        assert!(expected.contains("\"retreive\""), "{expected}");
        let (key, _) = err_key(&DEMO.replace("fallback = \"bye\"", "fallback = \"by\""));
        assert_eq!(key, "flows.main.nodes.menu.fallback");
    }

    #[test]
    fn start_must_name_a_node() {
        let (key, _) = err_key(&DEMO.replace("start = \"welcome\"", "start = \"hello\""));
        assert_eq!(key, "flows.main.start");
        let (key, _) = err_key(&DEMO.replace("start = \"welcome\"\n", ""));
        assert_eq!(key, "flows.main.start");
    }

    #[test]
    fn unreachable_nodes_are_rejected() {
        let text = format!("{DEMO}[flows.main.nodes.orphan]\ntype = \"hangup\"\n");
        let (key, expected) = err_key(&text);
        assert_eq!(key, "flows.main.nodes.orphan");
        assert!(
            expected.contains("reachable from start \"welcome\""),
            "{expected}"
        );
    }

    #[test]
    fn missing_prompts_are_rejected_with_their_index() {
        let (key, expected) = err_key(&DEMO.replace(
            "prompts = [\"welcome\"]",
            "prompts = [\"welcome\", \"welcom\"]",
        ));
        assert_eq!(key, "flows.main.nodes.welcome.prompts[1]");
        assert!(expected.contains("welcom.wav"), "{expected}");
        // A default prompt missing from the prompt directory names the implied key.
        let e = parse_with(DEMO, &refs(), &|p| p != "no-input").unwrap_err();
        assert_eq!(e.key, "flows.main.nodes.menu.timeout_prompts");
        // Path tricks are not prompt names.
        let (key, _) =
            err_key(&DEMO.replace("prompts = [\"goodbye\"]", "prompts = [\"../etc/passwd\"]"));
        assert_eq!(key, "flows.main.nodes.bye.prompts[0]");
    }

    #[test]
    fn loops_without_input_are_rejected_and_loops_through_a_menu_are_fine() {
        let looping = r#"
[flows.f]
start = "a"
[flows.f.nodes.a]
type = "play"
prompts = ["welcome"]
next = "b"
[flows.f.nodes.b]
type = "set"
variable = "x"
value = "1"
next = "c"
[flows.f.nodes.c]
type = "branch"
variable = "x"
cases = { "2" = "h" }
default = "b"
[flows.f.nodes.h]
type = "hangup"
"#;
        let (key, expected) = err_key(looping);
        assert_eq!(key, "flows.f.nodes.b");
        assert!(expected.contains("b -> c -> b"), "{expected}");
        let through_menu = DEMO.replace(
            "\"3\" = \"leave\"",
            "\"3\" = \"leave\", \"0\" = \"welcome\"",
        );
        parse(&through_menu).unwrap();
    }

    #[test]
    fn unknown_keys_and_types_are_rejected() {
        let (key, expected) =
            err_key(&DEMO.replace("fallback = \"bye\"", "fallback = \"bye\"\ntimeot_s = 5"));
        assert_eq!(key, "flows.main.nodes.menu.timeot_s");
        assert!(
            expected.contains("timeout_s"),
            "lists known keys: {expected}"
        );
        let (key, _) = err_key(&DEMO.replace("type = \"voicemail\"", "type = \"voicemale\""));
        assert_eq!(key, "flows.main.nodes.retrieve.type");
        let (key, _) =
            err_key(&DEMO.replace("start = \"welcome\"", "start = \"welcome\"\nbegin = 1"));
        assert_eq!(key, "flows.main.begin");
    }

    #[test]
    fn limits_are_checked() {
        let (key, _) =
            err_key(&DEMO.replace("fallback = \"bye\"", "fallback = \"bye\"\ntimeout_s = 0"));
        assert_eq!(key, "flows.main.nodes.menu.timeout_s");
        let (key, _) =
            err_key(&DEMO.replace("fallback = \"bye\"", "fallback = \"bye\"\ntimeout_s = 601"));
        assert_eq!(key, "flows.main.nodes.menu.timeout_s");
        let (key, _) =
            err_key(&DEMO.replace("fallback = \"bye\"", "fallback = \"bye\"\nmax_failures = 0"));
        assert_eq!(key, "flows.main.nodes.menu.max_failures");
        let ok = parse(&DEMO.replace(
            "fallback = \"bye\"",
            "fallback = \"bye\"\ninter_digit_timeout_s = 1.5",
        ))
        .unwrap();
        let node = ok
            .flow("main")
            .unwrap()
            .nodes
            .iter()
            .find(|n| &*n.name == "menu")
            .unwrap();
        let Kind::Menu(m) = &node.kind else { panic!() };
        assert_eq!(m.input.inter_digit, Duration::from_millis(1500));
        let (key, _) = err_key(&DEMO.replace("\"9\" = \"retrieve\"", "\"9x\" = \"retrieve\""));
        assert_eq!(key, "flows.main.nodes.menu.options.9x");
    }

    const COLLECT: &str = r#"
[flows.f]
start = "c"
[flows.f.nodes.c]
type = "collect"
prompts = ["enter-account"]
variable = "account"
max_len = 6
fallback = "h"
next = "h"
[flows.f.nodes.h]
type = "hangup"
"#;

    #[test]
    fn collect_limits_and_patterns_are_checked() {
        parse(COLLECT).unwrap();
        let (key, _) = err_key(&COLLECT.replace("max_len = 6", "max_len = 65"));
        assert_eq!(key, "flows.f.nodes.c.max_len");
        let (key, _) = err_key(&COLLECT.replace("max_len = 6", "max_len = 6\nmin_len = 7"));
        assert_eq!(key, "flows.f.nodes.c.min_len");
        let (key, _) = err_key(&COLLECT.replace("max_len = 6", "max_len = 6\npattern = \"[9-1]\""));
        assert_eq!(key, "flows.f.nodes.c.pattern");
        let (key, _) = err_key(&COLLECT.replace("max_len = 6", "max_len = 6\nterminator = \"5\""));
        assert_eq!(key, "flows.f.nodes.c.terminator");
        let (key, _) =
            err_key(&COLLECT.replace("variable = \"account\"", "variable = \"acc-ount\""));
        assert_eq!(key, "flows.f.nodes.c.variable");
    }

    const HOURS: &str = r#"
[flows.f]
start = "check"
[flows.f.nodes.check]
type = "hours"
zone = "Europe/Warsaw"
windows = [{ days = "mon-fri", from = "08:00", to = "17:00" }, { days = ["sat"], from = "09:00", to = "13:00" }]
closed_dates = ["2026-12-25"]
open = "h"
closed = "h"
[flows.f.nodes.h]
type = "hangup"
"#;

    #[test]
    fn hours_nodes_check_zone_days_times_and_dates() {
        parse(HOURS).unwrap();
        let (key, expected) = err_key(&HOURS.replace("Europe/Warsaw", "Europe/Warsw"));
        assert_eq!(key, "flows.f.nodes.check.zone");
        assert!(expected.contains("Europe/Warsw"), "{expected}");
        let (key, _) = err_key(&HOURS.replace("\"mon-fri\"", "\"mon-fry\""));
        assert_eq!(key, "flows.f.nodes.check.windows[0].days");
        let (key, _) = err_key(&HOURS.replace("\"13:00\"", "\"13:00\", until = \"x\""));
        assert_eq!(key, "flows.f.nodes.check.windows[1].until");
        let (key, _) = err_key(&HOURS.replace("\"17:00\"", "\"07:00\""));
        assert_eq!(key, "flows.f.nodes.check.windows[0].to");
        let (key, _) = err_key(&HOURS.replace("2026-12-25", "2026-13-25"));
        assert_eq!(key, "flows.f.nodes.check.closed_dates[0]");
    }

    #[test]
    fn references_to_mailboxes_trunks_and_queues_are_checked() {
        let (key, _) = err_key(&DEMO.replace("mailbox = \"200\"", "mailbox = \"201\""));
        assert_eq!(key, "flows.main.nodes.leave.mailbox");
        let ext = DEMO.replace(
            "type = \"voicemail\"",
            "type = \"external\"\ntrunk = \"pstn\"\nnumber = \"${dest}\"",
        );
        parse(&ext).unwrap();
        let (key, _) = err_key(&ext.replace("\"pstn\"", "\"isdn\""));
        assert_eq!(key, "flows.main.nodes.retrieve.trunk");
        let (key, _) = err_key(&ext.replace("${dest}", "${dest"));
        assert_eq!(key, "flows.main.nodes.retrieve.number");
        // Queues known: an unknown one is an error; while unknown, anything goes.
        let known = References {
            queues: Some(vec!["sales".into()]),
            ..refs()
        };
        let e = parse_with(DEMO, &known, &|p| PROMPTS.contains(&p)).unwrap_err();
        assert_eq!(e.key, "flows.main.nodes.support.queue");
    }

    #[test]
    fn templates_replace_variables() {
        let t = Template("sip:${a}@x${b}".into());
        let vars: Variables = [("a".to_string(), "42".to_string())].into();
        assert_eq!(t.render(&vars), "sip:42@x");
    }
}
