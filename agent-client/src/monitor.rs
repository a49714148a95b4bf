//! The supervisor's wallboard: `caruso-agent monitor --token T [--queue Q] [--agent A]`
//! over `caruso.v1.Monitor`.
//!
//! - no mode flag: a live terminal wallboard (queues with waiting calls, longest wait,
//!   service level and expected wait; agents grouped by state), redrawn with plain ANSI
//!   escapes on every change and every second, until Ctrl-C;
//! - `--once`: one snapshot printed as text, then exit;
//! - `--events N`: one `key=value` line for the first snapshot, then one per change,
//!   until N changes were printed (for scripts and tests).
//!
//! The client keeps its own copy of the model: the first snapshot, then every change.
//! Each change names the `seq` of the previous message on the stream (`prev_seq`); when
//! that is not the last `seq` received, the client missed something: it prints
//! `event=gap` (in `--events` mode), watches again and continues from the new snapshot.
//! A stream cut off for reading too slowly (RESOURCE_EXHAUSTED) is re-opened the same way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};
use caruso_proto::caruso::v1::{self as pb, monitor_client::MonitorClient, monitor_event::Event};
use clap::Args;
use tonic::codegen::InterceptedService;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::agent::{quote, state_name, status_error};

/// Environment variable holding the supervisor's token when `--token` is not given.
pub const TOKEN_ENV: &str = "CARUSO_MONITOR_TOKEN";

/// `caruso-agent monitor ...` arguments.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// A supervisor (or admin) token; default: $CARUSO_MONITOR_TOKEN, then the global
    /// --token / $CARUSO_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// Show only this queue (and its agents); repeatable.
    #[arg(long = "queue")]
    queues: Vec<String>,
    /// Show only this agent; repeatable.
    #[arg(long = "agent")]
    agents: Vec<String>,
    /// Print one snapshot as text and exit.
    #[arg(long, conflicts_with = "events")]
    once: bool,
    /// Print the snapshot and then this many changes as `key=value` lines, then exit.
    #[arg(long)]
    events: Option<u64>,
    /// With --events: give up after this many seconds (exit code 2).
    #[arg(long)]
    timeout: Option<f64>,
}

/// Adds `authorization: Bearer <token>` to every call when a token was given.
#[derive(Debug, Clone)]
struct MaybeBearer(Option<AsciiMetadataValue>);

impl Interceptor for MaybeBearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The Monitor client type.
type Client = MonitorClient<InterceptedService<Channel, MaybeBearer>>;

/// Runs `caruso-agent monitor ...` (token: `--token`, else $CARUSO_MONITOR_TOKEN, else
/// `fallback`: the global `--token` or $CARUSO_TOKEN); the exit code on success (2:
/// `--events` timed out).
pub async fn run(
    args: MonitorArgs,
    fallback: Option<String>,
    channel: Channel,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .or(fallback);
    let value = match token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse::<AsciiMetadataValue>()
                .context("the token contains characters not allowed in gRPC metadata")?,
        ),
        None => None,
    };
    let mut c = MonitorClient::with_interceptor(channel, MaybeBearer(value));
    if args.once {
        let req = pb::MonitorSnapshotRequest {
            queues: args.queues.clone(),
            agents: args.agents.clone(),
        };
        let snap = match tokio::time::timeout(timeout, c.snapshot(req)).await {
            Err(_) => bail!("Snapshot: no answer within {timeout:?}"),
            Ok(Err(s)) => bail!("{}", status_error(&s)),
            Ok(Ok(r)) => r.into_inner(),
        };
        let mut board = Board::default();
        board.load(&snap);
        print!("{}", board.render(snap.at_unix_ms));
        return Ok(0);
    }
    match args.events {
        Some(n) => {
            let limit = args.timeout.map(Duration::from_secs_f64);
            match limit {
                Some(l) => match tokio::time::timeout(l, print_events(&mut c, &args, n)).await {
                    Ok(r) => r,
                    Err(_) => {
                        eprintln!("timed out before {n} changes");
                        Ok(2)
                    }
                },
                None => print_events(&mut c, &args, n).await,
            }
        }
        None => wallboard(&mut c, &args).await,
    }
}

