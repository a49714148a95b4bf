//! The status monitor (`caruso.v1.Monitor`) end to end, with watchers in separate
//! processes: `caruso-agent monitor` (ours) and a Python `grpcio` client (not ours,
//! `tests/python/monitor_client.py`), both sending `authorization: Bearer
//! supervisor-secret`.
//!
//! - one call through a queue (an agent logs in and gets ready, a SIPp caller is queued,
//!   offered to the agent's SIPp phone, answered, hung up, wrap-up, ready again): the
//!   watcher sees every agent and queue change, in order, with no gap, and the queue's
//!   figures of the day;
//! - `caruso-agent monitor --once` shows a waiting call and its wait;
//! - 200 concurrent watchers all see the same changes, without gaps;
//! - a watcher that never reads is cut off (RESOURCE_EXHAUSTED "watcher too slow")
//!   while another one keeps up with every change.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use caruso_e2e::json::Json;
use caruso_e2e::*;

const SUPERVISOR: &str = "supervisor-secret";

/// A server whose number 100 queues callers in `sales`; `agents` are `[[acd.agents]]`
/// entries (TOML).
fn server(ports: Ports, agents: &str, queue_extra: &str) -> Server {
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [[numbers]]\nnumber = \"100\"\nflow = \"sales\"\n\n\
         [flows.sales]\nstart = \"q\"\n\n[flows.sales.nodes.q]\ntype = \"queue\"\nqueue = \"sales\"\n\n\
         [acd]\nreasons = [\"break\"]\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n{queue_extra}\n{agents}",
        prompts = prompts_dir().display(),
    );
    Server::start(cfg)
}

/// An agent with a fixed-URI phone at `127.0.0.1:port` and token `tok-<id>`.
fn agent_entry(id: &str, port: u16) -> String {
    format!(
        "\n[[acd.agents]]\nid = \"{id}\"\ntoken = \"tok-{id}\"\nskills = {{ sales = 1 }}\n\
         phone = {{ uri = \"sip:{id}@127.0.0.1:{port}\" }}\n"
    )
}

/// `caruso-agent agent --token tok-<id> <args>`; panics with its output on failure.
fn agent(server: &Server, id: &str, args: &[&str]) -> String {
    caruso_e2e::acd::agent(server, &format!("tok-{id}"), args)
}

/// The value of `key` in a `key=value ...` line (values here are never quoted).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// A child process whose stdout lines arrive on a channel.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watcher");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred` (deadline `limit`); all lines are kept.
    fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.seen.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Stops the process; its stderr.
    fn stop(mut self) -> (Vec<String>, String) {
        let _ = self.child.kill();
        let out = self.child.wait_with_output().ok();
        while let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        let err = out
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        (self.seen, err)
    }
}

/// `caruso-agent monitor --token supervisor-secret --events <many>` against `server`.
fn monitor_events(server: &Server, extra: &[&str]) -> Lines {
    let mut cmd = Command::new(agent_binary());
    cmd.args([
        "--server",
        &server.grpc_url(),
        "monitor",
        "--token",
        SUPERVISOR,
    ])
    .args(["--events", "100000", "--timeout", "120"])
    .args(extra);
    Lines::spawn(cmd)
}

/// `tests/python/monitor_client.py --server <grpc> --token supervisor-secret <args>`.
fn python_monitor(server: &Server, args: &[&str]) -> Lines {
    let python = std::env::var_os("CARUSO_PYTHON")
        .expect("CARUSO_PYTHON not set: run tests/run-all.sh (it makes target/pyenv)");
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("tests/python/monitor_client.py"))
        .args(["--server", &server.grpc_addr(), "--token", SUPERVISOR])
        .args(args);
    Lines::spawn(cmd)
}

