//! Harness for caruso's black-box tests (the tests live in `tests/tests/`).
//!
//! The tests run the real `caruso` binary (built beforehand by `cargo build --workspace`)
//! against real peers: SIPp (Debian's `sip-tester`), plain UDP/TCP sockets owned by the
//! test, and the `caruso-agent` gRPC client. Everything talks over 127.0.0.1 only.
//!
//! Contract:
//! - [`require_isolated_network`] refuses to run outside a network namespace that has only
//!   loopback (`tests/run-all.sh` makes one), unless `CARUSO_E2E_ALLOW_HOST_NET=1`.
//! - [`Ports::block`] hands each server its own block of ports, so tests run in parallel.
//! - [`Server`] writes a config from a [`ServerConfig`], starts the binary, waits until it
//!   answers OPTIONS, and kills it on drop (SIGTERM, then SIGKILL after a bound).
//! - [`Sipp`] runs one bounded SIPp scenario from `tests/sipp/` and returns its counters.
//! - [`RtpSink`] owns the UDP port a scenario puts in its SDP, records every RTP packet
//!   the server sends there and answers each with one PCMU packet (symmetric RTP).
//!
//! ```no_run
//! use caruso_e2e::*;
//! require_isolated_network();
//! let server = Server::start(ServerConfig::new(Ports::block(100)).number("100", 1.0, 0));
//! let res = Sipp::new(&server, "uac_options.xml").calls(1).run();
//! assert!(res.all_succeeded(1), "{res}");
//! ```
#![warn(missing_docs)]

pub mod acd;
pub mod audio;
pub mod json;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Loopback address every test uses.
pub const LOOPBACK: &str = "127.0.0.1";

/// Environment variable that lets the e2e tests run on the host network.
pub const ALLOW_HOST_NET: &str = "CARUSO_E2E_ALLOW_HOST_NET";

// ---------------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------------

/// Names of the network interfaces listed in a `/proc/net/dev` text.
pub fn interfaces_in_proc_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect()
}

/// Panics with a clear message unless this process runs in a network namespace whose only
/// interface is `lo` (or `CARUSO_E2E_ALLOW_HOST_NET=1` is set).
pub fn require_isolated_network() {
    if std::env::var(ALLOW_HOST_NET).as_deref() == Ok("1") {
        return;
    }
    let text = fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let ifaces = interfaces_in_proc_net_dev(&text);
    let others: Vec<&String> = ifaces.iter().filter(|n| n.as_str() != "lo").collect();
    assert!(
        !ifaces.is_empty() && others.is_empty(),
        "caruso e2e tests refuse to run outside an isolated network namespace: this one has \
         interfaces {others:?} besides lo. Run them with `bash tests/run-all.sh` (it makes a \
         loopback-only namespace), or set {ALLOW_HOST_NET}=1 to run on the host network."
    );
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

/// Directory of the pcap files SIPp plays (`tests/pcap`, made by `tests/tools/mkpcap.py`).
pub fn pcap_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcap")
}

/// Directory of the default prompts (`config/prompts`).
pub fn prompts_dir() -> PathBuf {
    workspace_root().join("config").join("prompts")
}

/// Root of the cargo workspace (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Directory holding the SIPp scenarios.
pub fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

fn built_binary(name: &str) -> PathBuf {
    let profile = std::env::var("CARUSO_E2E_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = target_dir().join(profile).join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (`cargo build --workspace`, which tests/run-all.sh does)",
        path.display()
    );
    path
}

/// Path of the built `caruso` server binary (`CARUSO_BIN` overrides it).
pub fn server_binary() -> PathBuf {
    match std::env::var_os("CARUSO_BIN") {
        Some(p) => PathBuf::from(p),
        None => built_binary("caruso"),
    }
}