/// Opens a Watch stream.
async fn watch(
    c: &mut Client,
    args: &MonitorArgs,
) -> anyhow::Result<tonic::Streaming<pb::MonitorEvent>> {
    let req = pb::MonitorWatchRequest {
        queues: args.queues.clone(),
        agents: args.agents.clone(),
    };
    match c.watch(req).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) => bail!("{}", status_error(&s)),
    }
}

/// What reading the stream gave.
enum Next {
    /// A message, applied to the board.
    Applied(Box<pb::MonitorEvent>),
    /// A message whose `prev_seq` is not the last `seq`: watch again.
    Gap {
        /// The last seq received.
        expected: u64,
        /// The message's prev_seq.
        got: u64,
    },
    /// The server cut the stream off (too slow): watch again.
    Cut(String),
}

/// Reads the next message and applies it.
async fn next(
    stream: &mut tonic::Streaming<pb::MonitorEvent>,
    board: &mut Board,
) -> anyhow::Result<Next> {
    match stream.message().await {
        Ok(Some(m)) => Ok(match board.apply(&m) {
            Ok(()) => Next::Applied(Box::new(m)),
            Err((expected, got)) => Next::Gap { expected, got },
        }),
        Ok(None) => bail!("the server ended the stream"),
        Err(s) if s.code() == Code::ResourceExhausted => Ok(Next::Cut(status_error(&s))),
        Err(s) => bail!("{}", status_error(&s)),
    }
}

/// `--events N`: the snapshot line, then N change lines.
async fn print_events(c: &mut Client, args: &MonitorArgs, n: u64) -> anyhow::Result<i32> {
    let mut board = Board::default();
    let mut stream = watch(c, args).await?;
    let mut printed = 0u64;
    while printed < n {
        match next(&mut stream, &mut board).await? {
            Next::Applied(m) => {
                let snapshot = matches!(m.event, Some(Event::Snapshot(_)));
                println!("{}", event_line(&m));
                if !snapshot {
                    printed += 1;
                }
            }
            Next::Gap { expected, got } => {
                println!("event=gap expected_prev={expected} prev={got}");
                board = Board::default();
                stream = watch(c, args).await?;
            }
            Next::Cut(why) => {
                println!("event=cut status={}", quote(&why));
                board = Board::default();
                stream = watch(c, args).await?;
            }
        }
    }
    Ok(0)
}

