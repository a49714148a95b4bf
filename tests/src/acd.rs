//! Helpers for the ACD end-to-end tests: `caruso-agent` as a separate client process
//! (its `key=value` output), agents' SIPp phones (registration, what their message logs
//! say and when), and config fragments.

use crate::{
    agent_binary, prompts_dir, Ports, Server, ServerConfig, Sipp, LOOPBACK, SUPERVISOR_TOKEN,
};
use std::collections::BTreeSet;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A server with one progressive campaign `demo` (UTC, open all day, AMD off) on queue
/// `sales` (`queue_more` goes into the queue's table) served by `alice` (token
/// `tok-alice`, phone at `ports.peer(2)`), dialing through trunk `pstn` at
/// `ports.peer(1)`, with the do-not-call list `dnc_file`.
pub fn campaign_config(ports: Ports, dnc_file: &Path, queue_more: &str) -> ServerConfig {
    let trunk = ports.peer(1);
    let phone = ports.peer(2);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:{trunk}\"\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n{queue_more}\n\n\
         [[acd.agents]]\nid = \"alice\"\ntoken = \"tok-alice\"\nskills = {{ sales = 1 }}\n\
         phone = {{ uri = \"sip:alice@127.0.0.1:{phone}\" }}\n\n\
         [dialer]\ndnc_file = \"{dnc}\"\ndefault_country = \"PL\"\n\n\
         [[campaigns]]\nname = \"demo\"\nmode = \"progressive\"\nqueue = \"sales\"\n\
         trunk = \"pstn\"\ncaller_id = \"+48221234567\"\ndefault_country = \"PL\"\n\
         timezone = \"UTC\"\nwindow = {{ from = \"00:00\", to = \"24:00\" }}\n\
         amd = {{ enabled = false }}\n",
        prompts = prompts_dir().display(),
        dnc = dnc_file.display(),
    );
    cfg
}

/// The value of a `key: value` line of `caruso-agent campaign status` output.
pub fn status_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_owned))
}

/// A number from `caruso-agent campaign status` output (panics when absent).
pub fn status_number(text: &str, key: &str) -> u64 {
    status_value(text, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// One campaign dial, end to end: SIPp answers as the contact behind the trunk
/// (`dial_contact_talk.xml` at `contact_port`: talks 6 s, hangs up) and as alice's phone
/// (`bridge_uas_answer.xml` at `phone_port`); campaign `demo` is started and both runs
/// are waited for; both must succeed (else a panic with their output and the server's
/// log). Alice must be logged in and ready.
pub fn one_campaign_dial(server: &Server, contact_port: u16, phone_port: u16) {
    let contact = Sipp::new(server, "dial_contact_talk.xml")
        .local_port(contact_port)
        .pcaps()
        .timeout(Duration::from_secs(40));
    let phone = Sipp::new(server, "bridge_uas_answer.xml")
        .local_port(phone_port)
        .pcaps()
        .timeout(Duration::from_secs(40));
    let contact_run = std::thread::spawn(move || contact.run());
    let phone_run = std::thread::spawn(move || phone.run());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        campaign(server, &["start", "demo"]).trim(),
        "state: running"
    );
    let contact = contact_run.join().expect("contact thread");
    let phone = phone_run.join().expect("phone thread");
    let ctx = format!(
        "--- contact ---\n{contact}\n--- phone ---\n{phone}\n--- server log ---\n{}",
        server.log_tail(60)
    );
    assert!(contact.all_succeeded(1), "the contact talked\n{ctx}");
    assert!(phone.all_succeeded(1), "alice's phone was bridged\n{ctx}");
}

/// Runs `caruso-agent <args>` against `server` (15 s for each gRPC call: a loaded
/// machine must not fail a command).
pub fn caruso_agent(server: &Server, args: &[&str]) -> Output {
    Command::new(agent_binary())
        .args(["--server", &server.grpc_url(), "--timeout", "15"])
        .args(args)
        .output()
        .expect("run caruso-agent")
}

/// Runs `caruso-agent <args>`; its stdout, or a panic with its stderr and the server's
/// log.
pub fn caruso_agent_ok(server: &Server, args: &[&str]) -> String {
    let out = caruso_agent(server, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "caruso-agent {args:?} failed: {}{stdout}\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(30)
    );
    stdout
}

/// Runs `caruso-agent campaign --token supervisor-secret <args>`; its stdout, or a panic
/// with its stderr and the server's log.
pub fn campaign(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["campaign", "--token", SUPERVISOR_TOKEN];
    all.extend_from_slice(args);
    caruso_agent_ok(server, &all)
}

/// Runs `caruso-agent agent --token <token> <args>`; its stdout, or a panic with its
/// stderr and the server's log.
pub fn agent(server: &Server, token: &str, args: &[&str]) -> String {
    let out = Command::new(agent_binary())
        .args(["--server", &server.grpc_url(), "--timeout", "10", "agent"])
        .args(["--token", token])
        .args(args)
        .output()
        .expect("run caruso-agent");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "caruso-agent {args:?} ({token}) failed: {}{stdout}\n{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(30)
    );
    stdout
}

