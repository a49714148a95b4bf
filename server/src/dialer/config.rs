//! The `[[campaigns]]` config tables, validated into [`CampaignConfig`] by
//! [`parse_campaigns`].
//!
//! Contract: [`parse_campaigns`] takes the `campaigns` value (an array of tables) as a
//! `toml::Value`, the file name and directory (errors name the file; relative contact
//! list paths are read against the directory) and [`CampaignReferences`] (queues,
//! trunks, flows and prompts that exist elsewhere in the config; `None` lists are not
//! checked). Every error is a [`ConfigError`] naming the file, the full dotted key
//! (`campaigns[0].retry.busy.delay_s`) and what was expected. Nothing here does IO.
//!
//! # Reference
//!
//! ```toml
//! [[campaigns]]
//! name = "demo"                       # letters, digits, `-`, `_` (unique)
//! mode = "progressive"                # preview | progressive | predictive | agentless
//! queue = "sales"                     # the agents who work it (not for agentless)
//! trunk = "pstn"                      # [[trunks]] name the calls go out through
//! caller_id = "+48221234567"          # E.164 (or national in default_country)
//! contacts = "campaigns/demo.csv"     # optional CSV loaded at start (relative to the config)
//! default_country = "PL"              # reads national numbers (default "US")
//! timezone = "Europe/Warsaw"          # contacts with neither zone nor known country (default "UTC")
//! window = { from = "08:00", to = "21:00", days = "mon-sun" }   # contact's local time (defaults)
//! ring_timeout_s = 25                 # 15..=120: how long a contact rings (never under 15 s)
//! lines = 10                          # 1..=1000 dials at once at most (agentless rate)
//! preview_timeout_s = 30              # 1..=3600 preview: seconds the agent has to accept or
//!                                     # skip a contact (then skipped, the agent released)
//! max_attempts = 5                    # 1..=100 dials per contact in all
//! abandon = { target_percent = 3.0, window = "30d" }   # window "24h" (UK) or "30d" (US)
//! safe_harbor = "demo-safe-harbor"    # prompt for an abandoned call (company name and a
//!                                     # number to call back); required for predictive
//! script = """Good morning, my name is ..."""           # shown to the agent with each contact
//!
//! [campaigns.retry]                   # per outcome: delay before the next dial, and the most
//!                                     # re-dials after that outcome (then final "exhausted")
//! busy = { delay_s = 600, max = 3 }            # (defaults shown)
//! no_answer = { delay_s = 3600, max = 3 }
//! failed = { delay_s = 1800, max = 2 }
//! machine = { delay_s = 14400, max = 1 }       # only when machine.action = "hangup"
//! abandoned = { delay_s = 259200, max = 1 }    # at least 72 h unless preview/progressive
//!
//! [campaigns.amd]                     # answering-machine detection (defaults shown)
//! enabled = true                      # false: every answer is taken as a person
//! initial_silence_ms = 2500
//! greeting_ms = 1500
//! after_greeting_silence_ms = 800
//! total_ms = 5000
//! min_word_ms = 100
//! between_words_ms = 50
//! max_words = 3
//! silence_threshold = 256             # frame RMS of 32767
//! beep_min_ms = 120
//!
//! [campaigns.machine]                 # what to do with a machine
//! action = "message"                  # "message" (leave `prompt` after the beep) or "hangup"
//! prompt = "demo-machine"
//!
//! [campaigns.message]                 # agentless only: what the person hears
//! prompt = "demo-offer"               # or flow = "main"
//! ```

use super::amd::AmdParams;
use super::pacing::{DialMode, PacingParams, DEFAULT_TARGET};
use super::phone::{Country, E164};
use super::window::CallingWindow;
use crate::config::ConfigError;
use crate::ivr::hours;
use jiff::tz::TimeZone;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest ring time the rules allow.
pub const MIN_RING: Duration = Duration::from_secs(15);
/// The shortest wait before re-dialing an abandoned contact without a reserved agent.
pub const ABANDON_REDIAL: Duration = Duration::from_secs(72 * 3600);