/// Runs the Python gRPC client `tests/python/vm_client.py` (grpcio; not the server's
/// code) with `$CARUSO_PYTHON` (exported by `tests/run-all.sh`) against `grpc`
/// (`127.0.0.1:port` or a `grpc_url()`), e.g. `&["list", "200", "new"]`, with the
/// integrator's token (`args` may start with `--token T` to send another). `Ok(json)` is
/// its stdout on success; `Err` holds its exit status, stdout (a JSON `{"error": {"code":
/// "NOT_FOUND", ...}}` for gRPC errors) and stderr.
pub fn python_vm_client(grpc: &str, args: &[&str]) -> Result<String, String> {
    let python = std::env::var_os("CARUSO_PYTHON")
        .expect("CARUSO_PYTHON not set: run tests/run-all.sh (it makes target/pyenv)");
    let server = grpc.strip_prefix("http://").unwrap_or(grpc);
    let out = Command::new(python)
        .arg(workspace_root().join("tests/python/vm_client.py"))
        .args(["--server", server, "--token", INTEGRATOR_TOKEN])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run the Python client: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The supervisor's gRPC token in every test config (`[[api.tokens]]`): Monitor, Campaigns.
pub const SUPERVISOR_TOKEN: &str = "supervisor-secret";
/// The integrator's gRPC token in every test config: Registry, Voicemail.
pub const INTEGRATOR_TOKEN: &str = "integrator-secret";
/// The administrator's gRPC token in every test config: everything, and ReloadConfig.
pub const ADMIN_TOKEN: &str = "admin-secret";

/// Path of the built `caruso-agent` binary.
pub fn agent_binary() -> PathBuf {
    built_binary("caruso-agent")
}

/// Directory of the SIP torture corpus (`shared/corpus/sip-torture`), found by walking up
/// from the workspace root (CI clones the repo with `shared/` beside it);
/// `CARUSO_TORTURE_DIR` overrides it.
pub fn torture_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARUSO_TORTURE_DIR") {
        return PathBuf::from(dir);
    }
    let root = workspace_root();
    for dir in root.ancestors() {
        let candidate = dir.join("shared/corpus/sip-torture");
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!(
        "SIP torture corpus not found: expected shared/corpus/sip-torture beside or above {} \
         (or set CARUSO_TORTURE_DIR)",
        root.display()
    );
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `caruso-e2e-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("caruso-e2e-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("CARUSO_E2E_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

/// A block of consecutive loopback ports owned by one test.
///
/// Layout: `base` SIP (UDP and TCP), `base+1` gRPC, `base+2` metrics, `base+3..base+20`
/// for the test's own sockets ([`Ports::peer`]; SIPp uses `peer(0)` for SIP and
/// `peer(2)..peer(5)` for media), `base+20..` the server's RTP range.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// First port of the block.
    pub base: u16,
    /// Number of ports in the block.
    pub len: u16,
}

impl Ports {
    /// Reserves a free block of `len` (at least 40) ports.
    pub fn block(len: u16) -> Self {
        let len = len.max(40);
        // Start from a pid-dependent offset so that successive test binaries do not reuse
        // the ports of a server that is still in TIME_WAIT.
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let _ = NEXT.compare_exchange(
            0,
            20_000 + (std::process::id() % 50) as u16 * 200,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        for _ in 0..400 {
            let mut base = NEXT.fetch_add(len, Ordering::SeqCst);
            if base.checked_add(len).is_none_or(|end| end > 60_000) {
                NEXT.store(20_000 + len, Ordering::SeqCst);
                base = 20_000;
            }
            if (0..20).all(|i| port_free(base + i)) {
                return Ports { base, len };
            }
        }
        panic!("no free block of {len} loopback ports");
    }

    /// The server's SIP port (UDP and TCP).
    pub fn sip(&self) -> u16 {
        self.base
    }

    /// The server's gRPC port.
    pub fn grpc(&self) -> u16 {
        self.base + 1
    }

    /// The server's metrics port.
    pub fn metrics(&self) -> u16 {
        self.base + 2
    }

    /// A port for the test's own use, `i` in `0..17`.
    pub fn peer(&self, i: u16) -> u16 {
        assert!(i < 17, "peer port index out of range");
        self.base + 3 + i
    }

    /// The server's RTP range (inclusive; starts on an even port).
    pub fn rtp_range(&self) -> (u16, u16) {
        let lo = self.base + 20;
        (lo + lo % 2, self.base + self.len - 1)
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((LOOPBACK, port)).is_ok() && UdpSocket::bind((LOOPBACK, port)).is_ok()
}

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

/// One number the server answers.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// The dialled user part, e.g. `100`.
    pub number: String,
    /// Length of the generated prompt in seconds.
    pub prompt_secs: f32,
    /// Ringing time before the answer, in milliseconds.
    pub answer_delay_ms: u64,
}

/// What the test wants the server to be; rendered to the server's TOML by
/// [`ServerConfig::to_toml`] (the one place that knows the config's key names).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The ports of the server.
    pub ports: Ports,
    /// The numbers it answers.
    pub numbers: Vec<NumberConfig>,
    /// `rtp.inactivity_timeout_s`, when set.
    pub rtp_inactivity_s: Option<u64>,
    /// Limit the RTP range to this many port pairs, when set.
    pub rtp_pairs: Option<u16>,
    /// `sip.ring_timeout_s`, when set.
    pub ring_timeout_s: Option<u64>,
    /// `sip.t1_ms`, when set.
    pub t1_ms: Option<u64>,
    /// Extra TOML appended verbatim.
    pub extra: String,
}

impl ServerConfig {
    /// A config with no numbers on `ports`.
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            numbers: Vec::new(),
            rtp_inactivity_s: None,
            rtp_pairs: None,
            ring_timeout_s: None,
            t1_ms: None,
            extra: String::new(),
        }
    }

    /// Sets how long an outbound leg rings before caruso cancels it (seconds).
    pub fn ring_timeout(mut self, secs: u64) -> Self {
        self.ring_timeout_s = Some(secs);
        self
    }

    /// Sets RFC 3261 T1 (milliseconds): ended calls linger 64 × T1 for retransmissions
    /// before their record is written.
    pub fn t1_ms(mut self, ms: u64) -> Self {
        self.t1_ms = Some(ms);
        self
    }

    /// Sets the RTP inactivity timeout (seconds).
    pub fn rtp_inactivity(mut self, secs: u64) -> Self {
        self.rtp_inactivity_s = Some(secs);
        self
    }

    /// Limits the RTP port range to `n` pairs (RTP + RTCP).
    pub fn rtp_port_pairs(mut self, n: u16) -> Self {
        self.rtp_pairs = Some(n);
        self
    }

    /// Adds a number with a generated prompt of `prompt_secs` and an answer delay.
    pub fn number(mut self, number: &str, prompt_secs: f32, answer_delay_ms: u64) -> Self {
        self.numbers.push(NumberConfig {
            number: number.to_owned(),
            prompt_secs,
            answer_delay_ms,
        });
        self
    }

    /// Renders the TOML, with prompts already written under `dir`.
    pub fn to_toml(&self, dir: &Path) -> String {
        let p = &self.ports;
        let (lo, hi) = p.rtp_range();
        let hi = self.rtp_pairs.map_or(hi, |n| (lo + 2 * n - 1).min(hi));
        let data = dir.join("data");
        let mut s = format!(
            "[server]\ndata_dir = \"{data}\"\nshutdown_grace_ms = 2000\n\n\
             [sip]\nudp = \"{LOOPBACK}:{sip}\"\ntcp = \"{LOOPBACK}:{sip}\"\n\n\
             [rtp]\nip = \"{LOOPBACK}\"\nport_min = {lo}\nport_max = {hi}\n\n\
             [api]\ngrpc = \"{LOOPBACK}:{grpc}\"\n\n\
             [[api.tokens]]\nname = \"supervisor\"\ntoken = \"{SUPERVISOR_TOKEN}\"\nrole = \"supervisor\"\n\n\
             [[api.tokens]]\nname = \"integrator\"\ntoken = \"{INTEGRATOR_TOKEN}\"\nrole = \"integrator\"\n\n\
             [[api.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\nrole = \"admin\"\n\n\
             [metrics]\nlisten = \"{LOOPBACK}:{metrics}\"\n\n\
             [network]\nallow = [\"127.0.0.0/8\"]\n",
            data = data.display(),
            sip = p.sip(),
            grpc = p.grpc(),
            metrics = p.metrics(),
        );
        if let Some(t) = self.rtp_inactivity_s {
            // Goes into the [rtp] table: insert before the next table.
            s = s.replace(
                "\n\n[api]",
                &format!("\ninactivity_timeout_s = {t}\n\n[api]"),
            );
        }
        if let Some(t) = self.ring_timeout_s {
            s = s.replace("\n\n[rtp]", &format!("\nring_timeout_s = {t}\n\n[rtp]"));
        }
        if let Some(t) = self.t1_ms {
            s = s.replace("\n\n[rtp]", &format!("\nt1_ms = {t}\n\n[rtp]"));
        }
        for n in &self.numbers {
            let prompt = dir.join(format!("prompt-{}.wav", n.number));
            s.push_str(&format!(
                "\n[[numbers]]\nnumber = \"{}\"\nprompt = \"{}\"\n",
                n.number,
                prompt.display()
            ));
            if n.answer_delay_ms > 0 {
                s.push_str(&format!("answer_delay_ms = {}\n", n.answer_delay_ms));
            }
        }
        s.push_str(&self.extra);
        s
    }
}

/// Writes an 8 kHz, 16-bit, mono WAV of a 440 Hz tone lasting `secs` seconds.
pub fn write_tone_wav(path: &Path, secs: f32) {
    let samples = (secs * 8000.0).round() as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = i as f32 / 8000.0;
        let v = (t * 440.0 * std::f32::consts::TAU).sin() * 8000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    fs::write(path, out).expect("write prompt wav");
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// A running `caruso` child process, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    dir: TempDir,
    /// The config it runs with.
    pub config: ServerConfig,
    log: PathBuf,
}

impl Server {
    /// Writes the config and prompts, starts the binary and waits until it answers OPTIONS
    /// over UDP (deadline 30 s). Panics with the server's log if it does not.
    pub fn start(config: ServerConfig) -> Self {
        require_isolated_network();
        let dir = TempDir::new("server");
        for n in &config.numbers {
            write_tone_wav(
                &dir.path().join(format!("prompt-{}.wav", n.number)),
                n.prompt_secs,
            );
        }
        let cfg_path = dir.path().join("caruso.toml");
        fs::write(&cfg_path, config.to_toml(dir.path())).expect("write config");
        let log = dir.path().join("server.log");
        let log_file = fs::File::create(&log).expect("create log");
        let child = spawn_server(&cfg_path, log_file);
        let mut server = Server {
            child: Some(child),
            dir,
            config,
            log,
        };
        server.wait_ready(Duration::from_secs(30));
        server
    }

    /// Kills the process with SIGKILL (no shutdown at all, as in a crash) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the binary again with the same config file, data directory and ports (after
    /// [`Server::kill9`] or [`Server::terminate`]); the log continues in the same file.
    /// Waits until it answers OPTIONS, like [`Server::start`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the server is still running");
        let log_file = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open log");
        self.child = Some(spawn_server(&self.dir.path().join("caruso.toml"), log_file));
        self.wait_ready(Duration::from_secs(30));
    }

    /// The config file the server runs with (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("caruso.toml")
    }

    /// Sends the running process a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("server running");
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} failed");
    }

    /// The server's data directory (`server.data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The gRPC address (`host:port`, no scheme).
    pub fn grpc_addr(&self) -> String {
        format!("{LOOPBACK}:{}", self.config.ports.grpc())
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut probe = 0u32;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "caruso exited during start-up with {status}\n--- server log ---\n{}",
                        self.log_tail(60)
                    );
                }
            }
            // A fresh Call-ID and branch per probe: a repeated branch would be absorbed as
            // a retransmission and answered to the first probe's (closed) port.
            probe += 1;
            let req = options_request(0, &format!("ready-probe-{probe}"), "127.0.0.1:9");
            if let Some(resp) = udp_exchange(self.sip_addr(), req.as_bytes(), 300) {
                if resp.starts_with("SIP/2.0 ") {
                    return;
                }
            }
        }
        panic!(
            "caruso did not answer OPTIONS on {} within {limit:?}\n--- server log ---\n{}",
            self.sip_addr(),
            self.log_tail(60)
        );
    }

    /// The SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.config.ports.sip()))
    }

    /// The gRPC URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{LOOPBACK}:{}", self.config.ports.grpc())
    }

    /// The temp dir of this server (config, prompts, log, SIPp files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the status, or `None`
    /// if it had to be killed.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Fetches the Prometheus text from the metrics endpoint.
    pub fn metrics(&self) -> String {
        http_get(
            SocketAddr::from(([127, 0, 0, 1], self.config.ports.metrics())),
            "/metrics",
        )
        .unwrap_or_else(|e| panic!("metrics endpoint: {e}\n{}", self.log_tail(30)))
    }
}

