//! The `[voicemail]` config table, validated into [`MailboxConfig`]s.
//!
//! Contract: [`parse_voicemail`] takes the `[voicemail]` table as a `toml::Value`, the
//! file name (for errors) and the config file's directory (relative greeting paths
//! resolve against it). Every error is a [`ConfigError`] naming the file and the full
//! dotted key (`voicemail.mailboxes[1].pin`). Unknown keys, duplicate numbers, empty or
//! non-digit PINs, missing greeting files and notify targets that are not `sip:`/`sips:`
//! URIs are refused.
//!
//! ```
//! use caruso::voicemail::config::parse_voicemail;
//! let v: toml::Value = toml::from_str(
//!     "[[mailboxes]]\nnumber = \"200\"\nowner = \"Alice\"\npin = \"1234\"\n",
//! ).unwrap();
//! let cfg = parse_voicemail(&v, "caruso.toml", std::path::Path::new(".")).unwrap();
//! assert_eq!(cfg.mailboxes[0].max_messages, 100);
//! ```

use super::MailboxConfig;
use crate::config::reader::Reader;
use crate::config::ConfigError;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Default longest message.
pub const DEFAULT_MAX_MESSAGE: Duration = Duration::from_secs(180);
/// Default most messages per mailbox.
pub const DEFAULT_MAX_MESSAGES: usize = 100;
/// Default shortest message kept.
pub const DEFAULT_MIN_MESSAGE: Duration = Duration::from_secs(1);
/// Default silence that ends a recording.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(10);
/// Default silence threshold (mean absolute sample value of a 20 ms frame).
pub const DEFAULT_SILENCE_THRESHOLD: u16 = 200;

/// The validated `[voicemail]` table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VoicemailConfig {
    /// The mailboxes, in config order (numbers unique).
    pub mailboxes: Vec<MailboxConfig>,
}

impl VoicemailConfig {
    /// The mailbox with this number.
    pub fn mailbox(&self, number: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.number == number)
    }
}

const MAILBOX_KEYS: &[&str] = &[
    "number",
    "owner",
    "pin",
    "greeting_unavailable",
    "greeting_busy",
    "max_message_s",
    "max_messages",
    "min_message_s",
    "silence_s",
    "silence_threshold",
    "notify",
];