/// What exists elsewhere in the config (a `None` list is not checked).
pub struct CampaignReferences<'a> {
    /// ACD queue names.
    pub queues: Option<Vec<String>>,
    /// Trunk names.
    pub trunks: Option<Vec<String>>,
    /// IVR flow names.
    pub flows: Option<Vec<String>>,
    /// Whether a prompt name exists.
    pub prompt_exists: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for CampaignReferences<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignReferences")
            .field("queues", &self.queues)
            .field("trunks", &self.trunks)
            .field("flows", &self.flows)
            .finish_non_exhaustive()
    }
}

impl CampaignReferences<'_> {
    /// References that check nothing (every prompt exists).
    pub fn unchecked() -> CampaignReferences<'static> {
        CampaignReferences {
            queues: None,
            trunks: None,
            flows: None,
            prompt_exists: &|_| true,
        }
    }
}

/// Retry rule for one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Wait before the next dial.
    pub delay: Duration,
    /// Most re-dials after this outcome; one more makes the contact final.
    pub max: u32,
}

/// Retry rules per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Busy.
    pub busy: RetryRule,
    /// Rang out.
    pub no_answer: RetryRule,
    /// Failed (network, trunk).
    pub failed: RetryRule,
    /// A machine answered and was hung up on.
    pub machine: RetryRule,
    /// Abandoned (a person answered, no agent).
    pub abandoned: RetryRule,
}

impl Default for Retries {
    fn default() -> Self {
        let r = |s, max| RetryRule {
            delay: Duration::from_secs(s),
            max,
        };
        Retries {
            busy: r(600, 3),
            no_answer: r(3600, 3),
            failed: r(1800, 2),
            machine: r(14400, 1),
            abandoned: r(ABANDON_REDIAL.as_secs(), 1),
        }
    }
}

/// What happens when a machine answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineAction {
    /// Hang up (the contact is retried by `retry.machine`).
    Hangup,
    /// Play this prompt after the beep; the contact is then done.
    Message(String),
}

/// What an agentless campaign plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentlessAction {
    /// A prompt.
    Prompt(String),
    /// An IVR flow.
    Flow(String),
}

/// One validated campaign.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Unique name.
    pub name: String,
    /// How it dials.
    pub mode: DialMode,
    /// ACD queue of its agents (`None` for agentless).
    pub queue: Option<String>,
    /// Trunk the calls go out through.
    pub trunk: String,
    /// Caller id presented.
    pub caller_id: E164,
    /// Contact list loaded at start (absolute, or relative to the process).
    pub contacts: Option<PathBuf>,
    /// Country of national numbers.
    pub default_country: &'static Country,
    /// Zone of contacts with neither a zone nor a known country.
    pub timezone: TimeZone,
    /// Calling window in the contact's local time.
    pub window: CallingWindow,
    /// How long a contact rings before giving up (>= 15 s).
    pub ring_timeout: Duration,
    /// Most dials at once.
    pub lines: u32,
    /// Preview: how long the agent has to decide on an offer (then it is skipped).
    pub preview_timeout: Duration,
    /// Most dials per contact.
    pub max_attempts: u32,
    /// Abandoned-call target and window.
    pub pacing: PacingParams,
    /// Retry rules.
    pub retries: Retries,
    /// AMD parameters (`None`: AMD off, answers are persons).
    pub amd: Option<AmdParams>,
    /// What to do with machines.
    pub machine: MachineAction,
    /// Prompt played to an abandoned call.
    pub safe_harbor: Option<String>,
    /// Agentless: what to play.
    pub message: Option<AgentlessAction>,
    /// Script text shown to the agent.
    pub script: String,
}

impl CampaignConfig {
    /// A campaign with defaults (tests, gRPC Create).
    pub fn new(name: &str, mode: DialMode, trunk: &str, caller_id: E164) -> CampaignConfig {
        CampaignConfig {
            name: name.to_string(),
            mode,
            queue: None,
            trunk: trunk.to_string(),
            caller_id,
            contacts: None,
            default_country: &super::phone::COUNTRIES[0],
            timezone: TimeZone::UTC,
            window: CallingWindow::default(),
            ring_timeout: Duration::from_secs(25),
            lines: 10,
            preview_timeout: Duration::from_secs(30),
            max_attempts: 5,
            pacing: PacingParams::default(),
            retries: Retries::default(),
            amd: Some(AmdParams::default()),
            machine: MachineAction::Hangup,
            safe_harbor: None,
            message: None,
            script: String::new(),
        }
    }
}

