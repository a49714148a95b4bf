//! `[hooks]`: which registered service serves which hook, and the deadlines.
//!
//! ```toml
//! [hooks]
//! deadline_ms = 300                 # every hook's deadline unless it names its own
//! queue_size = 1024                 # fire-and-forget calls waiting; more are dropped
//! call_incoming = "crm.lookup"      # a service name from caruso.v1.Registry
//! call_ended = { service = "crm.journal", deadline_ms = 1000 }
//! # voicemail_new = "..."   agent_state = "..."   action = "..."
//! ```
//!
//! A hook without a service is off (nothing is called, nothing counted).

use crate::config::ConfigError;
use std::time::Duration;

/// Default deadline of every hook.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(300);
/// Default size of the fire-and-forget queue.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;

/// Which service serves a hook, with the deadline of its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookTarget {
    /// Service name in the registry.
    pub service: String,
    /// Hard deadline of one call.
    pub deadline: Duration,
}

/// Validated `[hooks]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// Default deadline.
    pub deadline: Duration,
    /// Fire-and-forget queue size.
    pub queue_size: usize,
    /// `call.incoming`.
    pub call_incoming: Option<HookTarget>,
    /// `call.ended`.
    pub call_ended: Option<HookTarget>,
    /// `voicemail.new`.
    pub voicemail_new: Option<HookTarget>,
    /// `agent.state`.
    pub agent_state: Option<HookTarget>,
    /// Named actions.
    pub action: Option<HookTarget>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            deadline: DEFAULT_DEADLINE,
            queue_size: DEFAULT_QUEUE_SIZE,
            call_incoming: None,
            call_ended: None,
            voicemail_new: None,
            agent_state: None,
            action: None,
        }
    }
}

const HOOK_KEYS: &[&str] = &[
    "call_incoming",
    "call_ended",
    "voicemail_new",
    "agent_state",
    "action",
];

