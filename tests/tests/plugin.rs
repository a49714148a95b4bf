//! The service registry and the plug-in hooks end to end, with a plug-in that is not our
//! code: `tests/python/plugin.py` (Python grpcio, stubs generated from the `.proto` files
//! at run time) serves `caruso.v1.Plugin`, registers in `caruso.v1.Registry` with an
//! integrator token and keeps its lease alive.
//!
//! - a SIPp caller comes in, the plug-in attaches customer data and a priority: the
//!   agent's event stream (`caruso-agent agent events`) shows the data on the offered
//!   call, and the caller with the higher priority is offered first although it came
//!   second; `call.ended` brings the plug-in both call records;
//! - the plug-in stops its keep-alives and disappears within its TTL (Watch shows
//!   REMOVED/EXPIRED, Lookup no longer lists it) while a second version that registered
//!   meanwhile takes over, and calls go on without a failure;
//! - a plug-in that sleeps past the hook's deadline: the call is still offered to the
//!   agent within the deadline plus a small margin, the timeout is counted;
//! - after a restart of caruso the registrations are back from the store; one whose
//!   plug-in keeps sending keep-alives (with its old id, nothing else) stays, the other
//!   lapses one TTL later.
//!
//! Needs `CARUSO_PYTHON` (a Python with grpcio and grpcio-tools; `tests/run-all.sh` makes
//! one).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use caruso_e2e::json::Json;
use caruso_e2e::*;

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

/// A server whose number 100 runs a flow into queue `sales` (served by `alice`, token
/// `alice-secret`, phone a SIPp UAS at `phone_port`), number 200 a flow that says
/// goodbye and hangs up, with `hooks` (a `[hooks]` table body) and short leases.
fn plugin_config(ports: Ports, phone_port: u16, hooks: &str) -> ServerConfig {
    // T1 100 ms: an ended call lingers 6.4 s (64 × T1) to absorb retransmissions; its
    // record (and call.ended) go out at hang-up, not after that.
    let mut cfg = ServerConfig::new(ports).t1_ms(100);
    cfg.extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\
         \n[[numbers]]\nnumber = \"100\"\nflow = \"f100\"\n\
         \n[[numbers]]\nnumber = \"200\"\nflow = \"f200\"\n\
         \n[flows.f100]\nstart = \"q\"\n[flows.f100.nodes.q]\ntype = \"queue\"\nqueue = \"sales\"\n\
         \n[flows.f200]\nstart = \"bye\"\n[flows.f200.nodes.bye]\ntype = \"hangup\"\nprompts = [\"goodbye\"]\n\
         \n[registry]\nmin_ttl_ms = 500\n\
         \n[hooks]\n{hooks}\n\
         \n[[acd.queues]]\nname = \"sales\"\nwrap_up_s = 0\n\
         \n[[acd.agents]]\nid = \"alice\"\ntoken = \"alice-secret\"\n\
         phone = {{ uri = \"sip:alice@127.0.0.1:{phone_port}\" }}\n",
        prompts = prompts_dir().display(),
    );
    cfg
}

// ---------------------------------------------------------------------------------------
// The Python plug-in
// ---------------------------------------------------------------------------------------

fn python() -> std::ffi::OsString {
    std::env::var_os("CARUSO_PYTHON")
        .expect("CARUSO_PYTHON not set: run tests/run-all.sh (it makes target/pyenv)")
}

/// A running `plugin.py` (serve, lookup or watch) whose JSON lines are read as they come.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, Json)>,
    name: String,
}