/// Checks that every line after the first snapshot names the previous line's seq.
fn assert_chained(lines: &[String], ctx: &str) {
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("event=gap") || l.starts_with("event=cut")),
        "no gap and no cut\n{ctx}"
    );
    let mut last: Option<u64> = None;
    for l in lines.iter().filter(|l| l.starts_with("event=")) {
        let seq: u64 = field(l, "seq").and_then(|s| s.parse().ok()).expect("seq");
        let prev: u64 = field(l, "prev").and_then(|s| s.parse().ok()).expect("prev");
        if let Some(last) = last {
            assert_eq!(prev, last, "`{l}` follows seq {last}\n{ctx}");
        } else {
            assert!(
                l.starts_with("event=snapshot"),
                "first is the snapshot\n{ctx}"
            );
        }
        last = Some(seq);
    }
}

#[test]
fn a_watcher_sees_every_agent_and_queue_change_of_a_call_in_order() {
    let ports = Ports::block(60);
    let phone_port = ports.peer(6);
    let server = server(ports, &agent_entry("alice", phone_port), "wrap_up_s = 2\n");
    let mut watcher = monitor_events(&server, &[]);
    let snap = watcher
        .wait_for(Duration::from_secs(10), |l| l.starts_with("event=snapshot"))
        .unwrap_or_else(|| panic!("no snapshot\n{}", server.log_tail(30)));
    assert_eq!(field(&snap, "agents"), Some("alice:logged-out"), "{snap}");
    assert_eq!(field(&snap, "queues"), Some("sales:0"), "{snap}");

    agent(&server, "alice", &["login"]);
    agent(&server, "alice", &["ready"]);
    let phone = Sipp::new(&server, "acd_agent_hangup.xml")
        .local_port(phone_port)
        .timeout(Duration::from_secs(30));
    let phone = std::thread::spawn(move || phone.run());
    std::thread::sleep(Duration::from_millis(300));
    let caller = Sipp::new(&server, "acd_uac_wait.xml")
        .key("caller", "sales")
        .arg("-s")
        .arg("100")
        .timeout(Duration::from_secs(30))
        .run();
    let phone = phone.join().expect("phone thread");
    // Wrap-up (2 s) ends by itself: alice is ready again, and the queue says so.
    let back = watcher.wait_for(Duration::from_secs(10), |l| {
        l.starts_with("event=agent") && field(l, "cause") == Some("wrap_up_timeout")
    });
    watcher.wait_for(Duration::from_secs(5), |l| {
        l.starts_with("event=queue")
            && field(l, "answered") == Some("1")
            && field(l, "ready") == Some("1")
    });
    let (lines, err) = watcher.stop();
    let ctx = format!(
        "--- watcher ---\n{}\n{err}\n--- caller ---\n{caller}\n--- phone ---\n{phone}\n--- server ---\n{}",
        lines.join("\n"),
        server.log_tail(40)
    );
    assert!(caller.all_succeeded(1), "the call went through\n{ctx}");
    assert!(back.is_some(), "alice back to ready after wrap-up\n{ctx}");
    assert_chained(&lines, &ctx);

    // The agent's states and why, in order.
    let states: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("event=agent"))
        .map(|l| {
            format!(
                "{} {}{} ({})",
                field(l, "agent").unwrap_or(""),
                field(l, "state").unwrap_or(""),
                field(l, "reason")
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default(),
                field(l, "cause").unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "alice not-ready login (client)",
            "alice ready (client)",
            "alice reserved (offered)",
            "alice on-call (answered)",
            "alice wrap-up (call_ended)",
            "alice ready (wrap_up_timeout)",
        ],
        "{ctx}"
    );
    // The call's path through the queue, between the agent's changes.
    let story: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let kind = field(l, "event")?;
            Some(match kind {
                "agent" => format!("agent {}", field(l, "state")?),
                "joined" => format!("joined position={}", field(l, "position")?),
                "left" => format!("left {} by {}", field(l, "outcome")?, field(l, "agent")?),
                "queue" => format!(
                    "queue waiting={} ready={} busy={} away={}",
                    field(l, "waiting")?,
                    field(l, "ready")?,
                    field(l, "busy")?,
                    field(l, "away")?
                ),
                _ => return None,
            })
        })
        .collect();
    // (the queue's figures after wrap-up change too: the call's handle time makes the
    // expected wait shorter)
    let want = [
        "agent not-ready",
        "queue waiting=0 ready=0 busy=0 away=1",
        "agent ready",
        "queue waiting=0 ready=1 busy=0 away=0",
        "joined position=1",
        "queue waiting=1 ready=1 busy=0 away=0",
        "agent reserved",
        "queue waiting=1 ready=0 busy=1 away=0",
        "agent on-call",
        "left answered by alice",
        "queue waiting=0 ready=0 busy=1 away=0",
        "agent wrap-up",
        "queue waiting=0 ready=0 busy=1 away=0",
        "agent ready",
        "queue waiting=0 ready=1 busy=0 away=0",
    ];
    assert_eq!(story, want, "{ctx}");
    let last_queue = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("event=queue"))
        .expect("queue line");
    for (k, v) in [
        ("offered", "1"),
        ("answered", "1"),
        ("answered_in_sl", "1"),
        ("abandoned", "0"),
        ("service_level", "1.000"),
    ] {
        assert_eq!(field(last_queue, k), Some(v), "{k} in {last_queue}\n{ctx}");
    }
    let left = lines
        .iter()
        .find(|l| l.starts_with("event=left"))
        .expect("left");
    let waited: u64 = field(left, "waited_ms")
        .and_then(|v| v.parse().ok())
        .expect("waited_ms");
    assert!(waited < 5_000, "answered within the ring time: {left}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event=server")
                && field(l, "active_calls").is_some_and(|n| n != "0")),
        "the server's active calls were watched too\n{ctx}"
    );
}

