//! Configuration: TOML read by [`Config::from_toml`], validated once into typed values.
//!
//! Every error names the file, the key and what was expected:
//!
//! ```text
//! config/caruso.toml: key `rtp.port_min`: expected an even port number (RTP uses even ports), found 20001
//! ```
//!
//! Relative paths (prompts, data directory) are resolved against the directory of the
//! config file, so `caruso --config /etc/caruso/caruso.toml` finds `prompts/welcome.wav`
//! beside it.

pub mod reader;

use crate::media::codec::Codec;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The default configuration, compiled into the binary (`config/caruso.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/caruso.toml");

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: key `{key}`: {expected}")]
pub struct ConfigError {
    /// The file the value came from.
    pub file: String,
    /// Dotted key path (`sip.udp`, `numbers[0].prompt`).
    pub key: String,
    /// What was expected, and what was found.
    pub expected: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    sip: RawSip,
    #[serde(default)]
    rtp: RawRtp,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    numbers: Vec<RawNumber>,
    #[serde(default)]
    ivr: RawIvr,
    /// IVR flows, validated by `ivr::flow::parse_flows`.
    flows: Option<toml::Value>,
    /// Voicemail, validated by `voicemail::config::parse_voicemail`.
    voicemail: Option<toml::Value>,
    /// ACD, validated by `acd::config::parse_acd`.
    acd: Option<toml::Value>,
    #[serde(default)]
    trunks: Vec<RawTrunk>,
    /// Plug-in hooks, validated by `hooks::config::parse_hooks`.
    hooks: Option<toml::Value>,
    /// Service registry limits, validated by `registry::config::parse_registry`.
    registry: Option<toml::Value>,
    /// Outbound campaigns, validated by `dialer::config::parse_campaigns`.
    campaigns: Option<toml::Value>,
    #[serde(default)]
    dialer: RawDialer,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDialer {
    dnc_file: Option<String>,
    default_country: Option<String>,
}

/// Dialer settings (`[dialer]`): the server-wide do-not-call list.
#[derive(Debug, Clone)]
pub struct DialerSettings {
    /// Do-not-call file (one number a line, `#` comments), relative to the config file.
    pub dnc_file: Option<PathBuf>,
    /// Country of national numbers in the do-not-call file (default "US").
    pub default_country: &'static crate::dialer::phone::Country,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    data_dir: Option<String>,
    user_agent: Option<String>,
    shutdown_grace_ms: Option<u64>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSip {
    udp: Option<String>,
    tcp: Option<String>,
    public_host: Option<String>,
    t1_ms: Option<u64>,
    t2_ms: Option<u64>,
    t4_ms: Option<u64>,
    max_message_size: Option<usize>,
    unknown_number: Option<String>,
    ring_timeout_s: Option<u64>,
    #[serde(default)]
    registrar: RawRegistrar,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRegistrar {
    realm: Option<String>,
    algorithms: Option<Vec<String>>,
    nonce_lifetime_s: Option<u64>,
    default_expires_s: Option<u32>,
    min_expires_s: Option<u32>,
    max_expires_s: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRtp {
    ip: Option<String>,
    port_min: Option<u16>,
    port_max: Option<u16>,
    inactivity_timeout_s: Option<u64>,
    codecs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    grpc: Option<String>,
    #[serde(default)]
    tokens: Vec<RawApiToken>,
    tls: Option<RawApiTls>,
    #[serde(default)]
    rate_limit: RawRateLimit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiToken {
    name: Option<String>,
    token: Option<String>,
    role: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApiTls {
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    max_failures: Option<u32>,
    window_s: Option<u64>,
    max_peers: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: String,
    host: String,
    #[serde(default)]
    prefix: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIvr {
    prompt_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    number: String,
    prompt: Option<String>,
    flow: Option<String>,
    #[serde(default)]
    answer_delay_ms: u64,
}

/// An IP network in CIDR form (`127.0.0.0/8`), for the destination allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d/n`, `v6/n`, or a bare address (a host route).
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            (IpAddr::V4(_), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            _ => false,
        }
    }
}

/// Where the server may send packets. An empty list means no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(pub Vec<IpNet>);

impl AllowList {
    /// Whether a packet may be sent to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(ip))
    }
}

/// What happens to a call for a number that is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownNumber {
    /// Answer `404 Not Found`.
    NotFound,
    /// Route to the first configured number.
    FirstNumber,
    /// Run this IVR flow (`"flow:<name>"`).
    Flow(String),
}

/// SIP settings.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP listen address, if UDP is enabled.
    pub udp: Option<SocketAddr>,
    /// TCP listen address, if TCP is enabled.
    pub tcp: Option<SocketAddr>,
    /// Host written in Via and Contact (defaults to the listen IP).
    pub public_host: String,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// RFC 3261 T4.
    pub t4: Duration,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Behaviour for unknown numbers.
    pub unknown_number: UnknownNumber,
    /// Registrar and digest settings (`[sip.registrar]`).
    pub registrar: crate::sip::registrar::RegistrarConfig,
    /// How long an outbound leg (an IVR `extension` node's target) rings before we
    /// CANCEL it (`sip.ring_timeout_s`, default 30 s).
    pub ring_timeout: Duration,
}

/// RTP settings.
#[derive(Debug, Clone)]
pub struct RtpConfig {
    /// Address RTP sockets bind to and the SDP announces.
    pub ip: IpAddr,
    /// First port of the range (even).
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
    /// A call with no RTP from the peer for this long is ended.
    pub inactivity_timeout: Duration,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
}

/// A SIP trunk: where external numbers are dialed (a carrier or a PBX), by IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Name used by IVR `external` nodes and agents' `phone = { trunk, number }`.
    pub name: String,
    /// The trunk's SIP address (UDP; no DNS).
    pub addr: SocketAddr,
    /// Digits put in front of every number dialed (e.g. an outside-line `0`).
    pub prefix: String,
}