/// Logs the agent of `token` in and makes it ready; checks the state each step reports.
pub fn login_ready(server: &Server, token: &str) {
    let out = agent(server, token, &["login"]);
    assert_eq!(field(&out, "state").as_deref(), Some("not-ready"), "{out}");
    let out = agent(server, token, &["ready"]);
    assert_eq!(field(&out, "state").as_deref(), Some("ready"), "{out}");
}

/// Polls `caruso-agent status` until the state is `want` (at most `limit`); the last
/// status output.
pub fn wait_state(server: &Server, token: &str, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = agent(server, token, &["status"]);
        if field(&out, "state").as_deref() == Some(want) || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of `key` in the first `key=value` line that has it (quoted values unquoted).
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| line_field(l, key))
}

/// The value of `key` in one `key=value ...` line.
pub fn line_field(line: &str, key: &str) -> Option<String> {
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        let (k, after) = rest.split_once('=')?;
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if k == key {
            return Some(value);
        }
        rest = tail;
    }
}

/// The directory a [`Sipp`] run of `scenario` on `port` uses (see `Sipp::run`).
pub fn run_dir(server: &Server, scenario: &str, port: u16) -> PathBuf {
    server
        .dir()
        .join(format!("sipp-{}-{port}", scenario.trim_end_matches(".xml")))
}

/// One message in a SIPp run's `-trace_msg` log.
#[derive(Debug, Clone, PartialEq)]
pub struct SippMessage {
    /// When SIPp logged it: seconds since 1970-01-01 in the local time SIPp writes (all
    /// SIPp runs of a test share that clock, so times compare across runs).
    pub at: f64,
    /// Received (`true`) or sent.
    pub received: bool,
    /// The start line (`INVITE sip:...`, `SIP/2.0 200 OK`).
    pub start: String,
    /// The whole message.
    pub text: String,
}

impl SippMessage {
    /// The value of header `name` (case-insensitive, first occurrence).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Whether this is a request of `method`.
    pub fn is_request(&self, method: &str) -> bool {
        self.start.starts_with(&format!("{method} "))
    }

