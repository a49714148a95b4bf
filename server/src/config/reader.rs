//! Typed reading of hand-walked TOML sections (`[acd]`, `[voicemail]`, `[[campaigns]]` ...):
//! every accessor returns a [`ConfigError`] naming the file, the full dotted key and what
//! was expected, so the section parsers share one wording and one set of range checks.

use super::ConfigError;
use std::time::Duration;

/// Reads values of one config file, turning type and range errors into [`ConfigError`]s.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// The config file's name as shown in errors.
    pub file: &'a str,
}

/// A TOML table being read: its dotted key and its entries.
#[derive(Debug, Clone)]
pub struct Tbl<'t> {
    /// Full dotted key of the table, e.g. `acd.queues[0]`.
    pub key: String,
    /// Its entries.
    pub t: &'t toml::Table,
}

impl<'t> Tbl<'t> {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'t toml::Value> {
        self.t.get(name)
    }

    /// The full dotted key of `name` inside this table.
    pub fn k(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }
}

impl<'a> Reader<'a> {
    /// A reader for `file`.
    pub fn new(file: &'a str) -> Reader<'a> {
        Reader { file }
    }

    /// An error at `key`.
    pub fn err(&self, key: impl Into<String>, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            expected: expected.into(),
        }
    }

    /// `v` as a table at `key` whose keys are all in `allowed`.
    pub fn table<'t>(
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

    /// An array (empty when absent).
    pub fn array<'t>(
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

    /// A string, if present.
    pub fn string(
        &self,
        key: &str,
        v: Option<&toml::Value>,
    ) -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    /// A required string; `what` says what it names (e.g. `a queue name`).
    pub fn required(
        &self,
        key: &str,
        v: Option<&toml::Value>,
        what: &str,
    ) -> Result<String, ConfigError> {
        self.string(key, v)?
            .ok_or_else(|| self.err(key, format!("expected {what} (required)")))
    }

    /// A boolean, if present.
    pub fn bool(&self, key: &str, v: Option<&toml::Value>) -> Result<Option<bool>, ConfigError> {
        match v {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    /// Seconds (integer or float) within `min..=max`, if present.
    pub fn secs(
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

    /// An integer within `min..=max`, if present.
    pub fn int(
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

    /// Checks that `s` is a name of letters, digits and `extra` characters, 1 to 64 long.
    pub fn name(&self, key: &str, s: &str, what: &str, extra: &str) -> Result<(), ConfigError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> toml::Value {
        toml::Value::Table(text.parse::<toml::Table>().expect("test TOML"))
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let r = Reader::new("caruso.toml");
        let v = value("a = 1\nb = \"x\"\nc = 99.5\nd = [1]\ne = true");
        let t = r
            .table("top".into(), &v, &["a", "b", "c", "d", "e"])
            .unwrap();
        let e = r.string(&t.k("a"), t.get("a")).unwrap_err();
        assert_eq!((e.file.as_str(), e.key.as_str()), ("caruso.toml", "top.a"));
        assert_eq!(e.expected, "expected a string, found integer");
        assert_eq!(r.string("top.b", t.get("b")).unwrap().as_deref(), Some("x"));
        assert_eq!(r.string("top.z", t.get("z")).unwrap(), None);
        assert!(r
            .required("top.z", t.get("z"), "a name")
            .unwrap_err()
            .expected
            .contains("required"));
        let e = r.secs("top.c", t.get("c"), 0.0, 60.0).unwrap_err();
        assert_eq!(e.expected, "expected seconds between 0 and 60, found 99.5");
        assert_eq!(
            r.secs("top.a", t.get("a"), 0.0, 60.0).unwrap(),
            Some(Duration::from_secs(1))
        );
        assert!(r
            .int("top.a", t.get("a"), 2, 5)
            .unwrap_err()
            .expected
            .contains("between 2 and 5"));
        assert_eq!(r.int("top.a", t.get("a"), 0, 5).unwrap(), Some(1));
        assert_eq!(r.array("top.d", t.get("d")).unwrap().len(), 1);
        assert!(r.array("top.a", t.get("a")).is_err());
        assert_eq!(r.bool("top.e", t.get("e")).unwrap(), Some(true));
        assert!(r.bool("top.a", t.get("a")).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_names_are_refused() {
        let r = Reader::new("f.toml");
        let v = value("a = 1\nzz = 2");
        let e = r.table("sec".into(), &v, &["a"]).unwrap_err();
        assert_eq!(e.key, "sec.zz");
        assert_eq!(e.expected, "unknown key; expected one of a");
        assert!(r.name("k", "sales-1", "a queue name", "-_").is_ok());
        let e = r.name("k", "bad name", "a queue name", "-_").unwrap_err();
        assert!(
            e.expected.contains("a queue name of 1 to 64"),
            "{}",
            e.expected
        );
        assert!(r.name("k", "", "a name", "").is_err());
        assert!(r.name("k", &"x".repeat(65), "a name", "").is_err());
    }
}