#[test]
fn monitor_once_shows_a_waiting_call_and_its_wait() {
    let ports = Ports::block(60);
    let server = server(ports, &agent_entry("alice", ports.peer(6)), "");
    // Logged in but not ready: the caller waits.
    agent(&server, "alice", &["login"]);
    let caller = Sipp::new(&server, "acd_uac_abandon.xml")
        .key("caller", "sales")
        .arg("-s")
        .arg("100")
        .timeout(Duration::from_secs(30));
    let caller = std::thread::spawn(move || caller.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    let longest = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("sales"))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    };
    let text = loop {
        std::thread::sleep(Duration::from_millis(250));
        let out = Command::new(agent_binary())
            .args([
                "--server",
                &server.grpc_url(),
                "monitor",
                "--token",
                SUPERVISOR,
            ])
            .args(["--once", "--queue", "sales"])
            .output()
            .expect("run caruso-agent monitor --once");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ticking = longest(&text).is_some_and(|w| w != "0:00");
        if (text.contains("#1 ") && ticking) || Instant::now() > deadline {
            break text;
        }
    };
    let caller = caller.join().expect("caller");
    let ctx = format!("{text}\n--- caller ---\n{caller}\n{}", server.log_tail(30));
    let sales = text
        .lines()
        .find(|l| l.starts_with("sales"))
        .unwrap_or_else(|| panic!("a sales row\n{ctx}"));
    let cols: Vec<&str> = sales.split_whitespace().collect();
    assert_eq!(cols[1], "1", "one call waiting\n{ctx}");
    assert_ne!(cols[2], "0:00", "its wait ticks\n{ctx}");
    assert_eq!(cols[5], "1", "alice is away\n{ctx}");
    assert!(
        text.contains("#1   call"),
        "the waiting call is listed\n{ctx}"
    );
    assert!(
        text.contains("not ready (1)") && text.contains("(login)"),
        "{ctx}"
    );
    // --queue with an unknown name is refused by the server.
    let out = Command::new(agent_binary())
        .args([
            "--server",
            &server.grpc_url(),
            "monitor",
            "--token",
            SUPERVISOR,
        ])
        .args(["--once", "--queue", "nowhere"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn two_hundred_concurrent_watchers_see_the_same_changes_without_gaps() {
    let ports = Ports::block(60);
    let server = server(ports, &agent_entry("alice", ports.peer(6)), "");
    let mut swarm = python_monitor(&server, &["swarm", "--watchers", "200", "--changes", "10"]);
    let ready = swarm.wait_for(Duration::from_secs(60), |l| l.contains("\"ready\""));
    assert!(
        ready.as_deref().is_some_and(|l| l.contains("true")),
        "200 watchers connected: {ready:?}\n{}",
        server.log_tail(20)
    );
    // Five commands, two changes each (alice's row and the queue's figures).
    for cmd in [
        &["login"][..],
        &["ready"],
        &["not-ready", "break"],
        &["ready"],
        &["logout"],
    ] {
        agent(&server, "alice", cmd);
    }
    let summary = swarm.wait_for(Duration::from_secs(60), |l| l.contains("\"complete\""));
    let (lines, err) = swarm.stop();
    let ctx = format!("{}\n{err}\n{}", lines.join("\n"), server.log_tail(20));
    let summary =
        Json::parse(&summary.unwrap_or_else(|| panic!("no summary\n{ctx}"))).expect("summary JSON");
    assert_eq!(summary["complete"].as_f64(), Some(200.0), "{ctx}");
    assert_eq!(summary["gaps"].as_f64(), Some(0.0), "{ctx}");
    assert_eq!(
        summary["distinct_sequences"].as_f64(),
        Some(1.0),
        "every watcher saw the same changes\n{ctx}"
    );
    let seq: Vec<String> = summary["sequence"]
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str())
        .filter(|s| s.contains(" agent "))
        .map(|s| s.split(' ').skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        seq,
        [
            "agent alice AGENT_STATE_NOT_READY login",
            "agent alice AGENT_STATE_READY ",
            "agent alice AGENT_STATE_NOT_READY break",
            "agent alice AGENT_STATE_READY ",
            "agent alice AGENT_STATE_LOGGED_OUT ",
        ],
        "{ctx}"
    );
    let m = server.metrics();
    assert_eq!(
        metric_sum(&m, "caruso_monitor_watchers_cut_total", &[]).unwrap_or(0.0),
        0.0,
        "nobody was too slow\n{m}"
    );
}

#[test]
fn a_watcher_that_never_reads_is_cut_off_while_another_keeps_up() {
    let ports = Ports::block(60);
    let agents: String = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, id)| agent_entry(id, ports.peer(6 + i as u16)))
        .collect();
    let server = server(ports, &agents, "");
    // 3 agents x 402 state changes, each with the queue's figures: 2,412 changes, far
    // more than a watcher's 1,024 buffered messages plus what HTTP/2 holds in a 1 KiB
    // window.
    let run = python_monitor(
        &server,
        &[
            "slow",
            "--agent-token",
            "tok-alice",
            "--agent-token",
            "tok-bob",
            "--agent-token",
            "tok-carol",
            "--toggles",
            "400",
            "--slow-window",
            "1024",
        ],
    );
    let mut run = run;
    let summary = run.wait_for(Duration::from_secs(90), |l| l.starts_with('{'));
    let (lines, err) = run.stop();
    let ctx = format!("{}\n{err}\n{}", lines.join("\n"), server.log_tail(20));
    let s = Json::parse(&summary.unwrap_or_else(|| panic!("no summary\n{ctx}"))).expect("JSON");
    assert!(s["error"].is_null(), "{ctx}");
    let changes = s["changes"].as_f64().expect("changes");
    assert!(changes >= 2412.0, "{ctx}");
    let fast = &s["fast"];
    assert_eq!(
        fast["caught_up"].as_bool(),
        Some(true),
        "the reader kept up\n{ctx}"
    );
    assert_eq!(
        fast["received"].as_f64(),
        Some(changes),
        "every change\n{ctx}"
    );
    assert_eq!(fast["gaps"].as_f64(), Some(0.0), "{ctx}");
    assert!(fast["error"].is_null(), "{ctx}");
    let slow = &s["slow"];
    assert_eq!(slow["code"].as_str(), Some("RESOURCE_EXHAUSTED"), "{ctx}");
    assert!(
        slow["details"]
            .as_str()
            .is_some_and(|d| d.contains("watcher too slow")),
        "{ctx}"
    );
    assert!(
        slow["received"].as_f64().is_some_and(|n| n < changes),
        "cut off before the end\n{ctx}"
    );
    let m = server.metrics();
    assert_eq!(
        metric_sum(&m, "caruso_monitor_watchers_cut_total", &[]),
        Some(1.0),
        "{m}"
    );
}