    /// Whether this is a response with `status` to a request of `method` (by CSeq).
    pub fn is_response(&self, status: u16, method: &str) -> bool {
        self.start.starts_with(&format!("SIP/2.0 {status} "))
            && self
                .header("CSeq")
                .is_some_and(|c| c.split_whitespace().nth(1) == Some(method))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-22 20:46:41.602908` as seconds since 1970.
fn parse_stamp(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min, sec) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    Some(days_from_civil(y, m, day) as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// Every message in the `*_messages.log` files of a SIPp run directory, in log order.
pub fn sipp_messages(dir: &Path) -> Vec<SippMessage> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_messages.log"))
        })
        .collect();
    files.sort();
    for p in files {
        let text = fs::read_to_string(&p).unwrap_or_default();
        for block in text.split("----------------------------------------------- ") {
            let mut lines = block.lines();
            let Some(at) = lines.next().and_then(parse_stamp) else {
                continue;
            };
            let Some(kind) = lines.next() else {
                continue;
            };
            let received = kind.contains("message received");
            if !received && !kind.contains("message sent") {
                continue;
            }
            let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
            let Some(start) = body.first() else {
                continue;
            };
            out.push(SippMessage {
                at,
                received,
                start: start.trim().to_owned(),
                text: body.join("\n"),
            });
        }
    }
    out
}

/// The INVITEs a SIPp run received, from its message log: (Call-ID, From user), one per
/// Call-ID (retransmissions counted once).
pub fn invites_received(dir: &Path) -> BTreeSet<(String, String)> {
    sipp_messages(dir)
        .into_iter()
        .filter(|m| m.received && m.is_request("INVITE"))
        .filter_map(|m| {
            let user = m
                .header("From")?
                .split("sip:")
                .nth(1)?
                .split('@')
                .next()?
                .to_owned();
            Some((m.header("Call-ID")?.to_owned(), user))
        })
        .collect()
}

/// Asks a SIPp started with `-cp port` to quit once its calls are done ("q" on its
/// control socket).
pub fn sipp_quit(control_port: u16) {
    if let Ok(s) = UdpSocket::bind((LOOPBACK, 0)) {
        let _ = s.send_to(b"q", (LOOPBACK, control_port));
    }
}

/// Registers a SIPp phone at `port` as `user` with digest authentication (MD5: the
/// server's `[sip.registrar] algorithms` must allow it) and asserts the 200.
pub fn register_phone(server: &Server, port: u16, user: &str, password: &str) {
    let reg = Sipp::new(server, "acd_register.xml")
        .local_port(port)
        .key("user", user)
        .arg("-au")
        .arg(user)
        .arg("-ap")
        .arg(password)
        .run();
    assert!(
        reg.all_succeeded(1),
        "{user} registered\n{reg}\n{}",
        server.log_tail(20)
    );
}

/// An `[[acd.agents]]` entry with token `tok-<id>` whose phone registers as
/// `user`/`pw-<user>`.
pub fn registered_agent(id: &str, skills: &str, user: &str, more: &str) -> String {
    format!(
        "\n[[acd.agents]]\nid = \"{id}\"\ntoken = \"tok-{id}\"\nskills = {{ {skills} }}\n\
         phone = {{ user = \"{user}\", password = \"pw-{user}\" }}\n{more}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_seconds_since_1970() {
        assert_eq!(parse_stamp("1970-01-01 00:00:01.5"), Some(1.5));
        assert_eq!(
            parse_stamp("2000-03-01 00:00:00.000000"),
            Some(951_868_800.0)
        );
        assert_eq!(parse_stamp("not a stamp"), None);
    }

    #[test]
    fn message_logs_are_split_into_messages() {
        let dir = crate::TempDir::new("sipp-log");
        fs::write(
            dir.path().join("x_1_messages.log"),
            "----------------------------------------------- 2026-11-22 20:46:41.602908\n\
             UDP message received [10] bytes :\n\nINVITE sip:a@b SIP/2.0\nCall-ID: c1\n\
             From: <sip:bob@h>;tag=1\nCSeq: 1 INVITE\n\n\
             ----------------------------------------------- 2026-11-22 20:46:42.000000\n\
             UDP message sent (5 bytes):\n\nSIP/2.0 487 Request Terminated\nCSeq: 1 INVITE\n\n",
        )
        .unwrap();
        let m = sipp_messages(dir.path());
        assert_eq!(m.len(), 2);
        assert!(m[0].received && m[0].is_request("INVITE"));
        assert_eq!(m[0].header("call-id"), Some("c1"));
        assert!(!m[1].received && m[1].is_response(487, "INVITE"));
        assert!((m[1].at - m[0].at - 0.397092).abs() < 1e-6);
        assert_eq!(
            invites_received(dir.path()),
            [("c1".to_string(), "bob".to_string())].into()
        );
    }
}
