//! `caruso-agent agent ...` (the built binary) against a fake `caruso.v1.Agent` server on
//! 127.0.0.1: output lines, exit codes, the server's error messages, the token from the
//! environment, `events --until`, `transfer`, and the console line mode.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caruso_proto::caruso::v1::{self as pb, agent_event::Event, agent_server};
use tokio::sync::broadcast;
use tonic::codegen::tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

/// The fake server's only agent.
const TOKEN: &str = "t-alice";

#[derive(Debug)]
struct Model {
    state: pb::AgentState,
    reason: String,
    transfers: Vec<pb::transfer_request::Target>,
    wrap_ups: Vec<(String, String)>,
    /// Preview decisions: (attempt, accept, campaign).
    previews: Vec<(u64, bool, String)>,
    /// SetDisposition requests: (call asked, code, note).
    dispositions: Vec<(Option<u64>, String, String)>,
}

#[derive(Clone)]
struct Fake {
    model: Arc<Mutex<Model>>,
    events: broadcast::Sender<pb::AgentEvent>,
}

impl Fake {
    fn check<T>(req: &Request<T>) -> Result<(), Status> {
        match req.metadata().get("authorization").map(|v| v.to_str()) {
            Some(Ok(v)) if v == format!("Bearer {TOKEN}") => Ok(()),
            Some(_) => Err(Status::unauthenticated("invalid agent token")),
            None => Err(Status::unauthenticated("missing authorization")),
        }
    }

    fn status(&self) -> pb::AgentStatus {
        let m = self.model.lock().unwrap();
        pb::AgentStatus {
            agent: "alice".into(),
            name: "Alice Example".into(),
            state: m.state.into(),
            reason: m.reason.clone(),
            call: None,
            since_ms: 0,
            queues: vec!["sales".into()],
        }
    }