const KEYS: &[&str] = &[
    "name",
    "mode",
    "queue",
    "trunk",
    "caller_id",
    "contacts",
    "default_country",
    "timezone",
    "window",
    "ring_timeout_s",
    "lines",
    "preview_timeout_s",
    "max_attempts",
    "abandon",
    "retry",
    "amd",
    "machine",
    "safe_harbor",
    "message",
    "script",
];
const RETRY_KEYS: &[&str] = &["busy", "no_answer", "failed", "machine", "abandoned"];
const AMD_KEYS: &[&str] = &[
    "enabled",
    "initial_silence_ms",
    "greeting_ms",
    "after_greeting_silence_ms",
    "total_ms",
    "min_word_ms",
    "between_words_ms",
    "max_words",
    "silence_threshold",
    "beep_min_ms",
];

struct Cx<'a> {
    file: &'a str,
}

type Table = toml::map::Map<String, toml::Value>;

impl Cx<'_> {
    fn err(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.to_string(),
            expected: expected.into(),
        }
    }

    fn table<'t>(
        &self,
        key: &str,
        v: &'t toml::Value,
        allowed: &[&str],
    ) -> Result<&'t Table, ConfigError> {
        let t = v
            .as_table()
            .ok_or_else(|| self.err(key, format!("expected a table, found {}", v.type_str())))?;
        if let Some(k) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(self.err(
                &format!("{key}.{k}"),
                format!("unknown key; expected one of {}", allowed.join(", ")),
            ));
        }
        Ok(t)
    }

    fn string<'t>(
        &self,
        key: &str,
        v: Option<&'t toml::Value>,
    ) -> Result<Option<&'t str>, ConfigError> {
        match v {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(o) => Err(self.err(key, format!("expected a string, found {}", o.type_str()))),
        }
    }

    fn int(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let n = match v {
            None => return Ok(default),
            Some(toml::Value::Integer(i)) => *i,
            Some(o) => {
                return Err(self.err(
                    key,
                    format!(
                        "expected an integer from {min} to {max}, found {}",
                        o.type_str()
                    ),
                ))
            }
        };
        if n < min as i64 || n > max as i64 {
            return Err(self.err(
                key,
                format!("expected an integer from {min} to {max}, found {n}"),
            ));
        }
        Ok(n as u64)
    }

    fn name(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        what: &str,
        known: &Option<Vec<String>>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(s) = self.string(key, v)? else {
            return Ok(None);
        };
        if let Some(list) = known {
            if !list.iter().any(|k| k == s) {
                return Err(self.err(
                    key,
                    format!(
                        "expected the name of a configured {what} ({}), found {s:?}",
                        list.join(", ")
                    ),
                ));
            }
        }
        Ok(Some(s.to_string()))
    }
}