impl TrunkConfig {
    /// The Request-URI for `number` on this trunk.
    pub fn uri_for(&self, number: &str) -> String {
        format!(
            "sip:{}{}@{}",
            self.prefix,
            number,
            SocketAddr::new(self.addr.ip(), self.addr.port())
        )
    }
}

/// A dialable number and what it does: run an IVR flow, or play a prompt and hang up.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// The Request-URI user part that selects it.
    pub number: String,
    /// The prompt played after answering (numbers without a flow).
    pub prompt: Option<PathBuf>,
    /// The IVR flow the call enters.
    pub flow: Option<String>,
    /// Ringing time before the answer (180 Ringing meanwhile).
    pub answer_delay: Duration,
}

/// A bearer token of the gRPC API (`[[api.tokens]]`); its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Name for logs (`ops-dashboard`).
    pub name: String,
    /// The secret the client sends as `authorization: Bearer <token>`.
    pub token: String,
    /// What it may do.
    pub role: crate::api::auth::Role,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// The gRPC API's TLS certificate and key (`[api.tls]`), read and checked at load; its
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct ApiTls {
    /// Certificate chain file (PEM), resolved against the config's directory.
    pub cert: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
    /// The certificate chain's PEM text.
    pub cert_pem: Vec<u8>,
    /// The private key's PEM text.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// gRPC API security settings (`[api]` besides `grpc`).
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Bearer tokens of supervisors, integrators and administrators (agents' tokens are
    /// in `[acd.agents]`).
    pub tokens: Vec<ApiToken>,
    /// TLS for the API (`None`: plain HTTP/2).
    pub tls: Option<ApiTls>,
    /// Limits on failed authentications per peer IP.
    pub rate_limit: crate::api::auth::RateLimit,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (a path, or `<embedded default>`).
    pub source: String,
    /// Data directory (store).
    pub data_dir: PathBuf,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// How long shutdown waits for calls to end after sending BYE.
    pub shutdown_grace: Duration,
    /// The zone whose midnight resets the monitor's daily figures (`server.timezone`;
    /// `None`: the host's zone).
    pub timezone: Option<jiff::tz::TimeZone>,
    /// SIP settings.
    pub sip: SipConfig,
    /// RTP settings.
    pub rtp: RtpConfig,
    /// gRPC listen address (`None` disables the API).
    pub grpc: Option<SocketAddr>,
    /// gRPC tokens, TLS and rate limits.
    pub api: ApiConfig,
    /// Prometheus listen address (`None` disables the exporter).
    pub metrics: Option<SocketAddr>,
    /// Destination allow-list for everything the server sends.
    pub allow: AllowList,
    /// Dialable numbers.
    pub numbers: Vec<NumberConfig>,
    /// Where prompt names resolve (`<prompt_dir>/<name>.wav`).
    pub prompt_dir: PathBuf,
    /// Validated IVR flows.
    pub flows: Arc<crate::ivr::flow::FlowSet>,
    /// Mailboxes and voicemail settings.
    pub voicemail: crate::voicemail::config::VoicemailConfig,
    /// Queues, agents and reason codes (`None`: no `[acd]` table).
    pub acd: Option<Arc<crate::acd::config::AcdConfig>>,
    /// SIP trunks for external numbers.
    pub trunks: Vec<TrunkConfig>,
    /// Plug-in hooks (`[hooks]`): which registered service serves which hook.
    pub hooks: crate::hooks::HooksConfig,
    /// Service registry limits (`[registry]`).
    pub registry: crate::registry::RegistryConfig,
    /// Outbound campaigns (`[[campaigns]]`), restart-only.
    pub campaigns: Vec<Arc<crate::dialer::config::CampaignConfig>>,
    /// Dialer settings (`[dialer]`), restart-only.
    pub dialer: DialerSettings,
    /// The entry used for unknown numbers when `sip.unknown_number` names a flow.
    unknown_flow: Option<NumberConfig>,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            expected: expected.into(),
        }
    }

    fn addr(&self, key: &str, v: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
        match v {
            None | Some("") | Some("off") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                self.err(
                    key,
                    format!("expected an address like \"127.0.0.1:5060\" or \"off\", found {s:?}"),
                )
            }),
        }
    }

    fn ms(
        &self,
        key: &str,
        v: Option<u64>,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            return Err(self.err(
                key,
                format!("expected milliseconds between {min} and {max}, found {v}"),
            ));
        }
        Ok(Duration::from_millis(v))
    }
}