fn spawn_server(cfg_path: &Path, log_file: fs::File) -> Child {
    Command::new(server_binary())
        .arg("--config")
        .arg(cfg_path)
        .env(
            "RUST_LOG",
            std::env::var("CARUSO_E2E_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .spawn()
        .expect("spawn caruso")
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate(Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!("--- caruso log tail ---\n{}", self.log_tail(80));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw SIP over sockets
// ---------------------------------------------------------------------------------------

/// An OPTIONS request to `sip:100@127.0.0.1:<port>` whose Via names `via`.
pub fn options_request(port: u16, call_id: &str, via: &str) -> String {
    format!(
        "OPTIONS sip:100@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends one datagram from an ephemeral socket and returns the first answer, if any
/// arrives within `wait_ms`.
pub fn udp_exchange(to: SocketAddr, data: &[u8], wait_ms: u64) -> Option<String> {
    let sock = UdpSocket::bind((LOOPBACK, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(wait_ms.max(1))))
        .ok()?;
    sock.send_to(data, to).ok()?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Sends a request from one ephemeral socket (again every 500 ms, as a UDP client
/// transaction would) and returns the first final (>= 200) answer within `wait_ms`.
pub fn udp_request_final(to: SocketAddr, data: &[u8], wait_ms: u64) -> Option<String> {
    let sock = UdpSocket::bind((LOOPBACK, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .ok()?;
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            sock.send_to(data, to).ok()?;
            next_send += Duration::from_millis(500);
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_code(&text).is_some_and(|c| c >= 200) {
                return Some(text);
            }
        }
    }
    None
}

/// Status code of a SIP response's status line.
pub fn status_code(response: &str) -> Option<u16> {
    let line = response.lines().next()?;
    let mut parts = line.split(' ');
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Value of the first header named `name` (case-insensitive, compact forms not handled).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// Splits a byte stream of SIP messages (TCP) into whole messages, framed by
/// Content-Length; returns the messages and leaves any partial tail in `buf`.
pub fn split_stream(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        // Skip keep-alive CRLFs between messages.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len = head
            .split("\r\n")
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let total = end + 4 + len;
        if buf.len() < total {
            break;
        }
        let msg: Vec<u8> = buf.drain(..total).collect();
        out.push(String::from_utf8_lossy(&msg).into_owned());
    }
    out
}

/// Opens a TCP connection, writes `data`, and collects whole answers until `wait` has
/// passed with no new data (or the peer closed).
pub fn tcp_exchange(to: SocketAddr, data: &[u8], wait: Duration) -> std::io::Result<Vec<String>> {
    tcp_exchange_until(to, data, wait, |_| false)
}

/// Like [`tcp_exchange`], but also stops 100 ms after `done` first holds for the
/// answers collected so far.
pub fn tcp_exchange_until(
    to: SocketAddr,
    data: &[u8],
    wait: Duration,
    done: impl Fn(&[String]) -> bool,
) -> std::io::Result<Vec<String>> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    stream.write_all(data)?;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 16_384];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_data = Instant::now();
    let mut done_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let now = Instant::now();
        if now.duration_since(last_data) >= wait
            || done_at.is_some_and(|t| now.duration_since(t) >= Duration::from_millis(100))
        {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                last_data = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
                out.extend(split_stream(&mut buf));
                if done_at.is_none() && done(&out) {
                    done_at = Some(Instant::now());
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Plain HTTP/1.1 GET on loopback; returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!(
            "unexpected HTTP answer: {}",
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// Sum of the values of every sample of metric `name` whose labels contain all of
/// `labels` (`k="v"` strings).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name || !labels.iter().all(|l| label_text.contains(l)) {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// Voicemail gRPC client (Python grpcio, not the server's code)
// ---------------------------------------------------------------------------------------

/// [`python_vm_client`] against `server`, with its JSON output parsed; `Err` holds the
/// exit status, stdout and stderr when it fails.
pub fn vm_client(server: &Server, args: &[&str]) -> Result<json::Json, String> {
    let stdout = python_vm_client(&server.grpc_addr(), args)?;
    let text = stdout.trim();
    if text.is_empty() {
        return Ok(json::Json::Null);
    }
    json::Json::parse(text).map_err(|e| format!("vm_client {args:?}: {e}: {text}"))
}

/// Polls `metric_sum(name, labels)` until `pred` holds (deadline `limit`); returns the
/// last value seen.
pub fn wait_metric(
    server: &Server,
    name: &str,
    labels: &[&str],
    limit: Duration,
    pred: impl Fn(f64) -> bool,
) -> Option<f64> {
    let deadline = Instant::now() + limit;
    loop {
        let v = metric_sum(&server.metrics(), name, labels);
        if v.is_some_and(&pred) || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------

/// SIP transport for a SIPp run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP, one socket (`-t u1`).
    Udp,
    /// TCP, one connection (`-t t1`).
    Tcp,
}

/// A bounded SIPp run of one scenario file from `tests/sipp/`.
#[derive(Debug, Clone)]
pub struct Sipp {
    server: SocketAddr,
    dir: PathBuf,
    scenario: String,
    transport: Transport,
    calls: u32,
    rate: u32,
    limit: Option<u32>,
    lost: Option<u32>,
    local_port: u16,
    keys: Vec<(String, String)>,
    extra: Vec<String>,
    timeout: Duration,
    links: Vec<(String, PathBuf)>,
}

impl Sipp {
    /// A run of `scenario` against `server` (one call, UDP, 30 s overall timeout).
    pub fn new(server: &Server, scenario: &str) -> Self {
        Self {
            server: server.sip_addr(),
            dir: server.dir().to_path_buf(),
            scenario: scenario.to_owned(),
            transport: Transport::Udp,
            calls: 1,
            rate: 10,
            limit: None,
            lost: None,
            local_port: server.config.ports.peer(0),
            keys: Vec::new(),
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
            links: Vec::new(),
        }
    }

    /// Number of calls (`-m`).
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }

    /// Calls per second (`-r`).
    pub fn rate(mut self, r: u32) -> Self {
        self.rate = r;
        self
    }

    /// Maximum simultaneous calls (`-l`).
    pub fn limit(mut self, l: u32) -> Self {
        self.limit = Some(l);
        self
    }

    /// Percentage of packets SIPp loses on purpose (`-lost`).
    pub fn lost(mut self, pct: u32) -> Self {
        self.lost = Some(pct);
        self
    }

    /// The transport.
    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }

    /// SIPp's own SIP port (`-p`); defaults to the block's `peer(0)`.
    pub fn local_port(mut self, p: u16) -> Self {
        self.local_port = p;
        self
    }

    /// SIPp's media port (`-mp`, the `[media_port]` of the scenarios).
    pub fn media_port(&self) -> u16 {
        self.local_port + 2
    }

    /// A scenario keyword `[name]` set to `value` (`-key`).
    pub fn key(mut self, name: &str, value: impl ToString) -> Self {
        self.keys.push((name.to_owned(), value.to_string()));
        self
    }

    /// An extra raw argument.
    pub fn arg(mut self, a: impl ToString) -> Self {
        self.extra.push(a.to_string());
        self
    }

    /// Overall timeout (`-timeout`, with `-timeout_error`).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Makes `name` in SIPp's run directory a symbolic link to `target`; SIPp looks for
    /// the files of `play_pcap_audio` next to the scenario, so a scenario can say
    /// `play_pcap_audio="pcap/dtmf_1.pcap"`.
    pub fn link(mut self, name: &str, target: impl Into<PathBuf>) -> Self {
        self.links.push((name.to_owned(), target.into()));
        self
    }

    /// [`Sipp::link`] of `pcap` to `tests/pcap` (the files of `tests/tools/mkpcap.py`).
    pub fn pcaps(self) -> Self {
        self.link("pcap", pcap_dir())
    }

    /// Runs SIPp to completion (bounded by the timeout plus a margin) and returns its
    /// result.
    pub fn run(&self) -> SippResult {
        which_sipp();
        let src = sipp_dir().join(&self.scenario);
        let run_dir = self.dir.join(format!(
            "sipp-{}-{}",
            self.scenario.trim_end_matches(".xml"),
            self.local_port
        ));
        fs::create_dir_all(&run_dir).expect("sipp run dir");
        for (name, target) in &self.links {
            let at = run_dir.join(name);
            let _ = fs::remove_file(&at);
            std::os::unix::fs::symlink(target, &at)
                .unwrap_or_else(|e| panic!("link {} -> {}: {e}", at.display(), target.display()));
        }
        let scenario = run_dir.join(&self.scenario);
        fs::copy(&src, &scenario)
            .unwrap_or_else(|e| panic!("copy scenario {}: {e}", src.display()));
        let mut cmd = Command::new("sipp");
        cmd.current_dir(&run_dir)
            .arg(self.server.to_string())
            .args(["-sf", &self.scenario])
            .args(["-s", "100"])
            .args(["-i", LOOPBACK])
            .args(["-mi", LOOPBACK])
            .args(["-p", &self.local_port.to_string()])
            .args(["-mp", &self.media_port().to_string()])
            .args(["-m", &self.calls.to_string()])
            .args(["-r", &self.rate.to_string()])
            .args([
                "-t",
                match self.transport {
                    Transport::Udp => "u1",
                    Transport::Tcp => "t1",
                },
            ])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .arg("-timeout_error")
            .args(["-recv_timeout", "15000"])
            .args(["-max_recv_loops", "1000"])
            .arg("-nostdin")
            .arg("-trace_stat")
            .args(["-stf", "stat.csv"])
            .args(["-fd", "1"])
            .arg("-trace_err")
            .arg("-trace_screen")
            .arg("-trace_msg")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(l) = self.limit {
            cmd.args(["-l", &l.to_string()]);
        }
        if let Some(p) = self.lost {
            cmd.args(["-lost", &p.to_string()]);
        }
        for (k, v) in &self.keys {
            cmd.args(["-key", k, v]);
        }
        cmd.args(&self.extra);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn sipp");
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let hard_limit = self.timeout + Duration::from_secs(15);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if started.elapsed() > hard_limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let stats =
            parse_stat_csv(&fs::read_to_string(run_dir.join("stat.csv")).unwrap_or_default());
        let mut files = String::new();
        if let Ok(entries) = fs::read_dir(&run_dir) {
            let mut names: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            for p in names {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with("_errors.log") || name.ends_with("_messages.log") {
                    let text = fs::read_to_string(&p).unwrap_or_default();
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(6000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    files.push_str(&format!("--- {name} (tail) ---\n{tail}\n"));
                }
            }
        }
        SippResult {
            scenario: self.scenario.clone(),
            exit: status.and_then(|s| s.code()),
            timed_out: status.is_none(),
            elapsed: started.elapsed(),
            stats,
            stdout,
            stderr,
            files,
        }
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

fn which_sipp() {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "sipp not found: install Debian's sip-tester (tests/run-all.sh does)"
    );
}

/// Parses SIPp's `-trace_stat` CSV: the last row, keyed by column name.
pub fn parse_stat_csv(text: &str) -> HashMap<String, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    head.split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// What a SIPp run produced.
#[derive(Debug, Clone)]
pub struct SippResult {
    /// Scenario file name.
    pub scenario: String,
    /// SIPp's exit code (0 all calls succeeded, 1 some failed, 97/99/255 errors).
    pub exit: Option<i32>,
    /// Whether the harness had to kill SIPp.
    pub timed_out: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Last row of the statistics CSV.
    pub stats: HashMap<String, String>,
    /// SIPp's stdout.
    pub stdout: String,
    /// SIPp's stderr.
    pub stderr: String,
    /// Tails of SIPp's error and message logs.
    pub files: String,
}

impl SippResult {
    fn counter(&self, name: &str) -> Option<u64> {
        self.stats.get(name)?.parse().ok()
    }

    /// Calls that completed the scenario (`SuccessfulCall(C)`).
    pub fn successful(&self) -> u64 {
        self.counter("SuccessfulCall(C)").unwrap_or(0)
    }

    /// Calls that failed (`FailedCall(C)`).
    pub fn failed(&self) -> u64 {
        self.counter("FailedCall(C)").unwrap_or(0)
    }

    /// Whether SIPp exited 0 with exactly `n` successful and no failed calls.
    pub fn all_succeeded(&self, n: u64) -> bool {
        self.exit == Some(0) && self.successful() == n && self.failed() == 0
    }
}

impl fmt::Display for SippResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SIPp {}: exit {:?}{} after {:.1?}, {} successful, {} failed",
            self.scenario,
            self.exit,
            if self.timed_out { " (killed)" } else { "" },
            self.elapsed,
            self.successful(),
            self.failed()
        )?;
        let tail: Vec<&str> = self.stdout.lines().rev().take(40).collect();
        writeln!(f, "--- sipp stdout (tail) ---")?;
        for l in tail.into_iter().rev() {
            writeln!(f, "{l}")?;
        }
        writeln!(f, "--- sipp stderr ---\n{}", self.stderr.trim())?;
        write!(f, "{}", self.files)
    }
}

// ---------------------------------------------------------------------------------------
// RTP sink
// ---------------------------------------------------------------------------------------

/// One RTP packet as the sink saw it.
#[derive(Debug, Clone, Copy)]
pub struct RtpSeen {
    /// Arrival time.
    pub at: Instant,
    /// Source address.
    pub from: SocketAddr,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload length.
    pub payload_len: usize,
    /// Whether the payload is all µ-law/A-law silence bytes.
    pub silent: bool,
}

/// Parses a fixed RTP header (RFC 3550 §5.1); `None` if it is not RTP v2.
pub fn parse_rtp(data: &[u8], at: Instant, from: SocketAddr) -> Option<RtpSeen> {
    let b0 = *data.first()?;
    if b0 >> 6 != 2 {
        return None;
    }
    let b1 = *data.get(1)?;
    let cc = usize::from(b0 & 0x0f);
    let mut off = 12 + 4 * cc;
    if b0 & 0x10 != 0 {
        let ext = data.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = data.len();
    if b0 & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    let payload = data.get(off..end)?;
    Some(RtpSeen {
        at,
        from,
        pt: b1 & 0x7f,
        marker: b1 & 0x80 != 0,
        seq: u16::from_be_bytes([*data.get(2)?, *data.get(3)?]),
        ts: u32::from_be_bytes(data.get(4..8)?.try_into().ok()?),
        ssrc: u32::from_be_bytes(data.get(8..12)?.try_into().ok()?),
        payload_len: payload.len(),
        silent: payload
            .iter()
            .all(|&b| b == 0xff || b == 0x7f || b == 0xd5 || b == 0x55),
    })
}

/// A UDP socket on loopback that records RTP packets and answers each with one PCMU
/// packet of its own (so the server sees media from the address in the SDP).
#[derive(Debug)]
pub struct RtpSink {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<RtpSeen>>>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    /// Binds `127.0.0.1:port` and starts recording (for at most `limit`), answering each
    /// packet with one of its own.
    pub fn bind(port: u16, limit: Duration) -> Self {
        Self::start(port, limit, true)
    }

    /// Like [`RtpSink::bind`] but never sends anything (a peer whose media is dead).
    pub fn bind_silent(port: u16, limit: Duration) -> Self {
        Self::start(port, limit, false)
    }

    fn start(port: u16, limit: Duration, reply: bool) -> Self {
        let sock = UdpSocket::bind((LOOPBACK, port)).expect("bind RTP sink");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            let mut buf = [0u8; 2048];
            let mut out = [0xffu8; 172];
            out[0] = 0x80;
            let (mut seq, mut ts) = (1000u16, 160_000u32);
            out[8..12].copy_from_slice(&0x5eed_cafeu32.to_be_bytes());
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Some(p) = parse_rtp(&buf[..n], Instant::now(), from) else {
                    continue;
                };
                if let Ok(mut v) = seen2.lock() {
                    v.push(p);
                }
                out[2..4].copy_from_slice(&seq.to_be_bytes());
                out[4..8].copy_from_slice(&ts.to_be_bytes());
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                if reply {
                    let _ = sock.send_to(&out, from);
                }
            }
        });
        Self {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A copy of the packets seen so far.
    pub fn packets(&self) -> Vec<RtpSeen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Stops recording and returns every packet seen.
    pub fn finish(mut self) -> Vec<RtpSeen> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.packets()
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `tcpdump` on `lo` recording the arrival times of UDP packets to one port, for
/// counting what a peer that we do not control (SIPp's media socket) receives.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    out: Option<JoinHandle<String>>,
}

impl Capture {
    /// Starts capturing UDP packets sent to `127.0.0.1:port`; returns once tcpdump
    /// listens (deadline 10 s).
    pub fn udp_to(port: u16) -> Self {
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-tt", "-l", "-q", "-Q", "in"])
            .arg(format!("udp and dst host 127.0.0.1 and dst port {port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump not found: install it (tests/run-all.sh does)");
        let out = drain(child.stdout.take());
        wait_until_listening(&mut child);
        Capture {
            child,
            out: Some(out),
        }
    }

    /// Stops tcpdump (SIGINT, so it flushes) and returns the arrival times in seconds.
    pub fn finish(mut self) -> Vec<f64> {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        parse_tcpdump_times(&text)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Arrival times (seconds) from `tcpdump -tt` lines.
pub fn parse_tcpdump_times(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.contains(" UDP"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// [`Pacing`] of arrival times in seconds.
pub fn pacing_of_times(times: &[f64]) -> Pacing {
    let count = times.len();
    if count < 2 {
        return Pacing {
            count,
            mean_ms: 0.0,
            max_gap_ms: 0.0,
        };
    }
    let max_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
    Pacing {
        count,
        mean_ms: (times[count - 1] - times[0]) * 1000.0 / (count - 1) as f64,
        max_gap_ms: max_gap * 1000.0,
    }
}

/// Pacing of a packet stream: count, mean and largest gap between arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Packets.
    pub count: usize,
    /// Mean inter-arrival time in milliseconds.
    pub mean_ms: f64,
    /// Largest inter-arrival time in milliseconds.
    pub max_gap_ms: f64,
}

/// Computes the [`Pacing`] of `packets` (in arrival order).
pub fn pacing(packets: &[RtpSeen]) -> Pacing {
    let count = packets.len();
    if count < 2 {
        return Pacing {
            count,
            mean_ms: 0.0,
            max_gap_ms: 0.0,
        };
    }
    let span = packets[count - 1].at.duration_since(packets[0].at);
    let max_gap = packets
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    Pacing {
        count,
        mean_ms: span.as_secs_f64() * 1000.0 / (count - 1) as f64,
        max_gap_ms: max_gap.as_secs_f64() * 1000.0,
    }
}

/// Waits (up to 10 s) until tcpdump says "listening on ..." on stderr (its filter is in
/// place), then drains the rest of its stderr in the background.
pub fn wait_until_listening(child: &mut Child) {
    let Some(mut err) = child.stderr.take() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while Instant::now() < deadline {
        match err.read(&mut byte) {
            Ok(1) => {
                seen.push(byte[0]);
                if byte[0] == b'\n' {
                    if String::from_utf8_lossy(&seen).contains("listening on") {
                        break;
                    }
                    seen.clear();
                }
            }
            _ => break,
        }
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_interfaces() {
        let text = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        assert_eq!(interfaces_in_proc_net_dev(text), vec!["lo", "eth0"]);
        let only_lo = "h\nh\n    lo: 0 0 0\n";
        assert_eq!(interfaces_in_proc_net_dev(only_lo), vec!["lo"]);
    }

    #[test]
    fn stream_splitting_by_content_length() {
        let mut buf = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcSIP/2.0 100 Trying\r\nl: 0\r\n\r\nSIP/2.0 1".to_vec();
        let msgs = split_stream(&mut buf);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].ends_with("abc"));
        assert_eq!(status_code(&msgs[1]), Some(100));
        assert_eq!(buf, b"SIP/2.0 1");
    }

    #[test]
    fn headers_and_status() {
        let m = "SIP/2.0 420 Bad Extension\r\nUnsupported: foo\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(status_code(m), Some(420));
        assert_eq!(header(m, "unsupported"), Some("foo"));
        assert_eq!(status_code("OPTIONS sip:a SIP/2.0\r\n"), None);
    }

    #[test]
    fn metric_sums_by_label() {
        let t = "# TYPE x counter\nx{method=\"INVITE\"} 2\nx{method=\"BYE\"} 3\ny 1\n";
        assert_eq!(metric_sum(t, "x", &[]), Some(5.0));
        assert_eq!(metric_sum(t, "x", &["method=\"BYE\""]), Some(3.0));
        assert_eq!(metric_sum(t, "z", &[]), None);
    }

    #[test]
    fn stat_csv_last_row() {
        let t = "StartTime;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;5;1;\n";
        let m = parse_stat_csv(t);
        assert_eq!(m.get("SuccessfulCall(C)").map(String::as_str), Some("5"));
        assert_eq!(m.get("FailedCall(C)").map(String::as_str), Some("1"));
    }

    #[test]
    fn rtp_header_parsing_and_pacing() {
        let from: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let t0 = Instant::now();
        let mut pkt = vec![0x80, 0x80, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0x12; 160]);
        let p = parse_rtp(&pkt, t0, from).expect("rtp");
        assert_eq!((p.pt, p.marker, p.seq, p.ts, p.ssrc), (0, true, 7, 160, 9));
        assert_eq!(p.payload_len, 160);
        assert!(!p.silent);
        assert!(parse_rtp(&[0x40, 0], t0, from).is_none());
        let ps: Vec<RtpSeen> = (0..3u32)
            .map(|i| RtpSeen {
                at: t0 + Duration::from_millis(20 * u64::from(i) + u64::from(i == 2) * 10),
                ..p
            })
            .collect();
        let pc = pacing(&ps);
        assert_eq!(pc.count, 3);
        assert!((pc.mean_ms - 25.0).abs() < 0.01);
        assert!((pc.max_gap_ms - 30.0).abs() < 0.01);
    }

    #[test]
    fn tcpdump_lines() {
        let t = "1795364050.250000 IP 127.0.0.1.20022 > 127.0.0.1.20005: UDP, length 172\n\
                 1795364050.270000 IP 127.0.0.1.20022 > 127.0.0.1.20005: UDP, length 172\n\
                 junk\n";
        let times = parse_tcpdump_times(t);
        assert_eq!(times.len(), 2);
        let p = pacing_of_times(&times);
        assert!((p.mean_ms - 20.0).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn tone_wav_header() {
        let dir = TempDir::new("wav");
        let p = dir.path().join("t.wav");
        write_tone_wav(&p, 0.5);
        let b = fs::read(&p).expect("read");
        assert_eq!(b.len(), 44 + 8000);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 8000);
    }

    #[test]
    fn config_names_ports_and_prompts() {
        let ports = Ports {
            base: 30000,
            len: 100,
        };
        let cfg = ServerConfig::new(ports).number("100", 1.0, 2000);
        let toml = cfg.to_toml(Path::new("/tmp/x"));
        assert!(toml.contains("udp = \"127.0.0.1:30000\""));
        assert!(toml.contains("port_min = 30020\nport_max = 30099"));
        assert!(toml.contains("prompt = \"/tmp/x/prompt-100.wav\""));
        assert!(toml.contains("answer_delay_ms = 2000"));
        for (token, role) in [
            (SUPERVISOR_TOKEN, "supervisor"),
            (INTEGRATOR_TOKEN, "integrator"),
            (ADMIN_TOKEN, "admin"),
        ] {
            assert!(
                toml.contains(&format!("token = \"{token}\"\nrole = \"{role}\"")),
                "{toml}"
            );
        }
        let toml = ServerConfig::new(ports)
            .rtp_inactivity(3)
            .to_toml(Path::new("/tmp/x"));
        assert!(toml.contains("port_max = 30099\ninactivity_timeout_s = 3\n\n[api]"));
    }
}