/// Parses and validates the `[voicemail]` table (see the module doc).
pub fn parse_voicemail(
    v: &toml::Value,
    file: &str,
    base_dir: &Path,
) -> Result<VoicemailConfig, ConfigError> {
    let cx = Reader::new(file);
    let table = v.as_table().ok_or_else(|| {
        cx.err(
            "voicemail",
            format!("expected a table, found {}", v.type_str()),
        )
    })?;
    for key in table.keys() {
        if key != "mailboxes" {
            return Err(cx.err(
                format!("voicemail.{key}"),
                "unknown key; expected `mailboxes`",
            ));
        }
    }
    let list = match table.get("mailboxes") {
        None => return Ok(VoicemailConfig::default()),
        Some(toml::Value::Array(a)) => a,
        Some(other) => {
            return Err(cx.err(
                "voicemail.mailboxes",
                format!(
                    "expected an array of tables ([[voicemail.mailboxes]]), found {}",
                    other.type_str()
                ),
            ))
        }
    };
    let mut seen = HashSet::new();
    let mut mailboxes = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("voicemail.mailboxes[{i}]");
        let k = |name: &str| format!("{at}.{name}");
        let t = cx.table(at.clone(), entry, MAILBOX_KEYS)?;
        let number = cx.required(&k("number"), t.get("number"), "a mailbox number")?;
        if number.is_empty() || number.len() > 32 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(cx.err(
                k("number"),
                format!("expected 1 to 32 digits, found {number:?}"),
            ));
        }
        if !seen.insert(number.clone()) {
            return Err(cx.err(k("number"), format!("mailbox {number} is configured twice")));
        }
        let owner = cx.string(&k("owner"), t.get("owner"))?.unwrap_or_default();
        let pin = cx.required(&k("pin"), t.get("pin"), "a PIN of digits")?;
        if pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(cx.err(
                k("pin"),
                "expected a PIN of 1 to 16 digits (quoted, e.g. \"1234\")",
            ));
        }
        let greeting = |name: &str| -> Result<Option<std::path::PathBuf>, ConfigError> {
            let Some(p) = cx.string(&k(name), t.get(name))? else {
                return Ok(None);
            };
            let path = base_dir.join(&p);
            if !path.is_file() {
                return Err(cx.err(
                    k(name),
                    format!(
                        "expected an existing WAV file, {} does not exist",
                        path.display()
                    ),
                ));
            }
            Ok(Some(path))
        };
        let greeting_unavailable = greeting("greeting_unavailable")?;
        let greeting_busy = greeting("greeting_busy")?;
        let max_message = cx
            .secs(&k("max_message_s"), t.get("max_message_s"), 1.0, 3600.0)?
            .unwrap_or(DEFAULT_MAX_MESSAGE);
        let max_messages = cx
            .int(&k("max_messages"), t.get("max_messages"), 1, 100_000)?
            .unwrap_or(DEFAULT_MAX_MESSAGES as i64) as usize;
        let min_message = cx
            .secs(
                &k("min_message_s"),
                t.get("min_message_s"),
                0.0,
                max_message.as_secs_f64(),
            )?
            .unwrap_or(DEFAULT_MIN_MESSAGE);
        let silence = cx
            .secs(&k("silence_s"), t.get("silence_s"), 0.1, 3600.0)?
            .unwrap_or(DEFAULT_SILENCE);
        let silence_threshold = cx
            .int(
                &k("silence_threshold"),
                t.get("silence_threshold"),
                0,
                32767,
            )?
            .unwrap_or(i64::from(DEFAULT_SILENCE_THRESHOLD)) as u16;
        let notify = match t.get("notify") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (j, item) in items.iter().enumerate() {
                    let key = format!("{at}.notify[{j}]");
                    match item {
                        toml::Value::String(s) if crate::config::is_sip_uri(s) => {
                            out.push(s.clone())
                        }
                        other => {
                            return Err(cx.err(
                                key,
                                format!(
                                "expected a SIP URI like \"sip:200@127.0.0.1:5070\", found {other}"
                            ),
                            ))
                        }
                    }
                }
                out
            }
            Some(other) => {
                return Err(cx.err(
                    k("notify"),
                    format!("expected an array of SIP URIs, found {}", other.type_str()),
                ))
            }
        };
        mailboxes.push(MailboxConfig {
            number,
            owner,
            pin,
            greeting_unavailable,
            greeting_busy,
            max_message,
            max_messages,
            min_message,
            silence,
            silence_threshold,
            notify,
        });
    }
    Ok(VoicemailConfig { mailboxes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VoicemailConfig, ConfigError> {
        let v: toml::Value = toml::from_str(text).expect("toml");
        parse_voicemail(&v, "test.toml", Path::new("/nonexistent-base"))
    }

    fn err_key(text: &str) -> String {
        let e = parse(text).expect_err("must fail");
        assert_eq!(e.file, "test.toml");
        e.key
    }

    const ONE: &str = "[[mailboxes]]\nnumber = \"200\"\nowner = \"Alice\"\npin = \"1234\"\n";

    #[test]
    fn defaults_apply() {
        let c = parse(ONE).unwrap();
        let m = &c.mailboxes[0];
        assert_eq!(m.number, "200");
        assert_eq!(m.owner, "Alice");
        assert_eq!(m.pin, "1234");
        assert_eq!(m.max_message, Duration::from_secs(180));
        assert_eq!(m.max_messages, 100);
        assert_eq!(m.min_message, Duration::from_secs(1));
        assert_eq!(m.silence, Duration::from_secs(10));
        assert_eq!(m.silence_threshold, 200);
        assert!(m.notify.is_empty());
        assert_eq!(m.greeting_unavailable, None);
        assert!(c.mailbox("200").is_some() && c.mailbox("201").is_none());
    }

    #[test]
    fn explicit_values_and_greeting_relative_to_base() {
        let dir = std::env::temp_dir().join(format!("caruso-vmcfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("greetings")).unwrap();
        std::fs::write(dir.join("greetings/200.wav"), b"x").unwrap();
        let text = format!(
            "{ONE}greeting_unavailable = \"greetings/200.wav\"\nmax_message_s = 60\n\
             max_messages = 5\nmin_message_s = 0.5\nsilence_s = 4\nsilence_threshold = 300\n\
             notify = [\"sip:200@127.0.0.1:5070\", \"sips:[::1]:5071\"]\n"
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        let c = parse_voicemail(&v, "test.toml", &dir).unwrap();
        let m = &c.mailboxes[0];
        assert_eq!(m.greeting_unavailable, Some(dir.join("greetings/200.wav")));
        assert_eq!(m.max_message, Duration::from_secs(60));
        assert_eq!(m.max_messages, 5);
        assert_eq!(m.min_message, Duration::from_millis(500));
        assert_eq!(m.silence, Duration::from_secs(4));
        assert_eq!(m.silence_threshold, 300);
        assert_eq!(m.notify.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_the_dotted_key() {
        assert_eq!(err_key("colour = 1"), "voicemail.colour");
        assert_eq!(
            err_key(&format!(
                "{ONE}[[mailboxes]]\nnumber = \"201\"\npin = \"\"\n"
            )),
            "voicemail.mailboxes[1].pin"
        );
        assert_eq!(
            err_key(&format!(
                "{ONE}[[mailboxes]]\nnumber = \"201\"\npin = \"12a4\"\n"
            )),
            "voicemail.mailboxes[1].pin"
        );
        assert_eq!(
            err_key(&format!(
                "{ONE}[[mailboxes]]\nnumber = \"200\"\npin = \"1\"\n"
            )),
            "voicemail.mailboxes[1].number"
        );
        assert_eq!(
            err_key(&format!("{ONE}favourite = true\n")),
            "voicemail.mailboxes[0].favourite"
        );
        assert_eq!(
            err_key(&format!("{ONE}greeting_busy = \"nope.wav\"\n")),
            "voicemail.mailboxes[0].greeting_busy"
        );
        assert_eq!(
            err_key(&format!("{ONE}notify = [\"sip:200@x\", \"http://x\"]\n")),
            "voicemail.mailboxes[0].notify[1]"
        );
        assert_eq!(
            err_key(&format!("{ONE}notify = [\"sip:\"]\n")),
            "voicemail.mailboxes[0].notify[0]"
        );
        assert_eq!(
            err_key(&format!("{ONE}max_messages = 0\n")),
            "voicemail.mailboxes[0].max_messages"
        );
        assert_eq!(
            err_key(&format!("{ONE}max_message_s = \"long\"\n")),
            "voicemail.mailboxes[0].max_message_s"
        );
        assert_eq!(
            err_key(&format!("{ONE}min_message_s = 500\n")),
            "voicemail.mailboxes[0].min_message_s"
        );
        assert_eq!(
            err_key("[[mailboxes]]\nnumber = \"2 0\"\npin = \"1\"\n"),
            "voicemail.mailboxes[0].number"
        );
        assert_eq!(
            err_key("[[mailboxes]]\nowner = \"x\"\npin = \"1\"\n"),
            "voicemail.mailboxes[0].number"
        );
        assert_eq!(err_key("mailboxes = 3"), "voicemail.mailboxes");
        let e = parse(&format!("{ONE}pin2 = 1\n")).unwrap_err();
        assert!(e.to_string().contains("test.toml"), "{e}");
    }

    #[test]
    fn sip_uri_check() {
        assert!(crate::config::is_sip_uri("sip:200@127.0.0.1:5070"));
        assert!(crate::config::is_sip_uri("sip:example.com;transport=tcp"));
        assert!(!crate::config::is_sip_uri("sip:200@"));
        assert!(!crate::config::is_sip_uri("tel:200"));
        assert!(!crate::config::is_sip_uri("sip:a b@c"));
    }
}