impl Config {
    /// Parses and validates a config. `file` names the source in error messages and its
    /// directory anchors relative paths (`base_dir`).
    pub fn from_toml(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx { file };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().map(|s| line_of(text, s.start));
            let key = match span {
                Some(line) => format!("(line {line})"),
                None => "(document)".to_string(),
            };
            cx.err(key, e.message().to_string())
        })?;

        let udp = cx.addr("sip.udp", raw.sip.udp.as_deref().or(Some("127.0.0.1:5060")))?;
        let tcp = cx.addr("sip.tcp", raw.sip.tcp.as_deref().or(Some("127.0.0.1:5060")))?;
        if udp.is_none() && tcp.is_none() {
            return Err(cx.err(
                "sip.udp",
                "at least one of sip.udp and sip.tcp must be enabled",
            ));
        }
        let listen_ip = udp
            .or(tcp)
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let public_host = match raw.sip.public_host {
            Some(h) if h.trim().is_empty() => {
                return Err(cx.err(
                    "sip.public_host",
                    "expected a host name or IP address, found an empty string",
                ))
            }
            Some(h) => h,
            None => host_string(listen_ip),
        };
        let t1 = cx.ms("sip.t1_ms", raw.sip.t1_ms, 500, 1, 60_000)?;
        let t2 = cx.ms("sip.t2_ms", raw.sip.t2_ms, 4_000, 1, 600_000)?;
        let t4 = cx.ms("sip.t4_ms", raw.sip.t4_ms, 5_000, 1, 600_000)?;
        if t2 < t1 {
            return Err(cx.err(
                "sip.t2_ms",
                format!(
                    "expected T2 >= T1 ({} ms), found {} ms",
                    t1.as_millis(),
                    t2.as_millis()
                ),
            ));
        }
        let ring_timeout_s = raw.sip.ring_timeout_s.unwrap_or(30);
        if !(1..=600).contains(&ring_timeout_s) {
            return Err(cx.err(
                "sip.ring_timeout_s",
                format!("expected seconds between 1 and 600, found {ring_timeout_s}"),
            ));
        }
        let max_message_size = raw.sip.max_message_size.unwrap_or(65_535);
        if !(1_500..=1_048_576).contains(&max_message_size) {
            return Err(cx.err(
                "sip.max_message_size",
                format!("expected bytes between 1500 and 1048576, found {max_message_size}"),
            ));
        }
        let unknown_number = match raw.sip.unknown_number.as_deref().unwrap_or("reject") {
            "reject" => UnknownNumber::NotFound,
            "first" => UnknownNumber::FirstNumber,
            other if other.starts_with("flow:") && other.len() > 5 => {
                UnknownNumber::Flow(other[5..].to_string())
            }
            other => {
                return Err(cx.err(
                    "sip.unknown_number",
                    format!(
                    "expected \"reject\" (404), \"first\" or \"flow:<flow name>\", found {other:?}"
                ),
                ))
            }
        };

        let registrar = {
            let r = &raw.sip.registrar;
            let mut reg = crate::sip::registrar::RegistrarConfig::new(&public_host);
            if let Some(realm) = &r.realm {
                if realm.trim().is_empty() || realm.contains('"') {
                    return Err(cx.err(
                        "sip.registrar.realm",
                        format!("expected a realm without quotes, found {realm:?}"),
                    ));
                }
                reg.auth.realm = realm.clone();
            }
            if let Some(algs) = &r.algorithms {
                let mut out = Vec::new();
                for (i, a) in algs.iter().enumerate() {
                    let alg = crate::sip::auth::Algorithm::from_token(a).ok_or_else(|| {
                        cx.err(
                            format!("sip.registrar.algorithms[{i}]"),
                            format!("expected \"SHA-256\" or \"MD5\", found {a:?}"),
                        )
                    })?;
                    if !out.contains(&alg) {
                        out.push(alg);
                    }
                }
                if out.is_empty() {
                    return Err(cx.err(
                        "sip.registrar.algorithms",
                        "expected at least one algorithm",
                    ));
                }
                reg.auth.algorithms = out;
            }
            if let Some(n) = r.nonce_lifetime_s {
                if !(10..=86_400).contains(&n) {
                    return Err(cx.err(
                        "sip.registrar.nonce_lifetime_s",
                        format!("expected seconds between 10 and 86400, found {n}"),
                    ));
                }
                reg.auth.nonce_lifetime = Duration::from_secs(n);
            }
            reg.min_expires = r.min_expires_s.unwrap_or(reg.min_expires);
            reg.max_expires = r.max_expires_s.unwrap_or(reg.max_expires);
            reg.default_expires = r.default_expires_s.unwrap_or(reg.default_expires);
            if reg.min_expires == 0 || reg.min_expires > reg.max_expires {
                return Err(cx.err(
                    "sip.registrar.min_expires_s",
                    format!(
                        "expected 1 <= min_expires_s <= max_expires_s ({}), found {}",
                        reg.max_expires, reg.min_expires
                    ),
                ));
            }
            if !(reg.min_expires..=reg.max_expires).contains(&reg.default_expires) {
                return Err(cx.err(
                    "sip.registrar.default_expires_s",
                    format!(
                        "expected seconds between min_expires_s ({}) and max_expires_s ({}), found {}",
                        reg.min_expires, reg.max_expires, reg.default_expires
                    ),
                ));
            }
            reg
        };

        let rtp_ip: IpAddr = match raw.rtp.ip.as_deref() {
            None => listen_ip,
            Some(s) => s
                .parse()
                .map_err(|_| cx.err("rtp.ip", format!("expected an IP address, found {s:?}")))?,
        };
        let port_min = raw.rtp.port_min.unwrap_or(20_000);
        let port_max = raw.rtp.port_max.unwrap_or(29_999);
        if port_min < 1024 || !port_min.is_multiple_of(2) {
            return Err(cx.err("rtp.port_min", format!("expected an even port number >= 1024 (RTP uses even ports, RTCP the next odd one), found {port_min}")));
        }
        if port_max <= port_min {
            return Err(cx.err(
                "rtp.port_max",
                format!("expected a port above rtp.port_min ({port_min}), found {port_max}"),
            ));
        }
        let inactivity_timeout = Duration::from_secs(raw.rtp.inactivity_timeout_s.unwrap_or(30));
        if inactivity_timeout.is_zero() {
            return Err(cx.err(
                "rtp.inactivity_timeout_s",
                "expected a number of seconds > 0, found 0",
            ));
        }
        let codecs = match raw.rtp.codecs {
            None => vec![Codec::Pcmu, Codec::Pcma],
            Some(list) => {
                let mut out = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let codec = match c.to_ascii_uppercase().as_str() {
                        "PCMU" => Codec::Pcmu,
                        "PCMA" => Codec::Pcma,
                        _ => {
                            return Err(cx.err(
                                format!("rtp.codecs[{i}]"),
                                format!("expected \"PCMU\" or \"PCMA\", found {c:?}"),
                            ))
                        }
                    };
                    if !out.contains(&codec) {
                        out.push(codec);
                    }
                }
                if out.is_empty() {
                    return Err(cx.err("rtp.codecs", "expected at least one codec"));
                }
                out
            }
        };

        let grpc = cx.addr(
            "api.grpc",
            raw.api.grpc.as_deref().or(Some("127.0.0.1:50051")),
        )?;
        let metrics = cx.addr(
            "metrics.listen",
            raw.metrics.listen.as_deref().or(Some("127.0.0.1:9090")),
        )?;

        let mut allow = Vec::new();
        for (i, s) in raw.network.allow.unwrap_or_default().iter().enumerate() {
            allow.push(IpNet::parse(s).ok_or_else(|| {
                cx.err(
                    format!("network.allow[{i}]"),
                    format!("expected a network like \"127.0.0.0/8\", found {s:?}"),
                )
            })?);
        }

        let mut trunks: Vec<TrunkConfig> = Vec::new();
        for (i, t) in raw.trunks.iter().enumerate() {
            let key = format!("trunks[{i}]");
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(cx.err(
                    format!("{key}.name"),
                    format!(
                        "expected a name of letters, digits, - and _, found {:?}",
                        t.name
                    ),
                ));
            }
            if trunks.iter().any(|o| o.name == t.name) {
                return Err(cx.err(
                    format!("{key}.name"),
                    format!(
                        "expected a unique trunk name, but {:?} is configured twice",
                        t.name
                    ),
                ));
            }
            let addr: SocketAddr = t.host.parse().map_err(|_| {
                cx.err(
                    format!("{key}.host"),
                    format!(
                        "expected an IP address and port like \"192.0.2.1:5060\" (no DNS), found {:?}",
                        t.host
                    ),
                )
            })?;
            if !t.prefix.chars().all(|c| c.is_ascii_digit() || c == '+') {
                return Err(cx.err(
                    format!("{key}.prefix"),
                    format!("expected digits (or +), found {:?}", t.prefix),
                ));
            }
            trunks.push(TrunkConfig {
                name: t.name.clone(),
                addr,
                prefix: t.prefix.clone(),
            });
        }
        let trunk_names: Vec<String> = trunks.iter().map(|t| t.name.clone()).collect();
        let prompt_dir = base_dir.join(raw.ivr.prompt_dir.as_deref().unwrap_or("prompts"));
        let voicemail = match &raw.voicemail {
            Some(v) => crate::voicemail::config::parse_voicemail(v, file, base_dir)?,
            None => crate::voicemail::config::VoicemailConfig::default(),
        };
        let flows = match &raw.flows {
            Some(v) => {
                let refs = crate::ivr::flow::References {
                    mailboxes: voicemail
                        .mailboxes
                        .iter()
                        .map(|m| m.number.clone())
                        .collect(),
                    trunks: trunk_names.clone(),
                    // Without an [acd] table queue names cannot be checked.
                    queues: raw.acd.as_ref().map(crate::acd::config::queue_names),
                };
                let dir = prompt_dir.clone();
                let exists = move |name: &str| dir.join(format!("{name}.wav")).is_file();
                crate::ivr::flow::parse_flows(v, file, &refs, &exists)?
            }
            None => crate::ivr::flow::FlowSet::default(),
        };
        let acd = match &raw.acd {
            Some(v) => {
                let dir = prompt_dir.clone();
                let exists = move |name: &str| dir.join(format!("{name}.wav")).is_file();
                let mut refs = crate::acd::config::AcdReferences::new(&exists);
                refs.mailboxes = voicemail
                    .mailboxes
                    .iter()
                    .map(|m| m.number.clone())
                    .collect();
                refs.flows = crate::acd::config::AcdReferences::flows_of(&flows);
                refs.trunks = trunk_names.clone();
                Some(Arc::new(crate::acd::config::parse_acd(v, file, &refs)?))
            }
            None => None,
        };
        let api = parse_api(&cx, &raw.api, base_dir, acd.as_deref())?;
        let mut numbers: Vec<NumberConfig> = Vec::new();
        for (i, n) in raw.numbers.into_iter().enumerate() {
            let key = format!("numbers[{i}]");
            if n.number.is_empty()
                || !n
                    .number
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c))
            {
                return Err(cx.err(
                    format!("{key}.number"),
                    format!(
                        "expected a dialable number (digits, letters, + * # - _ .), found {:?}",
                        n.number
                    ),
                ));
            }
            if numbers.iter().any(|o| o.number == n.number) {
                return Err(cx.err(
                    format!("{key}.number"),
                    format!(
                        "expected a unique number, but {:?} is configured twice",
                        n.number
                    ),
                ));
            }
            if n.answer_delay_ms > 120_000 {
                return Err(cx.err(
                    format!("{key}.answer_delay_ms"),
                    format!("expected at most 120000 ms, found {}", n.answer_delay_ms),
                ));
            }
            let (prompt, flow) =
                match (n.prompt, n.flow) {
                    (Some(p), None) => (Some(base_dir.join(p)), None),
                    (None, Some(f)) => {
                        if flows.flow(&f).is_none() {
                            return Err(cx.err(
                                format!("{key}.flow"),
                                format!("expected the name of a flow under [flows], found {f:?}"),
                            ));
                        }
                        (None, Some(f))
                    }
                    _ => return Err(cx.err(
                        key.clone(),
                        "expected exactly one of `flow` (an IVR flow) and `prompt` (a WAV to play)",
                    )),
                };
            numbers.push(NumberConfig {
                number: n.number,
                prompt,
                flow,
                answer_delay: Duration::from_millis(n.answer_delay_ms),
            });
        }
        let hooks = match &raw.hooks {
            Some(v) => crate::hooks::config::parse_hooks(v, file)?,
            None => crate::hooks::HooksConfig::default(),
        };
        let registry = match &raw.registry {
            Some(v) => crate::registry::config::parse_registry(v, file)?,
            None => crate::registry::RegistryConfig::default(),
        };
        let campaigns = match &raw.campaigns {
            Some(v) => {
                let dir = prompt_dir.clone();
                let exists = move |name: &str| dir.join(format!("{name}.wav")).is_file();
                let refs = crate::dialer::config::CampaignReferences {
                    // Without an [acd] table there are no queues to work a campaign.
                    queues: Some(
                        raw.acd
                            .as_ref()
                            .map(crate::acd::config::queue_names)
                            .unwrap_or_default(),
                    ),
                    trunks: Some(trunk_names.clone()),
                    flows: Some(flows.names().map(String::from).collect()),
                    prompt_exists: &exists,
                };
                crate::dialer::config::parse_campaigns(v, file, base_dir, &refs)?
                    .into_iter()
                    .map(Arc::new)
                    .collect()
            }
            None => Vec::new(),
        };
        let dialer = {
            let country = raw.dialer.default_country.as_deref().unwrap_or("US");
            DialerSettings {
                dnc_file: raw.dialer.dnc_file.as_deref().map(|f| base_dir.join(f)),
                default_country: crate::dialer::phone::Country::by_alpha2(country).ok_or_else(
                    || {
                        cx.err(
                            "dialer.default_country",
                            format!("expected an ISO 3166 alpha-2 country code like \"PL\", found {country:?}"),
                        )
                    },
                )?,
            }
        };
        let unknown_flow = match &unknown_number {
            UnknownNumber::Flow(f) => {
                if flows.flow(f).is_none() {
                    return Err(cx.err(
                        "sip.unknown_number",
                        format!("expected \"flow:<name>\" naming a flow under [flows], found flow {f:?}"),
                    ));
                }
                Some(NumberConfig {
                    number: String::new(),
                    prompt: None,
                    flow: Some(f.clone()),
                    answer_delay: Duration::ZERO,
                })
            }
            _ => None,
        };
        if numbers.is_empty() && unknown_number == UnknownNumber::FirstNumber {
            return Err(cx.err(
                "sip.unknown_number",
                "\"first\" needs at least one [[numbers]] entry",
            ));
        }

        Ok(Config {
            source: file.to_string(),
            data_dir: base_dir.join(raw.server.data_dir.unwrap_or_else(|| "data".into())),
            user_agent: raw
                .server
                .user_agent
                .unwrap_or_else(|| format!("caruso/{}", env!("CARGO_PKG_VERSION"))),
            shutdown_grace: cx.ms(
                "server.shutdown_grace_ms",
                raw.server.shutdown_grace_ms,
                5_000,
                0,
                600_000,
            )?,
            timezone: match raw.server.timezone.as_deref() {
                None => None,
                Some(name) => Some(jiff::tz::TimeZone::get(name).map_err(|_| {
                    cx.err(
                        "server.timezone",
                        format!("an IANA time zone name like \"Europe/Warsaw\", found {name:?}"),
                    )
                })?),
            },
            sip: SipConfig {
                udp,
                tcp,
                public_host,
                t1,
                t2,
                t4,
                max_message_size,
                unknown_number,
                registrar,
                ring_timeout: Duration::from_secs(ring_timeout_s),
            },
            rtp: RtpConfig {
                ip: rtp_ip,
                port_min,
                port_max,
                inactivity_timeout,
                codecs,
            },
            grpc,
            api,
            metrics,
            allow: AllowList(allow),
            numbers,
            prompt_dir,
            flows: Arc::new(flows),
            voicemail,
            acd,
            trunks,
            hooks,
            registry,
            campaigns,
            dialer,
            unknown_flow,
        })
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            expected: format!("expected a readable TOML file: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_toml(&text, &file, &base)
    }

    /// The embedded default; relative paths resolve against the current directory
    /// (run it from the repository root, where `config/prompts/` is).
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_toml(
            DEFAULT_CONFIG,
            "<embedded default config/caruso.toml>",
            Path::new("config"),
        )
    }

    /// The trunk with this name.
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The number a Request-URI user selects.
    pub fn number(&self, user: &str) -> Option<&NumberConfig> {
        match self.numbers.iter().find(|n| n.number == user) {
            Some(n) => Some(n),
            None => match self.sip.unknown_number {
                UnknownNumber::FirstNumber => self.numbers.first(),
                UnknownNumber::Flow(_) => self.unknown_flow.as_ref(),
                UnknownNumber::NotFound => None,
            },
        }
    }
}