    /// Moves to `to` when the state is one of `from`; publishes the change.
    fn change(
        &self,
        action: &str,
        from: &[pb::AgentState],
        to: pb::AgentState,
        reason: &str,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        {
            let mut m = self.model.lock().unwrap();
            if !from.contains(&m.state) {
                return Err(Status::failed_precondition(format!(
                    "agent alice is {:?}: cannot {action}",
                    m.state
                )));
            }
            m.state = to;
            m.reason = reason.into();
        }
        let s = self.status();
        let _ = self.events.send(pb::AgentEvent {
            event: Some(Event::State(s.clone())),
        });
        Ok(Response::new(s))
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send>>;

#[tonic::async_trait]
impl agent_server::Agent for Fake {
    async fn log_in(
        &self,
        r: Request<pb::LogInRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        use pb::AgentState::*;
        self.change("log in", &[LoggedOut], NotReady, "login")
    }
    async fn log_out(
        &self,
        r: Request<pb::LogOutRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        use pb::AgentState::*;
        self.change("log out", &[Ready, NotReady, WrapUp], LoggedOut, "")
    }
    async fn set_ready(
        &self,
        r: Request<pb::SetReadyRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        use pb::AgentState::*;
        self.change("set ready", &[NotReady, WrapUp], Ready, "")
    }
    async fn set_not_ready(
        &self,
        r: Request<pb::SetNotReadyRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        let reason = r.into_inner().reason;
        if reason != "break" && reason != "lunch" {
            return Err(Status::failed_precondition(format!(
                "unknown not-ready reason {reason:?} (configured: break, lunch)"
            )));
        }
        use pb::AgentState::*;
        self.change(
            "set not ready",
            &[Ready, NotReady, WrapUp],
            NotReady,
            &reason,
        )
    }
    async fn end_wrap_up(
        &self,
        r: Request<pb::EndWrapUpRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        let req = r.into_inner();
        let res = self.change(
            "end wrap-up",
            &[pb::AgentState::WrapUp],
            pb::AgentState::Ready,
            "",
        );
        if res.is_ok() {
            let mut m = self.model.lock().unwrap();
            m.wrap_ups.push((req.disposition, req.note));
        }
        res
    }
    async fn set_disposition(
        &self,
        r: Request<pb::SetDispositionRequest>,
    ) -> Result<Response<pb::SetDispositionResponse>, Status> {
        Self::check(&r)?;
        let req = r.into_inner();
        // The fake agent's recent calls: 7 (the newest) and 5.
        let call = match req.call {
            None => 7,
            Some(c @ (5 | 7)) => c,
            Some(c) => {
                return Err(Status::not_found(format!(
                    "call {c} is not one of agent alice's last 8 calls (recent: 7, 5)"
                )))
            }
        };
        self.model
            .lock()
            .unwrap()
            .dispositions
            .push((req.call, req.disposition, req.note));
        Ok(Response::new(pb::SetDispositionResponse { call }))
    }
    async fn transfer(
        &self,
        r: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        Self::check(&r)?;
        let target = r
            .into_inner()
            .target
            .ok_or_else(|| Status::invalid_argument("transfer needs a target"))?;
        if target == pb::transfer_request::Target::Queue("nowhere".into()) {
            return Err(Status::not_found("unknown transfer target queue nowhere"));
        }
        self.model.lock().unwrap().transfers.push(target);
        Ok(Response::new(pb::TransferResponse {}))
    }
    async fn get_status(
        &self,
        r: Request<pb::GetAgentStatusRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Self::check(&r)?;
        Ok(Response::new(self.status()))
    }

    async fn decide_preview(
        &self,
        r: Request<pb::DecidePreviewRequest>,
    ) -> Result<Response<pb::DecidePreviewResponse>, Status> {
        Self::check(&r)?;
        let req = r.into_inner();
        if req.attempt != 7 {
            return Err(Status::not_found(format!(
                "no preview offer {} is pending",
                req.attempt
            )));
        }
        let mut m = self.model.lock().unwrap();
        m.previews.push((req.attempt, req.accept, req.campaign));
        Ok(Response::new(pb::DecidePreviewResponse {}))
    }

    type EventsStream = Events;

    async fn events(&self, r: Request<pb::AgentEventsRequest>) -> Result<Response<Events>, Status> {
        Self::check(&r)?;
        let mut rx = self.events.subscribe();
        let first = pb::AgentEvent {
            event: Some(Event::State(self.status())),
        };
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            while let Ok(e) = rx.recv().await {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

struct Server {
    addr: SocketAddr,
    fake: Fake,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn send(&self, event: Event) {
        self.fake
            .events
            .send(pb::AgentEvent { event: Some(event) })
            .expect("a subscriber");
    }

    fn subscribers(&self) -> usize {
        self.fake.events.receiver_count()
    }
}

async fn start(state: pb::AgentState) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fake = Fake {
        model: Arc::new(Mutex::new(Model {
            state,
            reason: String::new(),
            transfers: Vec::new(),
            wrap_ups: Vec::new(),
            previews: Vec::new(),
            dispositions: Vec::new(),
        })),
        events: broadcast::channel(64).0,
    };
    let svc = agent_server::AgentServer::new(fake.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Server { addr, fake }
}

/// The binary with `agent --server <url>`, without any inherited token.
fn agent(server: &Server) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_caruso-agent"));
    c.env_remove("CARUSO_AGENT_TOKEN")
        .arg("agent")
        .arg("--server")
        .arg(server.url());
    c
}

/// Runs the command to completion off the runtime's threads.
async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run caruso-agent"))
        .await
        .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_commands_print_the_status_and_errors_exit_non_zero() {
    let s = start(pb::AgentState::LoggedOut).await;

    let mut c = agent(&s);
    c.args(["--token", TOKEN, "ready"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("FAILED_PRECONDITION: agent alice is LoggedOut: cannot set ready"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let mut c = agent(&s);
    c.args(["--token", "t-mallory", "login"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("UNAUTHENTICATED: invalid agent token"));

    let mut c = agent(&s);
    c.arg("login");
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("CARUSO_AGENT_TOKEN"));

    // The token from the environment.
    let mut c = agent(&s);
    c.env("CARUSO_AGENT_TOKEN", TOKEN).arg("login");
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "agent=alice state=not-ready reason=login call= since_ms=0 queues=sales \
         name=\"Alice Example\"\n"
    );

    let mut c = agent(&s);
    c.args(["--token", TOKEN, "not-ready", "nap"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown not-ready reason \"nap\""));

    for (args, state) in [
        (vec!["ready"], "state=ready reason= "),
        (vec!["not-ready", "lunch"], "state=not-ready reason=lunch "),
        (vec!["status"], "state=not-ready reason=lunch "),
        (vec!["logout"], "state=logged-out "),
    ] {
        let mut c = agent(&s);
        c.args(["--token", TOKEN]).args(&args);
        let out = run(c).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(state),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    assert_eq!(
        s.fake.model.lock().unwrap().state,
        pb::AgentState::LoggedOut
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_and_wrap_up_reach_the_server() {
    let s = start(pb::AgentState::WrapUp).await;
    let mut c = agent(&s);
    c.args(["--token", TOKEN, "transfer", "--agent", "bob"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "transferred=true agent=bob\n");

    let mut c = agent(&s);
    c.args(["--token", TOKEN, "transfer", "--queue", "nowhere"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("NOT_FOUND: unknown transfer target queue nowhere"));

    let mut c = agent(&s);
    c.args([
        "--token",
        TOKEN,
        "wrap-up",
        "--disposition",
        "sale",
        "--note",
        "two licences",
    ]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("state=ready"));
    let m = s.fake.model.lock().unwrap();
    assert_eq!(
        m.transfers,
        [pb::transfer_request::Target::Agent("bob".into())]
    );
    assert_eq!(
        m.wrap_ups,
        [("sale".to_string(), "two licences".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_decisions_reach_the_server_and_refusals_exit_non_zero() {
    let s = start(pb::AgentState::Ready).await;
    let mut c = agent(&s);
    c.args(["--token", TOKEN, "preview", "accept", "7"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "preview=accepted attempt=7\n");
    let mut c = agent(&s);
    c.args([
        "--token",
        TOKEN,
        "preview",
        "skip",
        "7",
        "--campaign",
        "demo",
    ]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "preview=skipped attempt=7\n");
    let mut c = agent(&s);
    c.args(["--token", TOKEN, "preview", "accept", "8"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("NOT_FOUND: no preview offer 8 is pending"));
    assert_eq!(
        s.fake.model.lock().unwrap().previews,
        [(7, true, String::new()), (7, false, "demo".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disposition_reaches_the_server_in_any_state() {
    let s = start(pb::AgentState::Ready).await;
    let mut c = agent(&s);
    c.args([
        "--token",
        TOKEN,
        "disposition",
        "sale",
        "--note",
        "gold plan",
    ]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "disposition=sale call=7\n");

    let mut c = agent(&s);
    c.args(["--token", TOKEN, "disposition", "no sale", "--call", "5"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "disposition=\"no sale\" call=5\n");

    let mut c = agent(&s);
    c.args(["--token", TOKEN, "disposition", "sale", "--call", "1"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NOT_FOUND: call 1 is not one of agent alice's last 8 calls"),
        "{}",
        text(&out.stderr)
    );
    let m = s.fake.model.lock().unwrap();
    assert_eq!(
        m.dispositions,
        [
            (None, "sale".to_string(), "gold plan".to_string()),
            (Some(5), "no sale".to_string(), String::new())
        ]
    );
    assert_eq!(m.state, pb::AgentState::Ready, "no state change");
}

/// Waits until the server has `n` event subscribers.
async fn subscribed(s: &Server, n: usize) {
    for _ in 0..500 {
        if s.subscribers() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the client never subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_until_connected_prints_each_event_and_exits() {
    let s = start(pb::AgentState::Ready).await;
    let mut c = agent(&s);
    c.args([
        "--token",
        TOKEN,
        "events",
        "--until",
        "connected",
        "--timeout",
        "20",
    ]);
    let child = tokio::task::spawn_blocking(move || c.output().expect("run"));
    subscribed(&s, 1).await;
    s.send(Event::Offered(pb::CallOffered {
        call: 7,
        caller_number: "5551000".into(),
        caller_name: "Bob Caller".into(),
        queue: "sales".into(),
        waited_ms: 4200,
        data: [("account".to_string(), "A-1007".to_string())].into(),
    }));
    s.send(Event::Connected(pb::CallConnected { call: 7 }));
    s.send(Event::Ended(pb::CallEnded { call: 7 }));
    let out = child.await.expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("event=state agent=alice state=ready "),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        "event=offered call=7 caller_number=5551000 caller_name=\"Bob Caller\" queue=sales \
         waited_ms=4200 data.account=A-1007"
    );
    assert_eq!(lines[2], "event=connected call=7");

    // --count stops after N events (the current state counts as the first).
    let mut c = agent(&s);
    c.args(["--token", TOKEN, "events", "--count", "1"]);
    let out = run(c).await;
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 1);

    // A goal not reached in time: exit code 2.
    let mut c = agent(&s);
    c.args([
        "--token",
        TOKEN,
        "events",
        "--until",
        "ended",
        "--timeout",
        "0.3",
    ]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"));
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logs_in_shows_events_and_runs_commands() {
    let s = start(pb::AgentState::LoggedOut).await;
    let mut c = agent(&s);
    c.args(["--token", TOKEN, "console"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn console");
    let mut stdin = child.stdin.take().expect("stdin");
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        let mut seen = Vec::new();
        loop {
            match line_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line with {needle:?}; saw {seen:?}"),
            }
        }
    };
    let wait = |needle: &str| tokio::task::block_in_place(|| wait_for(needle));

    // Logged out at start: the console logs in; the stream shows the state.
    assert_eq!(wait("[state]"), "[state] not-ready (login)");
    writeln!(stdin, "ready").unwrap();
    assert_eq!(wait("[state]"), "[state] ready");
    s.send(Event::Offered(pb::CallOffered {
        call: 3,
        caller_number: "5552000".into(),
        caller_name: String::new(),
        queue: "sales".into(),
        waited_ms: 1500,
        data: Default::default(),
    }));
    assert_eq!(
        wait("[offered]"),
        "[offered] call 3 from 5552000 via queue sales, waited 1.5s"
    );
    writeln!(stdin, "status").unwrap();
    assert_eq!(
        wait("[status]"),
        "[status] ready | call 3 from 5552000 via sales"
    );
    writeln!(stdin, "not-ready nap").unwrap();
    assert!(wait("[error]").contains("unknown not-ready reason \"nap\""));
    writeln!(stdin, "dance").unwrap();
    assert!(wait("[error]").contains("unknown command \"dance\""));
    writeln!(stdin, "transfer number +15551234").unwrap();
    assert_eq!(
        wait("[transfer]"),
        "[transfer] transferred=true number=+15551234"
    );
    writeln!(stdin, "quit").unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert!(status.success());
    assert_eq!(
        s.fake.model.lock().unwrap().transfers,
        [pb::transfer_request::Target::Number("+15551234".into())]
    );
}