impl Py {
    fn spawn(server: &Server, name: &str, args: &[&str]) -> Py {
        let mut child = Command::new(python())
            .arg(workspace_root().join("tests/python/plugin.py"))
            .args(["--server", &server.grpc_addr()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start plugin.py");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Py {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
            name: name.to_string(),
        }
    }

    /// `plugin.py serve` on `port` with `extra` flags; returns once it has registered.
    fn serve(server: &Server, name: &str, port: u16, extra: &[&str]) -> Py {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        args.extend_from_slice(extra);
        let mut p = Py::spawn(server, name, &args);
        p.wait_for("registered", |_| true, Duration::from_secs(30), server);
        p
    }

    fn pump(&mut self, wait: Duration) {
        if let Ok((t, line)) = self.lines.recv_timeout(wait) {
            match Json::parse(&line) {
                Ok(j) => self.seen.push((t, j)),
                Err(e) => panic!("{}: not JSON ({e}): {line}", self.name),
            }
        }
        while let Ok((t, line)) = self.lines.try_recv() {
            if let Ok(j) = Json::parse(&line) {
                self.seen.push((t, j));
            }
        }
    }

    /// Waits for the first line whose `key` is `value` and that `pred` accepts.
    fn wait_line(
        &mut self,
        key: &str,
        value: &str,
        pred: impl Fn(&Json) -> bool,
        limit: Duration,
        server: &Server,
    ) -> (Instant, Json) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self
                .seen
                .iter()
                .find(|(_, j)| j[key].as_str() == Some(value) && pred(j))
            {
                return found.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "{}: no {key}={value} within {limit:?}; seen: {:#?}\n--- server log ---\n{}",
                    self.name,
                    self.seen.iter().map(|(_, j)| j).collect::<Vec<_>>(),
                    server.log_tail(40)
                );
            }
            self.pump((deadline - now).min(Duration::from_millis(100)));
        }
    }

    fn wait_for(
        &mut self,
        event: &str,
        pred: impl Fn(&Json) -> bool,
        limit: Duration,
        server: &Server,
    ) -> (Instant, Json) {
        self.wait_line("event", event, pred, limit, server)
    }

    /// Every line seen so far with `event`.
    fn all(&mut self, event: &str) -> Vec<Json> {
        self.pump(Duration::from_millis(1));
        self.seen
            .iter()
            .filter(|(_, j)| j["event"].as_str() == Some(event))
            .map(|(_, j)| j.clone())
            .collect()
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").expect("write to plugin.py");
        stdin.flush().expect("flush");
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `plugin.py lookup --name NAME`: the instances' (id, version).
fn lookup(server: &Server, name: &str) -> Vec<(String, String)> {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/python/plugin.py"))
        .args(["--server", &server.grpc_addr(), "lookup", "--name", name])
        .output()
        .expect("run plugin.py lookup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lookup failed: {text}");
    let j = Json::parse(text.trim()).expect("lookup JSON");
    j["instances"]
        .as_array()
        .unwrap_or(&[])
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap_or("").to_string(),
                i["version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// caruso-agent
// ---------------------------------------------------------------------------------------

fn agent(server: &Server, args: &[&str]) -> String {
    caruso_e2e::acd::agent(server, "alice-secret", args)
}

/// `caruso-agent agent events ...` with its lines timestamped as they come.
struct Events {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every line read so far (for failure messages).
    seen: Vec<String>,
}

impl Events {
    fn start(server: &Server, args: &[&str]) -> Events {
        let mut child = Command::new(agent_binary())
            .args(["--server", &server.grpc_url(), "agent"])
            .args(["--token", "alice-secret", "events"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn caruso-agent events");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Events {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The first line starting with `prefix` (and when it came), within `limit`.
    fn wait(&mut self, prefix: &str, limit: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Some((t, l));
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key` in a `key=value ...` line (values quoted when they hold spaces).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if let Some(q) = rest.strip_prefix('"') {
        let end = q.find('"')?;
        Some(q[..end].to_string())
    } else {
        Some(rest.split(' ').next().unwrap_or("").to_string())
    }
}

fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    metric_sum(&server.metrics(), name, labels).unwrap_or(0.0)
}

/// Waits until `metric` reaches `want` (deadline `limit`).
fn wait_metric_at_least(server: &Server, name: &str, labels: &[&str], want: f64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while metric(server, name, labels) < want {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} did not reach {want}\n--- server log ---\n{}",
            server.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn the_plugin_attaches_customer_data_and_priority_that_reach_the_agent() {
    let ports = Ports::block(60);
    let phone_port = ports.peer(6);
    let server = Server::start(plugin_config(
        ports,
        phone_port,
        "call_incoming = { service = \"crm.lookup\", deadline_ms = 2000 }\n\
         call_ended = \"crm.lookup\"\n",
    ));
    let mut plugin = Py::serve(
        &server,
        "plugin v1",
        ports.peer(12),
        &[
            "--version",
            "1.0",
            "--priority",
            "1",
            "--priority-for",
            "c1-1=9",
        ],
    );

    // alice is logged in but not ready: both callers wait, c0 first.
    agent(&server, &["login"]);
    let phone = Sipp::new(&server, "acd_agent_hangup.xml")
        .local_port(phone_port)
        .calls(2)
        .timeout(Duration::from_secs(40));
    let phone_run = std::thread::spawn(move || phone.run());
    let caller = |i: u16| {
        Sipp::new(&server, "acd_uac_wait.xml")
            .local_port(ports.peer(i * 3))
            .key("caller", format!("c{i}"))
            .timeout(Duration::from_secs(40))
    };
    let c0 = caller(0);
    let c0_run = std::thread::spawn(move || c0.run());
    plugin.wait_for(
        "call_incoming",
        |j| j["caller"].as_str() == Some("c0-1"),
        Duration::from_secs(10),
        &server,
    );
    let q = ["queue=\"sales\""];
    wait_metric_at_least(
        &server,
        "caruso_acd_calls_queued_total",
        &q,
        1.0,
        Duration::from_secs(10),
    );
    let c1 = caller(1);
    let c1_run = std::thread::spawn(move || c1.run());
    wait_metric_at_least(
        &server,
        "caruso_acd_calls_queued_total",
        &q,
        2.0,
        Duration::from_secs(10),
    );

    // Ready: the first offer is c1 (priority 9 over c0's 1), with the plug-in's data.
    let mut events = Events::start(&server, &["--timeout", "30"]);
    events.wait("event=state", Duration::from_secs(10));
    agent(&server, &["ready"]);
    let first = events.wait("event=offered", Duration::from_secs(10));
    let second = events.wait("event=offered", Duration::from_secs(20));
    let (c0, c1) = (c0_run.join().expect("c0"), c1_run.join().expect("c1"));
    let phone = phone_run.join().expect("phone");
    let ctx = format!(
        "--- events ---\n{}\n--- c0 ---\n{c0}\n--- c1 ---\n{c1}\n--- phone ---\n{phone}\n--- server log ---\n{}",
        events.seen.join("\n"),
        server.log_tail(60)
    );
    let (_, first) = first.unwrap_or_else(|| panic!("no offered event\n{ctx}"));
    let (_, second) = second.unwrap_or_else(|| panic!("no second offered event\n{ctx}"));
    assert_eq!(
        field(&first, "caller_number").as_deref(),
        Some("c1-1"),
        "{first}\n{ctx}"
    );
    assert_eq!(
        field(&first, "data.customer_id").as_deref(),
        Some("cust-c1-1"),
        "{first}"
    );
    assert_eq!(
        field(&first, "data.customer_name").as_deref(),
        Some("Customer c1-1"),
        "{first}"
    );
    assert_eq!(
        field(&first, "data.plugin_version").as_deref(),
        Some("1.0"),
        "{first}"
    );
    assert_eq!(
        field(&first, "data.priority").as_deref(),
        Some("9"),
        "{first}"
    );
    assert_eq!(
        field(&second, "caller_number").as_deref(),
        Some("c0-1"),
        "{second}"
    );
    assert_eq!(
        field(&second, "data.customer_id").as_deref(),
        Some("cust-c0-1"),
        "{second}"
    );
    assert_eq!(
        field(&second, "data.priority").as_deref(),
        Some("1"),
        "{second}"
    );
    assert!(
        c0.all_succeeded(1) && c1.all_succeeded(1),
        "both callers served\n{ctx}"
    );
    assert!(phone.all_succeeded(2), "{ctx}");

    // The plug-in saw both calls come in (with the number called) and end.
    let incoming = plugin.all("call_incoming");
    assert_eq!(incoming.len(), 2, "{incoming:?}");
    assert!(incoming.iter().all(|j| j["called"].as_str() == Some("100")));
    assert!(incoming
        .iter()
        .all(|j| j["deadline_ms"].as_f64() == Some(2000.0)));
    for c in ["c0-1", "c1-1"] {
        let id = incoming
            .iter()
            .find(|j| j["caller"].as_str() == Some(c))
            .and_then(|j| j["call_id"].as_str())
            .unwrap_or_default()
            .to_string();
        let (_, ended) = plugin.wait_for(
            "call_ended",
            |j| j["call_id"].as_str() == Some(id.as_str()),
            // The callers have hung up: call.ended comes at hang-up, well before the
            // 6.4 s linger ends.
            Duration::from_secs(3),
            &server,
        );
        assert_eq!(ended["number"].as_str(), Some("100"));
        assert_eq!(ended["answered"].as_bool(), Some(true));
    }
    let ok = ["hook=\"call.incoming\"", "outcome=\"ok\""];
    assert_eq!(metric(&server, "caruso_hook_calls_total", &ok), 2.0);
    wait_metric_at_least(
        &server,
        "caruso_hook_calls_total",
        &["hook=\"call.ended\"", "outcome=\"ok\""],
        2.0,
        Duration::from_secs(5),
    );
}

#[test]
fn a_plugin_without_keepalives_disappears_within_its_ttl_and_a_new_version_takes_over() {
    let ports = Ports::block(60);
    let server = Server::start(plugin_config(
        ports,
        ports.peer(6),
        "call_incoming = { service = \"crm.lookup\", deadline_ms = 2000 }\n",
    ));
    const TTL_MS: u64 = 1500;
    let ttl = TTL_MS.to_string();
    let mut v1 = Py::serve(
        &server,
        "plugin v1",
        ports.peer(12),
        &["--version", "1.0", "--ttl-ms", &ttl],
    );
    let (_, reg1) = v1.wait_for("registered", |_| true, Duration::from_secs(1), &server);
    assert_eq!(
        reg1["ttl_ms"].as_f64(),
        Some(TTL_MS as f64),
        "the granted TTL"
    );
    let v1_id = reg1["instance_id"].as_str().unwrap_or_default().to_string();
    let mut watch = Py::spawn(&server, "watch", &["watch", "--name", "crm.lookup"]);
    watch.wait_line("kind", "SYNCED", |_| true, Duration::from_secs(20), &server);
    let first = watch.seen[0].1.clone();
    assert_eq!(first["kind"].as_str(), Some("ADDED"), "{first:?}");
    assert_eq!(first["instance"]["id"].as_str(), Some(v1_id.as_str()));

    // Calls keep coming (two a second, each through the hook) while v2 registers and
    // v1 stops its keep-alives.
    let calls = Sipp::new(&server, "acd_uac_wait.xml")
        .arg("-s")
        .arg("200")
        .key("caller", "k")
        .calls(20)
        .rate(2)
        .timeout(Duration::from_secs(60));
    let calls_run = std::thread::spawn(move || calls.run());
    v1.wait_for("call_incoming", |_| true, Duration::from_secs(10), &server);
    let mut v2 = Py::serve(
        &server,
        "plugin v2",
        ports.peer(14),
        &["--version", "2.0", "--ttl-ms", &ttl],
    );
    let (_, reg2) = v2.wait_for("registered", |_| true, Duration::from_secs(1), &server);
    let v2_id = reg2["instance_id"].as_str().unwrap_or_default().to_string();
    watch.wait_line(
        "kind",
        "ADDED",
        |j| j["instance"]["id"].as_str() == Some(v2_id.as_str()),
        Duration::from_secs(5),
        &server,
    );
    v2.wait_for("call_incoming", |_| true, Duration::from_secs(10), &server);

    let stopped = Instant::now();
    v1.send("stop-keepalive");
    let (removed_at, removed) = watch.wait_line(
        "kind",
        "REMOVED",
        |j| j["instance"]["id"].as_str() == Some(v1_id.as_str()),
        Duration::from_secs(10),
        &server,
    );
    assert_eq!(removed["reason"].as_str(), Some("EXPIRED"), "{removed:?}");
    let gone_after = removed_at.duration_since(stopped);
    assert!(
        gone_after <= Duration::from_millis(TTL_MS + 300),
        "v1 removed {gone_after:?} after its last keep-alive could have been sent (TTL {TTL_MS} ms)"
    );
    let listed = lookup(&server, "crm.lookup");
    assert_eq!(
        listed,
        vec![(v2_id.clone(), "2.0".to_string())],
        "Lookup lists only v2"
    );

    let result = calls_run.join().expect("calls");
    let ctx = format!("{result}\n--- server log ---\n{}", server.log_tail(40));
    assert!(
        result.all_succeeded(20),
        "no call failed during the replacement\n{ctx}"
    );
    // Both versions served calls; after v1 was gone only v2 did.
    let after: Vec<f64> = v2
        .all("call_incoming")
        .iter()
        .filter_map(|j| j["t"].as_f64())
        .collect();
    let v1_calls = v1.all("call_incoming");
    assert!(!v1_calls.is_empty() && !after.is_empty(), "{ctx}");
    let removed_wall = v1_calls
        .iter()
        .filter_map(|j| j["t"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        after.iter().any(|t| *t > removed_wall),
        "v2 took calls after v1's last one\n{ctx}"
    );
    assert_eq!(
        metric(
            &server,
            "caruso_hook_calls_total",
            &["hook=\"call.incoming\"", "outcome=\"ok\""]
        ),
        20.0,
        "every call got its answer from one version or the other\n{ctx}"
    );
    assert_eq!(
        metric(
            &server,
            "caruso_registry_removed_total",
            &["reason=\"expired\""]
        ),
        1.0
    );

    // v2 deregisters: Watch sees it leave at once; with nobody registered a call goes on
    // unchanged (no_instance).
    v2.send("deregister");
    v2.wait_for("deregistered", |_| true, Duration::from_secs(5), &server);
    let (_, gone) = watch.wait_line(
        "kind",
        "REMOVED",
        |j| j["instance"]["id"].as_str() == Some(v2_id.as_str()),
        Duration::from_secs(5),
        &server,
    );
    assert_eq!(gone["reason"].as_str(), Some("DEREGISTERED"));
    assert!(lookup(&server, "crm.lookup").is_empty());
    let one = Sipp::new(&server, "acd_uac_wait.xml")
        .arg("-s")
        .arg("200")
        .key("caller", "z")
        .timeout(Duration::from_secs(20))
        .run();
    assert!(one.all_succeeded(1), "{one}");
    assert_eq!(
        metric(
            &server,
            "caruso_hook_calls_total",
            &["hook=\"call.incoming\"", "outcome=\"no_instance\""]
        ),
        1.0
    );
}

#[test]
fn a_hook_that_sleeps_past_its_deadline_does_not_hold_the_call_up() {
    const DEADLINE_MS: u64 = 300;
    let ports = Ports::block(60);
    let phone_port = ports.peer(6);
    let server = Server::start(plugin_config(
        ports,
        phone_port,
        &format!("deadline_ms = {DEADLINE_MS}\ncall_incoming = \"crm.lookup\"\n"),
    ));
    let mut plugin = Py::serve(
        &server,
        "slow plugin",
        ports.peer(12),
        &["--delay-ms", "3000"],
    );
    agent(&server, &["login"]);
    agent(&server, &["ready"]);
    let phone = Sipp::new(&server, "acd_agent_hangup.xml")
        .local_port(phone_port)
        .timeout(Duration::from_secs(30));
    let phone_run = std::thread::spawn(move || phone.run());
    let mut events = Events::start(&server, &["--until", "offered", "--timeout", "30"]);
    events.wait("event=state", Duration::from_secs(10));

    let caller = Sipp::new(&server, "acd_uac_wait.xml")
        .key("caller", "s")
        .timeout(Duration::from_secs(30));
    let t0 = Instant::now();
    let caller_run = std::thread::spawn(move || caller.run());
    let offered = events.wait("event=offered", Duration::from_secs(10));
    let caller = caller_run.join().expect("caller");
    let phone = phone_run.join().expect("phone");
    let ctx = format!(
        "--- caller ---\n{caller}\n--- phone ---\n{phone}\n--- server log ---\n{}",
        server.log_tail(40)
    );
    let (at, line) = offered.unwrap_or_else(|| panic!("the call was never offered\n{ctx}"));
    let took = at.duration_since(t0);
    // The flow waited for the hook (at least the deadline), then went on without it.
    assert!(
        took >= Duration::from_millis(DEADLINE_MS),
        "offered after {took:?}: before the hook's deadline?\n{ctx}"
    );
    assert!(
        took <= Duration::from_millis(DEADLINE_MS + 1200),
        "offered {took:?} after the call started: the slow plug-in (3 s) held it up\n{ctx}"
    );
    assert_eq!(field(&line, "data.customer_id"), None, "{line}");
    assert!(caller.all_succeeded(1) && phone.all_succeeded(1), "{ctx}");
    plugin.wait_for("call_incoming", |_| true, Duration::from_secs(1), &server);
    assert_eq!(
        metric(
            &server,
            "caruso_hook_calls_total",
            &["hook=\"call.incoming\"", "outcome=\"timeout\""]
        ),
        1.0,
        "{}",
        server.metrics()
    );
    assert!(
        server.log_tail(200).contains("plug-in missed its deadline"),
        "the timeout is logged\n{ctx}"
    );
}

/// `plugin.py lookup --name NAME`: (id, restored) of each instance.
fn lookup_restored(server: &Server, name: &str) -> Vec<(String, bool)> {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/python/plugin.py"))
        .args(["--server", &server.grpc_addr(), "lookup", "--name", name])
        .output()
        .expect("run plugin.py lookup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lookup failed: {text}");
    let j = Json::parse(text.trim()).expect("lookup JSON");
    j["instances"]
        .as_array()
        .unwrap_or(&[])
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap_or("").to_string(),
                i["restored"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn registrations_survive_a_restart_and_lapse_one_ttl_later_without_keepalives() {
    let ports = Ports::block(60);
    let mut server = Server::start(plugin_config(
        ports,
        ports.peer(6),
        "call_incoming = { service = \"crm.lookup\", deadline_ms = 2000 }\n",
    ));
    const TTL_MS: u64 = 4000;
    let ttl = TTL_MS.to_string();
    let mut alive = Py::serve(&server, "alive", ports.peer(12), &["--ttl-ms", &ttl]);
    let mut quiet = Py::serve(&server, "quiet", ports.peer(14), &["--ttl-ms", &ttl]);
    let id_of = |p: &mut Py| {
        p.all("registered")[0]["instance_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (alive_id, quiet_id) = (id_of(&mut alive), id_of(&mut quiet));
    quiet.send("stop-keepalive");
    quiet.wait_for(
        "keepalive_stopped",
        |_| true,
        Duration::from_secs(5),
        &server,
    );

    // A clean restart: both registrations come back from the store.
    assert!(
        server.terminate(Duration::from_secs(10)).is_some(),
        "clean exit"
    );
    server.restart();
    let restarted = Instant::now();
    let back: Vec<String> = lookup_restored(&server, "crm.lookup")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        back.contains(&alive_id) && back.contains(&quiet_id),
        "both instances restored: {back:?}\n{}",
        server.log_tail(30)
    );

    // The quiet one is gone one TTL after the restart; the other kept its lease by
    // keep-alives with its old id (nothing else) and is no longer marked restored.
    let deadline = restarted + Duration::from_millis(TTL_MS + 3000);
    let left = loop {
        let now = lookup_restored(&server, "crm.lookup");
        if now.len() == 1 || Instant::now() >= deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        restarted.elapsed() >= Duration::from_millis(TTL_MS - 500),
        "the restored lease lasted a TTL ({:?})",
        restarted.elapsed()
    );
    assert_eq!(
        left,
        vec![(alive_id.clone(), false)],
        "{}",
        server.log_tail(30)
    );

    // And it serves the next call.
    let call = Sipp::new(&server, "acd_uac_wait.xml")
        .arg("-s")
        .arg("200")
        .key("caller", "r")
        .timeout(Duration::from_secs(20))
        .run();
    assert!(call.all_succeeded(1), "{call}");
    alive.wait_for(
        "call_incoming",
        |j| j["caller"].as_str() == Some("r-1"),
        Duration::from_secs(5),
        &server,
    );
}