/// Validates `[api]` tokens (unique, non-empty, sendable as gRPC metadata, different from
/// every agent's), `[api.tls]` (readable PEM files that make a TLS config) and
/// `[api.rate_limit]`. Messages never contain a token.
fn parse_api(
    cx: &Ctx<'_>,
    raw: &RawApi,
    base_dir: &Path,
    acd: Option<&crate::acd::config::AcdConfig>,
) -> Result<ApiConfig, ConfigError> {
    use crate::api::auth::{RateLimit, Role};
    let mut tokens: Vec<ApiToken> = Vec::new();
    for (i, t) in raw.tokens.iter().enumerate() {
        let key = |k: &str| format!("api.tokens[{i}].{k}");
        let name = t
            .name
            .as_deref()
            .ok_or_else(|| cx.err(key("name"), "expected a name for logs (e.g. \"wallboard\")"))?;
        if name.trim().is_empty() {
            return Err(cx.err(key("name"), "expected a non-empty name"));
        }
        if let Some(j) = tokens.iter().position(|o| o.name == name) {
            return Err(cx.err(
                key("name"),
                format!("expected a unique name, but api.tokens[{j}] is also called {name:?}"),
            ));
        }
        let role_name = t.role.as_deref().ok_or_else(|| {
            cx.err(
                key("role"),
                "expected a role: \"supervisor\", \"integrator\" or \"admin\"",
            )
        })?;
        let role = Role::from_config(role_name).ok_or_else(|| {
            let hint = if role_name == "agent" {
                " (agents' tokens are `token` in [[acd.agents]])"
            } else {
                ""
            };
            cx.err(
                key("role"),
                format!("expected \"supervisor\", \"integrator\" or \"admin\"{hint}, found {role_name:?}"),
            )
        })?;
        let token = t
            .token
            .as_deref()
            .ok_or_else(|| cx.err(key("token"), "expected a secret token"))?;
        if token.is_empty() {
            return Err(cx.err(key("token"), "expected a non-empty token"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(cx.err(
                key("token"),
                "expected printable ASCII without spaces (it is sent as gRPC metadata)",
            ));
        }
        if let Some(j) = tokens.iter().position(|o| o.token == token) {
            return Err(cx.err(
                key("token"),
                format!("expected a unique token, but api.tokens[{j}] has the same one"),
            ));
        }
        if let Some(acd) = acd {
            if let Some(j) = acd.agents.iter().position(|a| a.token == token) {
                return Err(cx.err(
                    key("token"),
                    format!(
                        "expected a token different from every agent's, but acd.agents[{j}] ({}) has the same one",
                        acd.agents[j].id
                    ),
                ));
            }
        }
        tokens.push(ApiToken {
            name: name.to_string(),
            token: token.to_string(),
            role,
        });
    }

    let tls = match &raw.tls {
        None => None,
        Some(t) => {
            let read = |k: &str, v: &Option<String>, what: &str| {
                let v = v
                    .as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        cx.err(
                            format!("api.tls.{k}"),
                            format!("expected the path of {what}"),
                        )
                    })?;
                let path = base_dir.join(v);
                let pem = std::fs::read(&path).map_err(|e| {
                    cx.err(
                        format!("api.tls.{k}"),
                        format!(
                            "expected a readable file with {what}, cannot read {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                Ok::<_, ConfigError>((path, pem))
            };
            let (cert, cert_pem) = read("cert", &t.cert, "a PEM certificate chain")?;
            let (key, key_pem) = read("key", &t.key, "a PEM private key")?;
            crate::api::tls::check_pem(&cert_pem, &key_pem).map_err(|e| {
                let (k, path) = match e {
                    crate::api::tls::TlsError::Certificate(_) => ("cert", &cert),
                    crate::api::tls::TlsError::Key(_) => ("key", &key),
                    crate::api::tls::TlsError::Mismatch(_) => ("key", &key),
                };
                cx.err(format!("api.tls.{k}"), format!("{}: {e}", path.display()))
            })?;
            Some(ApiTls {
                cert,
                key,
                cert_pem,
                key_pem,
            })
        }
    };

    let defaults = RateLimit::default();
    let r = &raw.rate_limit;
    let max_failures = r.max_failures.unwrap_or(defaults.max_failures);
    if !(1..=100_000).contains(&max_failures) {
        return Err(cx.err(
            "api.rate_limit.max_failures",
            format!("expected failures between 1 and 100000, found {max_failures}"),
        ));
    }
    let window_s = r.window_s.unwrap_or(defaults.window.as_secs());
    if !(1..=86_400).contains(&window_s) {
        return Err(cx.err(
            "api.rate_limit.window_s",
            format!("expected seconds between 1 and 86400, found {window_s}"),
        ));
    }
    let max_peers = r.max_peers.unwrap_or(defaults.max_peers);
    if !(1..=1_000_000).contains(&max_peers) {
        return Err(cx.err(
            "api.rate_limit.max_peers",
            format!("expected a number of addresses between 1 and 1000000, found {max_peers}"),
        ));
    }
    Ok(ApiConfig {
        tokens,
        tls,
        rate_limit: RateLimit {
            max_failures,
            window: Duration::from_secs(window_s),
            max_peers,
        },
    })
}

/// Whether `s` is a `sip:`/`sips:` URI with a host, by the SIP message parser (for
/// config keys that take a SIP URI).
pub fn is_sip_uri(s: &str) -> bool {
    crate::sip::message::Uri::parse(s.trim()).is_ok_and(|u| {
        matches!(u.scheme.as_str(), "sip" | "sips") && !u.host.is_empty() && s.trim() == s
    })
}

/// Formats an IP for a SIP host (IPv6 in brackets).
pub fn host_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_toml(s, "test.toml", Path::new("/etc/caruso"))
    }

    #[test]
    fn embedded_default_is_valid() {
        // The embedded text with the repository's config/ as its directory (the tests run
        // in server/, the binary from the repository root).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let c = Config::from_toml(DEFAULT_CONFIG, "caruso.toml", &dir)
            .expect("default config validates");
        assert_eq!(c.sip.udp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(c.grpc, Some("127.0.0.1:50051".parse().unwrap()));
        assert_eq!(
            c.number("100").and_then(|n| n.flow.as_deref()),
            Some("main")
        );
        assert!(c.flows.flow("main").is_some());
        assert_eq!(c.voicemail.mailboxes[0].number, "200");
        assert!(c.allow.permits("127.0.0.1".parse().unwrap()));
        assert!(!c.allow.permits("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_default_config_has_the_demo_campaign_with_its_contacts_and_trunk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let c = Config::from_toml(DEFAULT_CONFIG, "caruso.toml", &dir).unwrap();
        let demo = &c.campaigns[0];
        assert_eq!(demo.name, "demo");
        assert_eq!(demo.queue.as_deref(), Some("sales"));
        assert!(c.trunk(&demo.trunk).is_some());
        assert!(demo.contacts.as_ref().is_some_and(|p| p.is_file()));
        assert!(demo.script.contains("Good morning"));
        assert_eq!(c.dialer.default_country.alpha2, "PL");
        assert!(c.dialer.dnc_file.is_none());
    }

    #[test]
    fn campaigns_are_checked_against_queues_and_trunks() {
        let base = "[[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:5090\"\n";
        let campaign = "[[campaigns]]\nname = \"c\"\nqueue = \"sales\"\ntrunk = \"pstn\"\ncaller_id = \"+48221234567\"\n";
        // No [acd]: no queue can work a campaign.
        let e = parse(&format!("{base}{campaign}")).unwrap_err();
        assert_eq!(e.key, "campaigns[0].queue");
        let agentless = "[[campaigns]]\nname = \"a\"\nmode = \"agentless\"\ntrunk = \"nope\"\ncaller_id = \"+48221234567\"\nmessage = { flow = \"x\" }\n";
        let e = parse(&format!("{base}{agentless}")).unwrap_err();
        assert_eq!(e.key, "campaigns[0].trunk");
        assert_eq!(e.file, "test.toml");
        let c = parse("[dialer]\ndnc_file = \"dnc.txt\"\n").unwrap();
        assert_eq!(
            c.dialer.dnc_file,
            Some(PathBuf::from("/etc/caruso/dnc.txt"))
        );
        assert!(c.campaigns.is_empty());
        let e = parse("[dialer]\ndefault_country = \"XX\"\n").unwrap_err();
        assert_eq!(e.key, "dialer.default_country");
        let e = parse("[dialer]\ndnc = \"x\"\n").unwrap_err();
        assert!(e.expected.contains("dnc"), "{e}");
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.sip.t1, Duration::from_millis(500));
        assert_eq!(c.sip.t2, Duration::from_secs(4));
        assert_eq!(c.rtp.port_min, 20_000);
        assert_eq!(c.rtp.codecs, vec![Codec::Pcmu, Codec::Pcma]);
        assert!(c.allow.0.is_empty());
        assert!(c.number("100").is_none());
    }

    #[test]
    fn ring_timeout_defaults_to_30_s_and_is_bounded() {
        assert_eq!(parse("").unwrap().sip.ring_timeout, Duration::from_secs(30));
        let c = parse("[sip]\nring_timeout_s = 12\n").unwrap();
        assert_eq!(c.sip.ring_timeout, Duration::from_secs(12));
        for bad in ["0", "601"] {
            let e = parse(&format!("[sip]\nring_timeout_s = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "sip.ring_timeout_s");
            assert!(e.to_string().contains("between 1 and 600"), "{e}");
        }
    }

    #[test]
    fn the_monitor_day_zone_is_an_iana_name_or_the_hosts() {
        assert!(parse("").unwrap().timezone.is_none());
        let c = parse("[server]\ntimezone = \"Asia/Tokyo\"\n").unwrap();
        assert_eq!(
            c.timezone
                .and_then(|z| z.iana_name().map(str::to_string))
                .as_deref(),
            Some("Asia/Tokyo")
        );
        let e = parse("[server]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert_eq!(e.key, "server.timezone");
        assert!(e.to_string().contains("IANA time zone"), "{e}");
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = parse("[rtp]\nport_min = 20001\n").unwrap_err();
        assert_eq!(e.file, "test.toml");
        assert_eq!(e.key, "rtp.port_min");
        assert!(e.to_string().contains("even port"), "{e}");

        let e = parse("[sip]\nudp = \"nonsense\"\n").unwrap_err();
        assert_eq!(e.key, "sip.udp");

        let e = parse("[network]\nallow = [\"10.0.0.0/99\"]\n").unwrap_err();
        assert_eq!(e.key, "network.allow[0]");

        let e = parse("[[numbers]]\nnumber = \"100\"\nprompt = \"a.wav\"\n[[numbers]]\nnumber = \"100\"\nprompt = \"b.wav\"\n").unwrap_err();
        assert_eq!(e.key, "numbers[1].number");
    }

    #[test]
    fn unknown_numbers_can_enter_a_default_flow() {
        let flow = "[flows.main]\nstart = \"bye\"\n[flows.main.nodes.bye]\ntype = \"hangup\"\n";
        let c = parse(&format!("[sip]\nunknown_number = \"flow:main\"\n{flow}")).unwrap();
        assert_eq!(
            c.number("999").and_then(|n| n.flow.as_deref()),
            Some("main")
        );
        let e = parse(&format!("[sip]\nunknown_number = \"flow:nope\"\n{flow}")).unwrap_err();
        assert_eq!(e.key, "sip.unknown_number");
        let c = parse(flow).unwrap();
        assert!(c.number("999").is_none(), "reject (404) by default");
    }

    #[test]
    fn trunks_are_checked_and_dial_uris_carry_the_prefix() {
        let c = parse("[[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:5080\"\nprefix = \"0\"\n")
            .unwrap();
        let t = c.trunk("pstn").expect("trunk");
        assert_eq!(t.uri_for("4930123"), "sip:04930123@127.0.0.1:5080");
        assert!(c.trunk("other").is_none());
        let e = parse("[[trunks]]\nname = \"pstn\"\nhost = \"carrier.example.com\"\n").unwrap_err();
        assert_eq!(e.key, "trunks[0].host");
        assert!(e.expected.contains("no DNS"), "{e}");
        let e = parse("[[trunks]]\nname = \"a\"\nhost = \"127.0.0.1:5080\"\n[[trunks]]\nname = \"a\"\nhost = \"127.0.0.1:5081\"\n").unwrap_err();
        assert_eq!(e.key, "trunks[1].name");
        let e = parse("[[trunks]]\nname = \"a\"\nhost = \"127.0.0.1:5080\"\nprefix = \"9x\"\n")
            .unwrap_err();
        assert_eq!(e.key, "trunks[0].prefix");
    }

    fn api_token(name: &str, token: &str, role: &str) -> String {
        format!("[[api.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\n")
    }

    #[test]
    fn api_tokens_have_roles_and_defaults_hold_the_three() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let c = Config::from_toml(DEFAULT_CONFIG, "caruso.toml", &dir).expect("default");
        let roles: Vec<_> = c
            .api
            .tokens
            .iter()
            .map(|t| (t.token.as_str(), t.role.as_str()))
            .collect();
        assert_eq!(
            roles,
            [
                ("supervisor-secret", "supervisor"),
                ("integrator-secret", "integrator"),
                ("admin-secret", "admin")
            ]
        );
        assert!(c.api.tls.is_none());
        assert_eq!(c.api.rate_limit, crate::api::auth::RateLimit::default());
        assert!(
            !format!("{c:?}").contains("admin-secret"),
            "Debug shows a token"
        );
        let c = parse("").unwrap();
        assert!(c.api.tokens.is_empty());
        assert_eq!(c.api.rate_limit.max_failures, 10);
        assert_eq!(c.api.rate_limit.window, Duration::from_secs(60));
    }

    #[test]
    fn bad_api_tokens_name_the_key_and_never_the_token() {
        let ok = api_token("a", "tok-a", "admin");
        let cases = [
            (
                ok.clone() + &api_token("b", "tok-a", "supervisor"),
                "api.tokens[1].token",
                "unique token",
            ),
            (
                ok.clone() + &api_token("a", "tok-b", "supervisor"),
                "api.tokens[1].name",
                "unique name",
            ),
            (
                api_token("a", "tok-a", "root"),
                "api.tokens[0].role",
                "\"supervisor\", \"integrator\" or \"admin\"",
            ),
            (
                api_token("a", "tok-a", "agent"),
                "api.tokens[0].role",
                "[[acd.agents]]",
            ),
            (
                api_token("a", "", "admin"),
                "api.tokens[0].token",
                "non-empty",
            ),
            (
                api_token("a", "tok a", "admin"),
                "api.tokens[0].token",
                "without spaces",
            ),
            (
                api_token("", "tok-a", "admin"),
                "api.tokens[0].name",
                "non-empty name",
            ),
            (
                "[[api.tokens]]\nname = \"a\"\nrole = \"admin\"\n".into(),
                "api.tokens[0].token",
                "secret token",
            ),
            (
                "[[api.tokens]]\nname = \"a\"\ntoken = \"tok-a\"\n".into(),
                "api.tokens[0].role",
                "expected a role",
            ),
            (
                "[api.rate_limit]\nmax_failures = 0\n".into(),
                "api.rate_limit.max_failures",
                "between 1 and",
            ),
            (
                "[api.rate_limit]\nwindow_s = 0\n".into(),
                "api.rate_limit.window_s",
                "between 1 and 86400",
            ),
            (
                "[api.rate_limit]\nmax_peers = 0\n".into(),
                "api.rate_limit.max_peers",
                "between 1 and",
            ),
        ];
        for (text, key, expected) in cases {
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.key, key, "{text}");
            assert_eq!(e.file, "test.toml");
            assert!(e.expected.contains(expected), "{e}");
            assert!(
                !e.to_string().contains("tok-a"),
                "a token must not be echoed: {e}"
            );
        }
        let c = parse(&(ok + &api_token("b", "tok-b", "integrator"))).unwrap();
        assert_eq!(c.api.tokens[1].role, crate::api::auth::Role::Integrator);
    }

    #[test]
    fn an_api_token_may_not_be_an_agents() {
        let acd = "[acd]\n[[acd.queues]]\nname = \"sales\"\nskills = { sales = 1 }\n\
                   [[acd.agents]]\nid = \"alice\"\ntoken = \"alice-secret\"\n\
                   skills = { sales = 1 }\nphone = { user = \"alice\", password = \"p\" }\n";
        let e = parse(&(api_token("ops", "alice-secret", "admin") + acd)).unwrap_err();
        assert_eq!(e.key, "api.tokens[0].token");
        assert!(e.expected.contains("acd.agents[0] (alice)"), "{e}");
        assert!(!e.to_string().contains("alice-secret"), "{e}");
    }

    #[test]
    fn api_tls_reads_pem_files_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("caruso-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        std::fs::write(dir.join("tls/c.pem"), c.cert.pem()).unwrap();
        std::fs::write(dir.join("tls/k.pem"), c.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("tls/bad.pem"), "hello").unwrap();
        let load = |cert: &str, key: &str| {
            Config::from_toml(
                &format!("[api.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n"),
                "tls.toml",
                &dir,
            )
        };
        let ok = load("tls/c.pem", "tls/k.pem").expect("valid TLS files");
        let tls = ok.api.tls.as_ref().expect("tls");
        assert_eq!(tls.cert, dir.join("tls/c.pem"));
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
        let e = load("tls/missing.pem", "tls/k.pem").unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.key.as_str()),
            ("tls.toml", "api.tls.cert")
        );
        assert!(e.expected.contains("missing.pem"), "{e}");
        let e = load("tls/bad.pem", "tls/k.pem").unwrap_err();
        assert_eq!(e.key, "api.tls.cert");
        let e = load("tls/c.pem", "tls/bad.pem").unwrap_err();
        assert_eq!(e.key, "api.tls.key");
        assert!(e.expected.contains("bad.pem"), "{e}");
        let e = load("tls/k.pem", "tls/k.pem").unwrap_err();
        assert_eq!(e.key, "api.tls.cert", "a key is no certificate: {e}");
        let e =
            Config::from_toml("[api.tls]\ncert = \"tls/c.pem\"\n", "tls.toml", &dir).unwrap_err();
        assert_eq!(e.key, "api.tls.key");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_keys_are_rejected_with_line() {
        let e = parse("[sip]\nudpp = \"127.0.0.1:5060\"\n").unwrap_err();
        assert!(e.key.contains("line 2"), "{e}");
        assert!(e.expected.contains("udpp"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let c = parse("[[numbers]]\nnumber = \"100\"\nprompt = \"prompts/welcome.wav\"\n").unwrap();
        assert_eq!(
            c.numbers[0].prompt,
            Some(PathBuf::from("/etc/caruso/prompts/welcome.wav"))
        );
        assert_eq!(c.prompt_dir, PathBuf::from("/etc/caruso/prompts"));
    }

    #[test]
    fn allow_list_matches_networks() {
        let a = AllowList(vec![
            IpNet::parse("127.0.0.0/8").unwrap(),
            IpNet::parse("::1").unwrap(),
        ]);
        assert!(a.permits("127.1.2.3".parse().unwrap()));
        assert!(a.permits("::1".parse().unwrap()));
        assert!(a.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.permits("192.0.2.10".parse().unwrap()));
        assert!(!a.permits("::2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