/// The live wallboard until Ctrl-C.
async fn wallboard(c: &mut Client, args: &MonitorArgs) -> anyhow::Result<i32> {
    let mut board = Board::default();
    let mut stream = watch(c, args).await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut note = String::new();
    loop {
        tokio::select! {
            r = next(&mut stream, &mut board) => match r? {
                Next::Applied(_) => {}
                Next::Gap { expected, got } => {
                    note = format!("re-synced after a gap (prev {got}, expected {expected})");
                    board = Board::default();
                    stream = watch(c, args).await?;
                }
                Next::Cut(why) => {
                    note = format!("re-synced: {why}");
                    board = Board::default();
                    stream = watch(c, args).await?;
                }
            },
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                println!();
                return Ok(0);
            }
        }
        let mut screen = String::from("\x1b[H\x1b[2J");
        screen.push_str(&board.render(board.server_now()));
        if !note.is_empty() {
            let _ = writeln!(screen, "\n({note})");
        }
        print!("{screen}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
}

/// One queue as the client holds it.
#[derive(Debug, Clone, Default)]
struct QueueRow {
    figures: pb::QueueFigures,
    calls: Vec<pb::QueuedCall>,
}

/// The client's copy of the model.
#[derive(Debug, Default)]
struct Board {
    seq: u64,
    started: bool,
    today: String,
    /// Server time minus local time at the last message (ms), to tick waits between
    /// messages on the server's clock.
    offset_ms: i64,
    agents: BTreeMap<String, pb::MonitorAgent>,
    queues: Vec<QueueRow>,
    campaigns: BTreeMap<String, pb::MonitorCampaign>,
    server: pb::ServerFigures,
}

fn local_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Board {
    /// Replaces everything with a snapshot.
    fn load(&mut self, s: &pb::MonitorSnapshot) {
        self.seq = s.seq;
        self.started = true;
        self.today = s.today.clone();
        self.agents = s
            .agents
            .iter()
            .map(|a| (a.agent.clone(), a.clone()))
            .collect();
        self.queues = s
            .queues
            .iter()
            .map(|q| QueueRow {
                figures: q.figures.clone().unwrap_or_default(),
                calls: q.calls.clone(),
            })
            .collect();
        self.campaigns = s
            .campaigns
            .iter()
            .map(|c| (c.campaign.clone(), c.clone()))
            .collect();
        self.server = s.server.unwrap_or_default();
    }

    /// The server's clock now (its last message's time plus the local time since).
    fn server_now(&self) -> u64 {
        u64::try_from(local_ms().saturating_add(self.offset_ms)).unwrap_or(0)
    }

    /// Applies one message; `Err((last seq, prev_seq))` on a gap (nothing applied).
    fn apply(&mut self, m: &pb::MonitorEvent) -> Result<(), (u64, u64)> {
        let Some(event) = &m.event else {
            return Ok(());
        };
        if let Event::Snapshot(s) = event {
            self.load(s);
            self.offset_ms = i64::try_from(m.at_unix_ms).unwrap_or(0) - local_ms();
            return Ok(());
        }
        if !self.started || m.prev_seq != self.seq {
            return Err((self.seq, m.prev_seq));
        }
        self.seq = m.seq;
        self.offset_ms = i64::try_from(m.at_unix_ms).unwrap_or(0) - local_ms();
        match event {
            Event::Snapshot(_) => {}
            Event::Agent(a) => {
                if let Some(a) = &a.agent {
                    self.agents.insert(a.agent.clone(), a.clone());
                }
            }
            Event::Queue(q) => {
                if let Some(f) = &q.figures {
                    match self.queues.iter_mut().find(|r| r.figures.queue == f.queue) {
                        Some(r) => r.figures = f.clone(),
                        None => self.queues.push(QueueRow {
                            figures: f.clone(),
                            calls: Vec::new(),
                        }),
                    }
                }
            }
            Event::CallJoined(j) => {
                if let (Some(r), Some(call)) = (
                    self.queues.iter_mut().find(|r| r.figures.queue == j.queue),
                    &j.call,
                ) {
                    r.calls.push(call.clone());
                    sort_calls(&mut r.calls);
                }
            }
            Event::CallLeft(l) => {
                if let Some(r) = self.queues.iter_mut().find(|r| r.figures.queue == l.queue) {
                    r.calls.retain(|c| c.call != l.call);
                    sort_calls(&mut r.calls);
                }
            }
            Event::Server(s) => {
                if let Some(f) = s.figures {
                    self.server = f;
                }
            }
            Event::Campaign(c) => {
                if let Some(c) = &c.campaign {
                    self.campaigns.insert(c.campaign.clone(), c.clone());
                }
            }
        }
        Ok(())
    }

    /// The wallboard as text at server time `now_ms`.
    fn render(&self, now_ms: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "caruso wallboard  {}  seq {}  active calls {}  registrations {}",
            self.today, self.seq, self.server.active_calls, self.server.registrations
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<16} {:>4} {:>7} {:>5} {:>4} {:>4} {:>7} {:>8} {:>9} {:>5} {:>5}",
            "QUEUE",
            "WAIT",
            "LONGEST",
            "READY",
            "BUSY",
            "AWAY",
            "OFFERED",
            "ANSWERED",
            "ABANDONED",
            "SL",
            "EWT"
        );
        for q in &self.queues {
            let f = &q.figures;
            let longest = f
                .oldest_queued_at_unix_ms
                .map_or(0, |t| now_ms.saturating_sub(t));
            let sl = f
                .service_level
                .map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0));
            let _ = writeln!(
                out,
                "{:<16} {:>4} {:>7} {:>5} {:>4} {:>4} {:>7} {:>8} {:>9} {:>5} {:>5}",
                f.queue,
                f.waiting,
                clock(longest),
                f.agents_ready,
                f.agents_busy,
                f.agents_away,
                f.offered_today,
                f.answered_today,
                f.abandoned_today,
                sl,
                clock(f.expected_wait_ms)
            );
            for c in &q.calls {
                let ringing = self.ringing(c.call);
                let _ = writeln!(
                    out,
                    "    #{:<3} call {:<8} waiting {:>6}{}{}",
                    position(&q.calls, c.call),
                    c.call,
                    clock(now_ms.saturating_sub(c.queued_at_unix_ms)),
                    if c.priority != 0 {
                        format!("  priority {}", c.priority)
                    } else {
                        String::new()
                    },
                    if ringing.is_empty() {
                        String::new()
                    } else {
                        format!("  ringing {}", ringing.join(", "))
                    }
                );
            }
        }
        if !self.campaigns.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<16} {:<9} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8} {:>9} {:>5}  TODAY DIALED/HUMAN/MACHINE/ABANDON",
                "CAMPAIGN",
                "STATE",
                "DIALED",
                "LIVE",
                "HUMAN",
                "MACHINE",
                "NO ANS",
                "ABANDON",
                "ABANDON %",
                "LEFT"
            );
            for c in self.campaigns.values() {
                let _ = writeln!(
                    out,
                    "{:<16} {:<9} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8} {:>8.2}% {:>5}  {}",
                    c.campaign,
                    c.state,
                    c.dialed,
                    c.in_flight,
                    c.human,
                    c.machine,
                    c.no_answer,
                    c.abandoned,
                    c.abandon_rate_percent,
                    c.contacts_left,
                    today_cell(c)
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "AGENTS");
        for (title, state) in [
            ("ready", pb::AgentState::Ready),
            ("ringing", pb::AgentState::Reserved),
            ("on call", pb::AgentState::OnCall),
            ("wrap-up", pb::AgentState::WrapUp),
            ("not ready", pb::AgentState::NotReady),
            ("logged out", pb::AgentState::LoggedOut),
        ] {
            let rows: Vec<&pb::MonitorAgent> = self
                .agents
                .values()
                .filter(|a| a.state() == state)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "  {title} ({})", rows.len());
            for a in rows {
                let mut detail = Vec::new();
                if !a.reason.is_empty() {
                    detail.push(a.reason.clone());
                }
                if let Some(call) = a.call {
                    match &a.call_queue {
                        Some(q) => detail.push(format!("call {call} from {q}")),
                        None => detail.push(format!("call {call}")),
                    }
                }
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", detail.join(", "))
                };
                let _ = writeln!(
                    out,
                    "    {:<12} {:>7}  {}{}",
                    a.agent,
                    clock(now_ms.saturating_sub(a.since_unix_ms)),
                    a.name,
                    detail
                );
            }
        }
        out
    }

    fn ringing(&self, call: u64) -> Vec<String> {
        self.agents
            .values()
            .filter(|a| a.state() == pb::AgentState::Reserved && a.call == Some(call))
            .map(|a| a.agent.clone())
            .collect()
    }
}

