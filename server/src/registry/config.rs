//! `[registry]`: lease limits and the size of the registry.
//!
//! ```toml
//! [registry]
//! default_ttl_ms = 10000   # TTL granted when a Register asks for none
//! min_ttl_ms = 1000        # shorter requests get this
//! max_ttl_ms = 300000      # longer requests get this
//! max_instances = 1000     # Register answers RESOURCE_EXHAUSTED beyond it
//! ```

use crate::config::ConfigError;
use std::time::Duration;

/// Validated `[registry]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// TTL when a Register asks for none.
    pub default_ttl: Duration,
    /// Shortest TTL granted.
    pub min_ttl: Duration,
    /// Longest TTL granted.
    pub max_ttl: Duration,
    /// Most instances registered at once.
    pub max_instances: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            default_ttl: Duration::from_millis(10_000),
            min_ttl: Duration::from_millis(1_000),
            max_ttl: Duration::from_millis(300_000),
            max_instances: 1_000,
        }
    }
}

impl RegistryConfig {
    /// The TTL granted for a request of `asked` (`None` or zero: the default).
    pub fn grant(&self, asked: Option<Duration>) -> Duration {
        match asked.filter(|d| !d.is_zero()) {
            None => self.default_ttl,
            Some(d) => d.clamp(self.min_ttl, self.max_ttl),
        }
    }
}

const KEYS: &[&str] = &[
    "default_ttl_ms",
    "min_ttl_ms",
    "max_ttl_ms",
    "max_instances",
];

/// Parses the `[registry]` table of `file`.
pub fn parse_registry(v: &toml::Value, file: &str) -> Result<RegistryConfig, ConfigError> {
    let err = |key: &str, expected: String| ConfigError {
        file: file.to_string(),
        key: format!("registry{}{key}", if key.is_empty() { "" } else { "." }),
        expected,
    };
    let table = v
        .as_table()
        .ok_or_else(|| err("", format!("expected a table, found {}", v.type_str())))?;
    if let Some(k) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(
            k,
            format!("unknown key; expected one of {}", KEYS.join(", ")),
        ));
    }
    let int = |key: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
        match table.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if (min as i64..=max as i64).contains(n) => Ok(*n as u64),
            Some(other) => Err(err(
                key,
                format!("expected an integer between {min} and {max}, found {other}"),
            )),
        }
    };
    let d = RegistryConfig::default();
    let ms = |d: Duration| d.as_millis() as u64;
    let min_ttl = int("min_ttl_ms", ms(d.min_ttl), 100, 86_400_000)?;
    let max_ttl = int("max_ttl_ms", ms(d.max_ttl), 100, 86_400_000)?;
    if max_ttl < min_ttl {
        return Err(err(
            "max_ttl_ms",
            format!("expected at least min_ttl_ms ({min_ttl}), found {max_ttl}"),
        ));
    }
    let default_ttl = int(
        "default_ttl_ms",
        ms(d.default_ttl).clamp(min_ttl, max_ttl),
        100,
        86_400_000,
    )?;
    if !(min_ttl..=max_ttl).contains(&default_ttl) {
        return Err(err(
            "default_ttl_ms",
            format!(
                "expected milliseconds between min_ttl_ms ({min_ttl}) and max_ttl_ms ({max_ttl}), found {default_ttl}"
            ),
        ));
    }
    let max_instances = int("max_instances", d.max_instances as u64, 1, 1_000_000)? as usize;
    Ok(RegistryConfig {
        default_ttl: Duration::from_millis(default_ttl),
        min_ttl: Duration::from_millis(min_ttl),
        max_ttl: Duration::from_millis(max_ttl),
        max_instances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistryConfig, ConfigError> {
        let v: toml::Value = toml::from_str(text).unwrap();
        parse_registry(v.get("registry").unwrap(), "f.toml")
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse("[registry]\n").unwrap(), RegistryConfig::default());
        let c = parse("[registry]\ndefault_ttl_ms = 2000\nmin_ttl_ms = 500\nmax_instances = 3\n")
            .unwrap();
        assert_eq!(c.default_ttl, Duration::from_millis(2000));
        assert_eq!(c.min_ttl, Duration::from_millis(500));
        assert_eq!(c.max_instances, 3);
        assert_eq!(c.grant(None), Duration::from_millis(2000));
        assert_eq!(c.grant(Some(Duration::ZERO)), Duration::from_millis(2000));
        assert_eq!(c.grant(Some(Duration::from_millis(1))), c.min_ttl);
        assert_eq!(c.grant(Some(Duration::from_secs(1_000_000))), c.max_ttl);
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = parse("[registry]\nmax_ttl_ms = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "registry.max_ttl_ms");
        assert_eq!(e.file, "f.toml");
        assert!(e.expected.contains("integer"), "{e}");
        let e = parse("[registry]\nttl = 3\n").unwrap_err();
        assert_eq!(e.key, "registry.ttl");
        let e = parse("[registry]\nmin_ttl_ms = 5000\nmax_ttl_ms = 2000\n").unwrap_err();
        assert_eq!(e.key, "registry.max_ttl_ms");
        let e = parse("[registry]\ndefault_ttl_ms = 500000\n").unwrap_err();
        assert_eq!(e.key, "registry.default_ttl_ms");
        let e = parse("registry = 3\n").unwrap_err();
        assert_eq!(e.key, "registry");
    }
}