/// Parses the `[hooks]` table of `file`.
pub fn parse_hooks(v: &toml::Value, file: &str) -> Result<HooksConfig, ConfigError> {
    let err = |key: &str, expected: String| ConfigError {
        file: file.to_string(),
        key: if key.is_empty() {
            "hooks".to_string()
        } else {
            format!("hooks.{key}")
        },
        expected,
    };
    let table = v
        .as_table()
        .ok_or_else(|| err("", format!("expected a table, found {}", v.type_str())))?;
    let deadline_of = |key: &str, v: Option<&toml::Value>, default: Duration| match v {
        None => Ok(default),
        Some(toml::Value::Integer(n)) if (1..=60_000).contains(n) => {
            Ok(Duration::from_millis(*n as u64))
        }
        Some(other) => Err(err(
            key,
            format!("expected milliseconds between 1 and 60000, found {other}"),
        )),
    };
    let mut out = HooksConfig {
        deadline: deadline_of("deadline_ms", table.get("deadline_ms"), DEFAULT_DEADLINE)?,
        ..HooksConfig::default()
    };
    for (key, value) in table {
        match key.as_str() {
            "deadline_ms" => {}
            "queue_size" => {
                out.queue_size = match value {
                    toml::Value::Integer(n) if (1..=1_000_000).contains(n) => *n as usize,
                    other => {
                        return Err(err(
                            key,
                            format!("expected an integer between 1 and 1000000, found {other}"),
                        ))
                    }
                }
            }
            k if HOOK_KEYS.contains(&k) => {
                let service_ok = |s: &str| {
                    !s.is_empty()
                        && s.len() <= crate::registry::MAX_TEXT
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                };
                let expected_service =
                    "expected a service name (letters, digits, '.', '-', '_')".to_string();
                let target = match value {
                    toml::Value::String(s) if service_ok(s) => HookTarget {
                        service: s.clone(),
                        deadline: out.deadline,
                    },
                    toml::Value::String(s) => {
                        return Err(err(k, format!("{expected_service}, found {s:?}")))
                    }
                    toml::Value::Table(t) => {
                        if let Some(bad) = t.keys().find(|x| !["service", "deadline_ms"].contains(&x.as_str())) {
                            return Err(err(
                                &format!("{k}.{bad}"),
                                "unknown key; expected service or deadline_ms".into(),
                            ));
                        }
                        let service = match t.get("service") {
                            Some(toml::Value::String(s)) if service_ok(s) => s.clone(),
                            Some(other) => {
                                return Err(err(
                                    &format!("{k}.service"),
                                    format!("{expected_service}, found {other}"),
                                ))
                            }
                            None => {
                                return Err(err(
                                    &format!("{k}.service"),
                                    format!("{expected_service}; it is missing"),
                                ))
                            }
                        };
                        HookTarget {
                            service,
                            deadline: deadline_of(
                                &format!("{k}.deadline_ms"),
                                t.get("deadline_ms"),
                                out.deadline,
                            )?,
                        }
                    }
                    other => {
                        return Err(err(
                            k,
                            format!(
                                "expected a service name or {{ service = \"...\", deadline_ms = N }}, found {other}"
                            ),
                        ))
                    }
                };
                let slot = match k {
                    "call_incoming" => &mut out.call_incoming,
                    "call_ended" => &mut out.call_ended,
                    "voicemail_new" => &mut out.voicemail_new,
                    "agent_state" => &mut out.agent_state,
                    _ => &mut out.action,
                };
                *slot = Some(target);
            }
            other => {
                return Err(err(
                    other,
                    format!(
                        "unknown key; expected deadline_ms, queue_size or a hook ({})",
                        HOOK_KEYS.join(", ")
                    ),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HooksConfig, ConfigError> {
        let v: toml::Value = toml::from_str(text).unwrap();
        parse_hooks(v.get("hooks").unwrap(), "f.toml")
    }

    #[test]
    fn names_tables_and_deadlines() {
        let c = parse(
            "[hooks]\ndeadline_ms = 200\ncall_incoming = \"crm.lookup\"\n\
             call_ended = { service = \"crm.journal\", deadline_ms = 1000 }\n\
             agent_state = { service = \"wallboard\" }\n",
        )
        .unwrap();
        assert_eq!(
            c.call_incoming,
            Some(HookTarget {
                service: "crm.lookup".into(),
                deadline: Duration::from_millis(200)
            })
        );
        assert_eq!(c.call_ended.unwrap().deadline, Duration::from_millis(1000));
        assert_eq!(
            c.agent_state.unwrap().deadline,
            Duration::from_millis(200),
            "the default deadline, whatever the key order"
        );
        assert_eq!(c.voicemail_new, None);
        assert_eq!(c.queue_size, DEFAULT_QUEUE_SIZE);
        assert_eq!(parse("[hooks]\n").unwrap(), HooksConfig::default());
        assert_eq!(
            parse("[hooks]\ncall_incoming = \"x\"\n")
                .unwrap()
                .call_incoming
                .unwrap()
                .deadline,
            DEFAULT_DEADLINE
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[hooks]\ncall_incoming = \"crm lookup\"\n",
                "hooks.call_incoming",
            ),
            ("[hooks]\ncall_incoming = 3\n", "hooks.call_incoming"),
            (
                "[hooks]\ncall_ended = { deadline_ms = 5 }\n",
                "hooks.call_ended.service",
            ),
            (
                "[hooks]\ncall_ended = { service = \"a\", deadline_ms = 0 }\n",
                "hooks.call_ended.deadline_ms",
            ),
            (
                "[hooks]\ncall_ended = { service = \"a\", x = 1 }\n",
                "hooks.call_ended.x",
            ),
            ("[hooks]\ndeadline_ms = 100000\n", "hooks.deadline_ms"),
            ("[hooks]\nqueue_size = 0\n", "hooks.queue_size"),
            ("[hooks]\ncall_outgoing = \"a\"\n", "hooks.call_outgoing"),
            ("hooks = []\n", "hooks"),
        ];
        for (text, key) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert_eq!(e.file, "f.toml");
        }
    }
}