/// Orders calls as the server positions them: higher priority, then longer wait.
fn sort_calls(calls: &mut [pb::QueuedCall]) {
    calls.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.queued_at_unix_ms, c.call));
}

fn position(calls: &[pb::QueuedCall], call: u64) -> usize {
    calls
        .iter()
        .position(|c| c.call == call)
        .map_or(0, |i| i + 1)
}

/// `m:ss` (or `h:mm:ss`) of a duration in ms.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn outcome_name(o: pb::QueueOutcome) -> &'static str {
    match o {
        pb::QueueOutcome::Unspecified => "unknown",
        pb::QueueOutcome::Answered => "answered",
        pb::QueueOutcome::Abandoned => "abandoned",
        pb::QueueOutcome::MaxWait => "max_wait",
        pb::QueueOutcome::ExitKey => "exit_key",
        pb::QueueOutcome::Other => "other",
        pb::QueueOutcome::TurnedAway => "turned-away",
    }
}

/// A message as one `event=<kind> seq=N prev=N key=value ...` line.
fn event_line(m: &pb::MonitorEvent) -> String {
    let head = |kind: &str| format!("event={kind} seq={} prev={}", m.seq, m.prev_seq);
    match &m.event {
        None => head("unknown"),
        Some(Event::Snapshot(s)) => format!(
            "{} today={} agents={} queues={} active_calls={} registrations={}",
            head("snapshot"),
            s.today,
            quote(
                &s.agents
                    .iter()
                    .map(|a| format!("{}:{}", a.agent, state_name(a.state())))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            quote(
                &s.queues
                    .iter()
                    .filter_map(|q| q.figures.as_ref())
                    .map(|f| format!("{}:{}", f.queue, f.waiting))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            s.server.map_or(0, |f| f.active_calls),
            s.server.map_or(0, |f| f.registrations),
        ),
        Some(Event::Agent(a)) => {
            let row = a.agent.clone().unwrap_or_default();
            format!(
                "{} agent={} state={} reason={} call={} call_queue={} cause={}",
                head("agent"),
                quote(&row.agent),
                state_name(row.state()),
                quote(&row.reason),
                row.call.map(|c| c.to_string()).unwrap_or_default(),
                quote(row.call_queue.as_deref().unwrap_or("")),
                quote(&a.cause)
            )
        }
        Some(Event::Queue(q)) => {
            let f = q.figures.clone().unwrap_or_default();
            format!(
                "{} queue={} waiting={} longest_wait_ms={} ready={} busy={} away={} offered={} answered={} answered_in_sl={} abandoned={} exited={} turned_away={} service_level={} expected_wait_ms={}",
                head("queue"),
                quote(&f.queue),
                f.waiting,
                f.longest_wait_ms,
                f.agents_ready,
                f.agents_busy,
                f.agents_away,
                f.offered_today,
                f.answered_today,
                f.answered_within_threshold_today,
                f.abandoned_today,
                f.exited_today,
                f.turned_away_today,
                f.service_level.map(|v| format!("{v:.3}")).unwrap_or_default(),
                f.expected_wait_ms
            )
        }
        Some(Event::CallJoined(j)) => {
            let c = j.call.clone().unwrap_or_default();
            format!(
                "{} queue={} call={} position={} priority={}",
                head("joined"),
                quote(&j.queue),
                c.call,
                c.position,
                c.priority
            )
        }
        Some(Event::CallLeft(l)) => format!(
            "{} queue={} call={} outcome={} waited_ms={} agent={}",
            head("left"),
            quote(&l.queue),
            l.call,
            outcome_name(l.outcome()),
            l.waited_ms,
            quote(l.agent.as_deref().unwrap_or(""))
        ),
        Some(Event::Server(s)) => {
            let f = s.figures.unwrap_or_default();
            format!(
                "{} active_calls={} registrations={}",
                head("server"),
                f.active_calls,
                f.registrations
            )
        }
        Some(Event::Campaign(c)) => {
            let c = c.campaign.clone().unwrap_or_default();
            format!(
                "{} campaign={} state={} dialed={} in_flight={} human={} machine={} busy={} no_answer={} abandoned={} abandon_rate_percent={:.2} contacts_left={} today={} today_dialed={} today_answered={} today_human={} today_machine={} today_abandoned={}",
                head("campaign"),
                quote(&c.campaign),
                c.state,
                c.dialed,
                c.in_flight,
                c.human,
                c.machine,
                c.busy,
                c.no_answer,
                c.abandoned,
                c.abandon_rate_percent,
                c.contacts_left,
                quote(&c.today),
                c.today_dialed,
                c.today_answered,
                c.today_human,
                c.today_machine,
                c.today_abandoned
            )
        }
    }
}

/// A campaign's figures for its local day, `dialed/human/machine/abandoned (date)`.
fn today_cell(c: &pb::MonitorCampaign) -> String {
    if c.today.is_empty() {
        return "-".into();
    }
    format!(
        "{}/{}/{}/{} ({})",
        c.today_dialed, c.today_human, c.today_machine, c.today_abandoned, c.today
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, state: pb::AgentState, call: Option<u64>) -> pb::MonitorAgent {
        pb::MonitorAgent {
            agent: id.into(),
            name: id.to_uppercase(),
            state: state.into(),
            reason: String::new(),
            call,
            call_queue: call.map(|_| "sales".to_owned()),
            since_unix_ms: 1_000,
            in_state_ms: 0,
            queues: vec!["sales".into()],
        }
    }

    fn snapshot(seq: u64) -> pb::MonitorEvent {
        pb::MonitorEvent {
            seq,
            prev_seq: 0,
            at_unix_ms: 1_000,
            event: Some(Event::Snapshot(pb::MonitorSnapshot {
                seq,
                at_unix_ms: 1_000,
                today: "2024-01-01".into(),
                agents: vec![agent("alice", pb::AgentState::Ready, None)],
                queues: vec![pb::MonitorQueue {
                    figures: Some(pb::QueueFigures {
                        queue: "sales".into(),
                        service_level: Some(0.8),
                        ..Default::default()
                    }),
                    calls: vec![],
                }],
                campaigns: vec![],
                server: Some(pb::ServerFigures {
                    active_calls: 1,
                    registrations: 2,
                }),
            })),
        }
    }

    fn change(seq: u64, prev: u64, event: Event) -> pb::MonitorEvent {
        pb::MonitorEvent {
            seq,
            prev_seq: prev,
            at_unix_ms: 2_000,
            event: Some(event),
        }
    }

    #[test]
    fn campaigns_show_todays_figures() {
        let mut b = Board::default();
        b.apply(&snapshot(5)).unwrap();
        let c = pb::MonitorCampaign {
            campaign: "fifty".into(),
            state: "running".into(),
            dialed: 40,
            human: 30,
            today: "2026-06-02".into(),
            today_dialed: 12,
            today_human: 9,
            today_machine: 2,
            today_abandoned: 1,
            ..Default::default()
        };
        let ev = Event::Campaign(pb::CampaignChanged {
            campaign: Some(c.clone()),
        });
        b.apply(&change(6, 5, ev.clone())).unwrap();
        let text = b.render(2_000);
        let row = text.lines().find(|l| l.starts_with("fifty ")).expect(&text);
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[2], cols[4]), ("40", "30"), "{row}");
        assert!(row.ends_with("12/9/2/1 (2026-06-02)"), "{row}");
        let line = event_line(&change(6, 5, ev));
        assert!(
            line.contains(" today=2026-06-02 today_dialed=12 "),
            "{line}"
        );
        assert_eq!(today_cell(&pb::MonitorCampaign::default()), "-");
    }

    #[test]
    fn changes_apply_in_order_and_a_gap_is_detected() {
        let mut b = Board::default();
        assert_eq!(
            b.apply(&change(3, 2, Event::Server(Default::default()))),
            Err((0, 2)),
            "a change before any snapshot is a gap"
        );
        b.apply(&snapshot(5)).unwrap();
        let joined = change(
            6,
            5,
            Event::CallJoined(pb::CallJoinedQueue {
                queue: "sales".into(),
                call: Some(pb::QueuedCall {
                    call: 9,
                    position: 1,
                    queued_at_unix_ms: 1_500,
                    ..Default::default()
                }),
            }),
        );
        b.apply(&joined).unwrap();
        let ringing = change(
            7,
            6,
            Event::Agent(pb::AgentChanged {
                agent: Some(agent("alice", pb::AgentState::Reserved, Some(9))),
                cause: "offered".into(),
            }),
        );
        b.apply(&ringing).unwrap();
        assert_eq!(b.seq, 7);
        let text = b.render(61_500);
        assert!(text.contains("#1   call 9"), "{text}");
        assert!(text.contains("waiting   1:00"), "{text}");
        assert!(text.contains("ringing alice"), "{text}");
        assert!(text.contains("  ringing (1)"), "{text}");
        assert!(text.contains("80%"), "{text}");
        // 8 is missing: 9 names 8 as its previous message.
        let late = change(9, 8, Event::Server(Default::default()));
        assert_eq!(b.apply(&late), Err((7, 8)));
        assert_eq!(b.seq, 7, "nothing applied");
        let left = change(
            8,
            7,
            Event::CallLeft(pb::CallLeftQueue {
                queue: "sales".into(),
                call: 9,
                outcome: pb::QueueOutcome::Answered.into(),
                waited_ms: 4_000,
                agent: Some("alice".into()),
            }),
        );
        b.apply(&left).unwrap();
        let text = b.render(61_500);
        assert!(!text.contains("#1"), "the call left the queue: {text}");
    }

    #[test]
    fn event_lines_are_key_value() {
        let line = event_line(&snapshot(5));
        assert_eq!(
            line,
            "event=snapshot seq=5 prev=0 today=2024-01-01 agents=alice:ready queues=sales:0 active_calls=1 registrations=2"
        );
        let line = event_line(&change(
            6,
            5,
            Event::Agent(pb::AgentChanged {
                agent: Some(agent("alice", pb::AgentState::OnCall, Some(3))),
                cause: "answered".into(),
            }),
        ));
        assert_eq!(
            line,
            "event=agent seq=6 prev=5 agent=alice state=on-call reason= call=3 call_queue=sales cause=answered"
        );
        assert_eq!(clock(61_000), "1:01");
        assert_eq!(clock(3_723_000), "1:02:03");
    }
}