/// Parses and validates the `campaigns` array (see the module doc).
pub fn parse_campaigns(
    v: &toml::Value,
    file: &str,
    base_dir: &Path,
    refs: &CampaignReferences,
) -> Result<Vec<CampaignConfig>, ConfigError> {
    let cx = Cx { file };
    let items = v.as_array().ok_or_else(|| {
        cx.err(
            "campaigns",
            format!(
                "expected an array of tables [[campaigns]], found {}",
                v.type_str()
            ),
        )
    })?;
    let mut out: Vec<CampaignConfig> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = format!("campaigns[{i}]");
        let c = parse_one(&cx, &key, item, base_dir, refs)?;
        if out.iter().any(|o| o.name == c.name) {
            return Err(cx.err(
                &format!("{key}.name"),
                format!(
                    "expected a unique campaign name, but {:?} is configured twice",
                    c.name
                ),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

fn parse_one(
    cx: &Cx,
    key: &str,
    v: &toml::Value,
    base_dir: &Path,
    refs: &CampaignReferences,
) -> Result<CampaignConfig, ConfigError> {
    let t = cx.table(key, v, KEYS)?;
    let k = |n: &str| format!("{key}.{n}");

    let name = cx
        .string(&k("name"), t.get("name"))?
        .ok_or_else(|| cx.err(&k("name"), "expected a campaign name"))?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(cx.err(
            &k("name"),
            format!("expected 1 to 64 letters, digits, - or _, found {name:?}"),
        ));
    }
    let mode = match cx
        .string(&k("mode"), t.get("mode"))?
        .unwrap_or("progressive")
    {
        "preview" => DialMode::Preview,
        "progressive" => DialMode::Progressive,
        "predictive" => DialMode::Predictive,
        "agentless" => DialMode::Agentless,
        o => {
            return Err(cx.err(
                &k("mode"),
                format!("expected preview, progressive, predictive or agentless, found {o:?}"),
            ))
        }
    };
    let queue = cx.name(&k("queue"), t.get("queue"), "queue", &refs.queues)?;
    match (mode, &queue) {
        (DialMode::Agentless, Some(_)) => {
            return Err(cx.err(
                &k("queue"),
                "expected no queue: an agentless campaign has no agents",
            ))
        }
        (DialMode::Agentless, None) => {}
        (_, None) => {
            return Err(cx.err(
                &k("queue"),
                "expected the ACD queue whose agents work the campaign",
            ))
        }
        _ => {}
    }
    let trunk = cx
        .name(&k("trunk"), t.get("trunk"), "trunk", &refs.trunks)?
        .ok_or_else(|| {
            cx.err(
                &k("trunk"),
                "expected the name of the [[trunks]] entry to dial through",
            )
        })?;

    let country_s = cx
        .string(&k("default_country"), t.get("default_country"))?
        .unwrap_or("US");
    let default_country = Country::by_alpha2(country_s).ok_or_else(|| {
        let known: Vec<&str> = super::phone::COUNTRIES.iter().map(|c| c.alpha2).collect();
        cx.err(
            &k("default_country"),
            format!(
                "expected a country code among {}, found {country_s:?}",
                known.join(", ")
            ),
        )
    })?;
    let caller = cx
        .string(&k("caller_id"), t.get("caller_id"))?
        .ok_or_else(|| {
            cx.err(
                &k("caller_id"),
                "expected the caller id number, like \"+48221234567\"",
            )
        })?;
    let caller_id = E164::parse(caller, default_country)
        .map_err(|e| cx.err(&k("caller_id"), format!("expected a phone number: {e}")))?;
    let contacts = cx
        .string(&k("contacts"), t.get("contacts"))?
        .map(|p| base_dir.join(p));
    let timezone = match cx.string(&k("timezone"), t.get("timezone"))? {
        None => TimeZone::UTC,
        Some(z) => hours::zone(z).map_err(|e| cx.err(&k("timezone"), e))?,
    };

    let window = match t.get("window") {
        None => CallingWindow::default(),
        Some(w) => {
            let wk = k("window");
            let wt = cx.table(&wk, w, &["from", "to", "days"])?;
            let from = match cx.string(&format!("{wk}.from"), wt.get("from"))? {
                None => 8 * 60,
                Some(s) => hours::time_of_day(s).map_err(|e| cx.err(&format!("{wk}.from"), e))?,
            };
            let to = match cx.string(&format!("{wk}.to"), wt.get("to"))? {
                None => 21 * 60,
                Some(s) => hours::time_of_day(s).map_err(|e| cx.err(&format!("{wk}.to"), e))?,
            };
            let days = match wt.get("days") {
                None => Ok([true; 7]),
                Some(toml::Value::String(s)) => hours::days(&[s.as_str()]),
                Some(toml::Value::Array(a)) => {
                    let items: Option<Vec<&str>> = a.iter().map(|x| x.as_str()).collect();
                    hours::days(&items.unwrap_or_default())
                }
                Some(o) => Err(format!(
                    "expected week days like \"mon-fri\", found {}",
                    o.type_str()
                )),
            }
            .map_err(|e| cx.err(&format!("{wk}.days"), e))?;
            CallingWindow::new(days, from, to)
                .ok_or_else(|| cx.err(&wk, "expected from before to (a window within one day)"))?
        }
    };

    let ring_timeout = Duration::from_secs(cx.int(
        &k("ring_timeout_s"),
        t.get("ring_timeout_s"),
        25,
        MIN_RING.as_secs(),
        120,
    )?);
    let lines = cx.int(&k("lines"), t.get("lines"), 10, 1, 1000)? as u32;
    let preview_timeout = Duration::from_secs(cx.int(
        &k("preview_timeout_s"),
        t.get("preview_timeout_s"),
        30,
        1,
        3600,
    )?);
    let max_attempts = cx.int(&k("max_attempts"), t.get("max_attempts"), 5, 1, 100)? as u32;

    let mut pacing = PacingParams::default();
    if let Some(a) = t.get("abandon") {
        let ak = k("abandon");
        let at = cx.table(&ak, a, &["target_percent", "window"])?;
        if let Some(p) = at.get("target_percent") {
            let p = match p {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                o => {
                    return Err(cx.err(
                        &format!("{ak}.target_percent"),
                        format!("expected a percentage, found {}", o.type_str()),
                    ))
                }
            };
            if !(0.0..=10.0).contains(&p) {
                return Err(cx.err(
                    &format!("{ak}.target_percent"),
                    format!("expected a percentage from 0 to 10, found {p}"),
                ));
            }
            pacing.target = p / 100.0;
        }
        match cx.string(&format!("{ak}.window"), at.get("window"))? {
            None | Some("30d") => {}
            Some("24h") => pacing.window = Duration::from_secs(24 * 3600),
            Some(o) => {
                return Err(cx.err(
                    &format!("{ak}.window"),
                    format!("expected \"24h\" (UK rule) or \"30d\" (US rule), found {o:?}"),
                ))
            }
        }
    } else {
        pacing.target = DEFAULT_TARGET;
    }

    let mut retries = Retries::default();
    if let Some(r) = t.get("retry") {
        let rk = k("retry");
        let rt = cx.table(&rk, r, RETRY_KEYS)?;
        for (name, rule) in [
            ("busy", &mut retries.busy),
            ("no_answer", &mut retries.no_answer),
            ("failed", &mut retries.failed),
            ("machine", &mut retries.machine),
            ("abandoned", &mut retries.abandoned),
        ] {
            let Some(v) = rt.get(name) else { continue };
            let ok = format!("{rk}.{name}");
            let ot = cx.table(&ok, v, &["delay_s", "max"])?;
            rule.delay = Duration::from_secs(cx.int(
                &format!("{ok}.delay_s"),
                ot.get("delay_s"),
                rule.delay.as_secs(),
                0,
                30 * 24 * 3600,
            )?);
            rule.max = cx.int(&format!("{ok}.max"), ot.get("max"), rule.max as u64, 0, 100)? as u32;
        }
        if !mode.agent_guaranteed()
            && retries.abandoned.max > 0
            && retries.abandoned.delay < ABANDON_REDIAL
        {
            return Err(cx.err(
                &format!("{rk}.abandoned.delay_s"),
                format!("expected at least 259200 (72 h): a {} campaign has no agent guaranteed for a re-dialed abandoned contact", mode.as_str()),
            ));
        }
    }

    let amd = match t.get("amd") {
        None => Some(AmdParams::default()),
        Some(a) => {
            let ak = k("amd");
            let at = cx.table(&ak, a, AMD_KEYS)?;
            let enabled = match at.get("enabled") {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(o) => {
                    return Err(cx.err(
                        &format!("{ak}.enabled"),
                        format!("expected true or false, found {}", o.type_str()),
                    ))
                }
            };
            let d = AmdParams::default();
            let ms = |n: &str, d: Duration, min: u64, max: u64| -> Result<Duration, ConfigError> {
                Ok(Duration::from_millis(cx.int(
                    &format!("{ak}.{n}"),
                    at.get(n),
                    d.as_millis() as u64,
                    min,
                    max,
                )?))
            };
            let p = AmdParams {
                initial_silence: ms("initial_silence_ms", d.initial_silence, 100, 10_000)?,
                greeting: ms("greeting_ms", d.greeting, 100, 10_000)?,
                after_greeting_silence: ms(
                    "after_greeting_silence_ms",
                    d.after_greeting_silence,
                    100,
                    5000,
                )?,
                total: ms("total_ms", d.total, 1000, 30_000)?,
                min_word: ms("min_word_ms", d.min_word, 20, 2000)?,
                between_words: ms("between_words_ms", d.between_words, 20, 2000)?,
                max_words: cx.int(
                    &format!("{ak}.max_words"),
                    at.get("max_words"),
                    d.max_words as u64,
                    1,
                    50,
                )? as u32,
                silence_threshold: cx.int(
                    &format!("{ak}.silence_threshold"),
                    at.get("silence_threshold"),
                    d.silence_threshold as u64,
                    1,
                    32767,
                )? as u16,
                beep_min: ms("beep_min_ms", d.beep_min, 40, 2000)?,
            };
            enabled.then_some(p)
        }
    };

    let prompt = |key: &str, v: Option<&toml::Value>| -> Result<Option<String>, ConfigError> {
        match cx.string(key, v)? {
            None => Ok(None),
            Some(p) if (refs.prompt_exists)(p) => Ok(Some(p.to_string())),
            Some(p) => Err(cx.err(
                key,
                format!("expected the name of an existing prompt, found {p:?}"),
            )),
        }
    };
    let machine = match t.get("machine") {
        None => MachineAction::Hangup,
        Some(m) => {
            let mk = k("machine");
            let mt = cx.table(&mk, m, &["action", "prompt"])?;
            match cx
                .string(&format!("{mk}.action"), mt.get("action"))?
                .unwrap_or("hangup")
            {
                "hangup" => MachineAction::Hangup,
                "message" => MachineAction::Message(
                    prompt(&format!("{mk}.prompt"), mt.get("prompt"))?.ok_or_else(|| {
                        cx.err(
                            &format!("{mk}.prompt"),
                            "expected the prompt to leave on the machine",
                        )
                    })?,
                ),
                o => {
                    return Err(cx.err(
                        &format!("{mk}.action"),
                        format!("expected \"message\" or \"hangup\", found {o:?}"),
                    ))
                }
            }
        }
    };
    let safe_harbor = prompt(&k("safe_harbor"), t.get("safe_harbor"))?;
    if mode == DialMode::Predictive && safe_harbor.is_none() {
        return Err(cx.err(&k("safe_harbor"), "expected a prompt naming the company and a number to call back: a predictive campaign can abandon calls"));
    }
    let message = match t.get("message") {
        None => None,
        Some(m) => {
            let mk = k("message");
            let mt = cx.table(&mk, m, &["prompt", "flow"])?;
            match (mt.get("prompt"), mt.get("flow")) {
                (Some(p), None) => Some(AgentlessAction::Prompt(
                    prompt(&format!("{mk}.prompt"), Some(p))?.unwrap_or_default(),
                )),
                (None, Some(f)) => Some(AgentlessAction::Flow(
                    cx.name(&format!("{mk}.flow"), Some(f), "flow", &refs.flows)?
                        .unwrap_or_default(),
                )),
                _ => return Err(cx.err(&mk, "expected either prompt = \"...\" or flow = \"...\"")),
            }
        }
    };
    match (mode, &message) {
        (DialMode::Agentless, None) => {
            return Err(cx.err(
                &k("message"),
                "expected { prompt = ... } or { flow = ... }: what an agentless campaign plays",
            ))
        }
        (m, Some(_)) if m != DialMode::Agentless => return Err(cx.err(
            &k("message"),
            "expected no message: only agentless campaigns play one (agents speak in the others)",
        )),
        _ => {}
    }
    let script = cx
        .string(&k("script"), t.get("script"))?
        .unwrap_or("")
        .to_string();

    Ok(CampaignConfig {
        name: name.to_string(),
        mode,
        queue,
        trunk,
        caller_id,
        contacts,
        default_country,
        timezone,
        window,
        ring_timeout,
        lines,
        preview_timeout,
        max_attempts,
        pacing,
        retries,
        amd,
        machine,
        safe_harbor,
        message,
        script,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(s: &str, refs: &CampaignReferences) -> Result<Vec<CampaignConfig>, ConfigError> {
        let v: toml::Table = toml::from_str(s).unwrap();
        parse_campaigns(
            &v["campaigns"],
            "caruso.toml",
            Path::new("/etc/caruso"),
            refs,
        )
    }

    fn parse(s: &str) -> Result<Vec<CampaignConfig>, ConfigError> {
        parse_with(s, &CampaignReferences::unchecked())
    }

    const MINIMAL: &str = "[[campaigns]]\nname = \"c\"\nqueue = \"sales\"\ntrunk = \"pstn\"\ncaller_id = \"+48221234567\"\n";

    #[test]
    fn minimal_campaign_gets_the_defaults() {
        let c = &parse(MINIMAL).unwrap()[0];
        assert_eq!(c.mode, DialMode::Progressive);
        assert_eq!(c.caller_id.as_str(), "+48221234567");
        assert_eq!(c.window, CallingWindow::default());
        assert_eq!(c.ring_timeout, Duration::from_secs(25));
        assert_eq!(c.pacing.target, 0.03);
        assert_eq!(c.pacing.window, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.retries, Retries::default());
        assert_eq!(c.amd, Some(AmdParams::default()));
        assert_eq!(c.machine, MachineAction::Hangup);
        assert_eq!(c.default_country.alpha2, "US");
        assert!(c.contacts.is_none());
    }

    #[test]
    fn the_demo_snippet_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/campaigns/demo.toml"
        ))
        .unwrap();
        let refs = CampaignReferences {
            queues: Some(vec!["sales".into()]),
            trunks: Some(vec!["pstn".into()]),
            flows: None,
            prompt_exists: &|_| true,
        };
        let c = &parse_with(&text, &refs).unwrap()[0];
        assert_eq!(c.name, "demo");
        assert_eq!(c.default_country.alpha2, "PL");
        assert_eq!(
            c.contacts.as_deref(),
            Some(Path::new("/etc/caruso/campaigns/demo.csv"))
        );
        assert!(c.script.contains("Good morning, my name is"));
        assert_eq!(c.pacing.window, Duration::from_secs(24 * 3600));
        let csv = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/campaigns/demo.csv"
        ))
        .unwrap();
        let list = super::super::contacts::parse_csv_bytes(&csv, c.default_country).unwrap();
        assert_eq!(list.errors, vec![]);
        assert_eq!(list.contacts.len(), 8);
        assert_eq!(
            list.contacts[6].variables["offer"],
            "TV, internet and mobile"
        );
    }

    #[test]
    fn full_campaign_is_read() {
        let c = &parse(
            r#"[[campaigns]]
name = "p"
mode = "predictive"
queue = "sales"
trunk = "pstn"
caller_id = "22 123 45 67"
default_country = "PL"
timezone = "Europe/Warsaw"
window = { from = "09:00", to = "20:00", days = "mon-fri" }
ring_timeout_s = 30
abandon = { target_percent = 2.5, window = "24h" }
safe_harbor = "sh"
retry = { busy = { delay_s = 60, max = 5 }, abandoned = { delay_s = 300000 } }
amd = { greeting_ms = 2000, max_words = 4 }
machine = { action = "message", prompt = "vm" }
"#,
        )
        .unwrap()[0];
        assert_eq!(c.caller_id.as_str(), "+48221234567");
        assert_eq!(c.window.from, 540);
        assert!(!c.window.days[5]);
        assert_eq!(c.pacing.target, 0.025);
        assert_eq!(
            c.retries.busy,
            RetryRule {
                delay: Duration::from_secs(60),
                max: 5
            }
        );
        assert_eq!(c.retries.abandoned.max, 1);
        assert_eq!(c.amd.unwrap().greeting, Duration::from_secs(2));
        assert_eq!(c.amd.unwrap().max_words, 4);
        assert_eq!(c.machine, MachineAction::Message("vm".into()));
        assert_eq!(c.safe_harbor.as_deref(), Some("sh"));
    }

    #[test]
    fn preview_timeout_has_a_default_and_bounds() {
        assert_eq!(
            parse(MINIMAL).unwrap()[0].preview_timeout,
            Duration::from_secs(30)
        );
        let c = &parse(&format!("{MINIMAL}preview_timeout_s = 2\n")).unwrap()[0];
        assert_eq!(c.preview_timeout, Duration::from_secs(2));
        for bad in ["0", "3601", "\"soon\""] {
            let e = parse(&format!("{MINIMAL}preview_timeout_s = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "campaigns[0].preview_timeout_s", "{bad}");
        }
    }

    #[test]
    fn errors_name_the_key_and_what_was_expected() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "mode = \"robo\"",
                "campaigns[0].mode",
                "preview, progressive",
            ),
            (
                "ring_timeout_s = 10",
                "campaigns[0].ring_timeout_s",
                "from 15 to 120",
            ),
            (
                "default_country = \"XX\"",
                "campaigns[0].default_country",
                "PL",
            ),
            ("timezone = \"Mars/Base\"", "campaigns[0].timezone", "IANA"),
            (
                "window = { from = \"21:00\", to = \"08:00\" }",
                "campaigns[0].window",
                "from before to",
            ),
            (
                "window = { days = \"funday\" }",
                "campaigns[0].window.days",
                "week days",
            ),
            (
                "abandon = { window = \"7d\" }",
                "campaigns[0].abandon.window",
                "24h",
            ),
            (
                "abandon = { target_percent = 50 }",
                "campaigns[0].abandon.target_percent",
                "0 to 10",
            ),
            (
                "amd = { total_ms = \"5s\" }",
                "campaigns[0].amd.total_ms",
                "integer",
            ),
            (
                "amd = { colour = 1 }",
                "campaigns[0].amd.colour",
                "unknown key",
            ),
            (
                "machine = { action = \"message\" }",
                "campaigns[0].machine.prompt",
                "prompt",
            ),
            (
                "message = { prompt = \"x\" }",
                "campaigns[0].message",
                "only agentless",
            ),
            ("colour = 1", "campaigns[0].colour", "unknown key"),
        ];
        for (extra, key, expected) in cases {
            let e = parse(&format!("{MINIMAL}{extra}\n")).unwrap_err();
            assert_eq!(e.key, *key, "{extra}: {e:?}");
            assert!(e.expected.contains(expected), "{extra}: {e:?}");
            assert_eq!(e.file, "caruso.toml");
        }
        let e = parse("[[campaigns]]\nname = \"c\"\ntrunk = \"t\"\ncaller_id = \"+48221234567\"\n")
            .unwrap_err();
        assert_eq!(e.key, "campaigns[0].queue");
        let e = parse(&format!("{MINIMAL}{}", MINIMAL)).unwrap_err();
        assert_eq!(e.key, "campaigns[1].name");
        let e = parse(&MINIMAL.replace("progressive", "x").replace(
            "queue = \"sales\"\n",
            "mode = \"predictive\"\nqueue = \"sales\"\n",
        ))
        .unwrap_err();
        assert_eq!(e.key, "campaigns[0].safe_harbor");
        let e = parse(&format!(
            "{}retry = {{ abandoned = {{ delay_s = 3600 }} }}\nsafe_harbor = \"s\"\n",
            MINIMAL.replace("name = \"c\"", "name = \"c\"\nmode = \"predictive\"")
        ))
        .unwrap_err();
        assert_eq!(e.key, "campaigns[0].retry.abandoned.delay_s");
        // Progressive reserves an agent: a short abandoned re-dial delay is allowed.
        assert!(parse(&format!(
            "{MINIMAL}retry = {{ abandoned = {{ delay_s = 3600 }} }}\n"
        ))
        .is_ok());
        let e = parse("[[campaigns]]\nname = \"a\"\nmode = \"agentless\"\ntrunk = \"t\"\ncaller_id = \"+48221234567\"\n").unwrap_err();
        assert_eq!(e.key, "campaigns[0].message");
        let v = toml::Value::String("x".into());
        assert_eq!(
            parse_campaigns(&v, "f", Path::new("."), &CampaignReferences::unchecked())
                .unwrap_err()
                .key,
            "campaigns"
        );
    }

    #[test]
    fn references_are_checked() {
        let refs = CampaignReferences {
            queues: Some(vec!["support".into()]),
            trunks: Some(vec!["pstn".into()]),
            flows: Some(vec!["main".into()]),
            prompt_exists: &|p| p == "known",
        };
        let e = parse_with(MINIMAL, &refs).unwrap_err();
        assert_eq!(e.key, "campaigns[0].queue");
        assert!(e.expected.contains("support"), "{e:?}");
        let ok = MINIMAL.replace("sales", "support");
        assert!(parse_with(&ok, &refs).is_ok());
        let e = parse_with(&ok.replace("pstn", "other"), &refs).unwrap_err();
        assert_eq!(e.key, "campaigns[0].trunk");
        let e = parse_with(&format!("{ok}safe_harbor = \"unknown\"\n"), &refs).unwrap_err();
        assert_eq!(e.key, "campaigns[0].safe_harbor");
        let agentless = "[[campaigns]]\nname = \"a\"\nmode = \"agentless\"\ntrunk = \"pstn\"\ncaller_id = \"+48221234567\"\n";
        let c = parse_with(
            &format!("{agentless}message = {{ flow = \"main\" }}\n"),
            &refs,
        )
        .unwrap();
        assert_eq!(c[0].message, Some(AgentlessAction::Flow("main".into())));
        let e = parse_with(
            &format!("{agentless}message = {{ flow = \"nope\" }}\n"),
            &refs,
        )
        .unwrap_err();
        assert_eq!(e.key, "campaigns[0].message.flow");
    }
}
