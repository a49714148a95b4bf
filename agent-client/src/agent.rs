//! The agent's program: `caruso-agent agent --token T <subcommand>` over `caruso.v1.Agent`.
//!
//! Scriptable subcommands print one `key=value` line per status or event (values with
//! spaces, quotes or `=` are double-quoted with `\` escapes); `console` is an interactive
//! line mode for people.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context};
use caruso_proto::caruso::v1::{
    self as pb, agent_client::AgentClient, agent_event::Event, transfer_request::Target,
};
use clap::{Args, Subcommand};
use tokio::time::Instant;
use tonic::codegen::InterceptedService;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Environment variable holding the agent's token when `--token` is not given.
pub const TOKEN_ENV: &str = "CARUSO_AGENT_TOKEN";

/// `caruso-agent agent ...` arguments.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's token (from the server's config); default: $CARUSO_AGENT_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: AgentCommand,
}

/// The agent's subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Log in (the agent starts not ready with reason "login").
    Login,
    /// Log out.
    Logout,
    /// Become ready for calls.
    Ready,
    /// Become not ready, with a reason code from the server's config.
    NotReady {
        /// Reason code (e.g. break, lunch).
        reason: String,
    },
    /// End wrap-up now, with a disposition code and an optional note.
    WrapUp {
        /// Disposition code.
        #[arg(long)]
        disposition: String,
        /// Free text.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Record how a recent call went (any state, e.g. with no wrap-up time); a second
    /// disposition for the same call replaces the first. Prints `disposition=... call=N`.
    Disposition {
        /// Disposition code (e.g. sale, callback).
        code: String,
        /// Free text.
        #[arg(long, default_value = "")]
        note: String,
        /// The call (the `call=` of its offered event); default: the most recent one.
        #[arg(long)]
        call: Option<u64>,
    },
    /// Blind-transfer the current call (exactly one target).
    #[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
    Transfer {
        /// To a queue.
        #[arg(long, group = "target")]
        queue: Option<String>,
        /// To another agent.
        #[arg(long, group = "target")]
        agent: Option<String>,
        /// To a number or SIP URI.
        #[arg(long, group = "target")]
        number: Option<String>,
    },
    /// Print the agent's status.
    Status,
    /// Print events (first the current state), one line each.
    Events {
        /// Exit after this many events (0: no limit).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Exit after the first event of this kind: offered, connected, ended, preview,
        /// or a state (logged-out, ready, reserved, on-call, wrap-up, not-ready).
        #[arg(long, value_parser = parse_until)]
        until: Option<Until>,
        /// Give up after this many seconds (exit code 2 when --count or --until was not
        /// reached; 0 otherwise).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Answer a preview campaign's offer (an `event=preview` line's attempt): accept
    /// dials the contact, skip puts it back on the list.
    Preview {
        /// accept or skip.
        #[arg(value_enum)]
        decision: PreviewDecision,
        /// The offer's attempt id.
        attempt: u64,
        /// The offer's campaign (default: found by the server).
        #[arg(long, default_value = "")]
        campaign: String,
    },
    /// Interactive line mode: shows events as they arrive and reads commands from stdin
    /// (type `help`).
    Console,
}

/// An agent's answer to a preview offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PreviewDecision {
    /// Dial the contact now.
    Accept,
    /// Skip the contact.
    Skip,
}

/// A condition that ends `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// A call was offered.
    Offered,
    /// A call was connected.
    Connected,
    /// A call ended.
    Ended,
    /// A preview campaign showed a contact.
    Preview,
    /// The agent reached this state.
    State(pb::AgentState),
}

/// Parses an `--until` value.
fn parse_until(s: &str) -> Result<Until, String> {
    match s {
        "offered" => Ok(Until::Offered),
        "connected" => Ok(Until::Connected),
        "ended" => Ok(Until::Ended),
        "preview" => Ok(Until::Preview),
        other => state_from_name(other).map(Until::State).ok_or_else(|| {
            format!(
                "expected offered, connected, ended, preview, logged-out, ready, reserved, \
                 on-call, wrap-up or not-ready, got {other:?}"
            )
        }),
    }
}

impl Until {
    /// Whether `event` meets the condition.
    fn matches(self, event: &Event) -> bool {
        match (self, event) {
            (Until::Offered, Event::Offered(_))
            | (Until::Connected, Event::Connected(_))
            | (Until::Ended, Event::Ended(_))
            | (Until::Preview, Event::Preview(_)) => true,
            (Until::State(want), Event::State(s)) => s.state() == want,
            _ => false,
        }
    }
}

/// A state's name on the command line and in output.
pub fn state_name(state: pb::AgentState) -> &'static str {
    match state {
        pb::AgentState::Unspecified => "unknown",
        pb::AgentState::LoggedOut => "logged-out",
        pb::AgentState::Ready => "ready",
        pb::AgentState::Reserved => "reserved",
        pb::AgentState::OnCall => "on-call",
        pb::AgentState::WrapUp => "wrap-up",
        pb::AgentState::NotReady => "not-ready",
    }
}

/// The state a name selects.
fn state_from_name(name: &str) -> Option<pb::AgentState> {
    [
        pb::AgentState::LoggedOut,
        pb::AgentState::Ready,
        pb::AgentState::Reserved,
        pb::AgentState::OnCall,
        pb::AgentState::WrapUp,
        pb::AgentState::NotReady,
    ]
    .into_iter()
    .find(|s| state_name(*s) == name)
}

/// A value for a `key=value` line: bare when plain, else double-quoted with escapes.
pub fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '\\' | '='));
    if plain || v.is_empty() {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A status as `key=value` pairs (no trailing newline).
pub fn status_line(s: &pb::AgentStatus) -> String {
    format!(
        "agent={} state={} reason={} call={} since_ms={} queues={} name={}",
        quote(&s.agent),
        state_name(s.state()),
        quote(&s.reason),
        s.call.map(|c| c.to_string()).unwrap_or_default(),
        s.since_ms,
        quote(&s.queues.join(",")),
        quote(&s.name),
    )
}

/// An event as one `event=<kind> key=value ...` line (no trailing newline).
pub fn event_line(e: &Event) -> String {
    match e {
        Event::State(s) => format!("event=state {}", status_line(s)),
        Event::Offered(o) => {
            let mut line = format!(
                "event=offered call={} caller_number={} caller_name={} queue={} waited_ms={}",
                o.call,
                quote(&o.caller_number),
                quote(&o.caller_name),
                quote(&o.queue),
                o.waited_ms
            );
            let data: BTreeMap<_, _> = o.data.iter().collect();
            for (k, v) in data {
                line.push_str(&format!(" data.{}={}", quote(k), quote(v)));
            }
            line
        }
        Event::Connected(c) => format!("event=connected call={}", c.call),
        Event::Ended(c) => format!("event=ended call={}", c.call),
        Event::Preview(p) => {
            let mut line = format!(
                "event=preview campaign={} attempt={} number={} name={} deadline_s={} script={}",
                quote(&p.campaign),
                p.attempt,
                quote(&p.number),
                quote(&p.name),
                p.deadline_s,
                quote(&p.script)
            );
            let columns: BTreeMap<_, _> = p.columns.iter().collect();
            for (k, v) in columns {
                line.push_str(&format!(" col.{}={}", quote(k), quote(v)));
            }
            line
        }
        Event::PreviewEnded(p) => format!(
            "event=preview-ended campaign={} attempt={} reason={}",
            quote(&p.campaign),
            p.attempt,
            quote(&p.reason)
        ),
    }
}

/// A gRPC code in its canonical upper-case name.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The server's answer to a refused call: `CODE: message`.
pub fn status_error(s: &Status) -> String {
    if s.code() == Code::Unimplemented {
        return format!(
            "UNIMPLEMENTED: {} (does this server run the ACD?)",
            s.message()
        );
    }
    format!("{}: {}", code_name(s.code()), s.message())
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    /// The interceptor for an `authorization` value (`Bearer <token>`).
    pub fn new(value: AsciiMetadataValue) -> Self {
        Self(value)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The Agent client type.
pub type Client = AgentClient<InterceptedService<Channel, Bearer>>;

/// The token from `--token` or the environment.
pub fn token(args: &AgentArgs) -> anyhow::Result<String> {
    let token = match args.token.clone() {
        Some(t) => t,
        None => std::env::var(TOKEN_ENV)
            .with_context(|| format!("no agent token: pass --token or set {TOKEN_ENV}"))?,
    };
    if token.trim().is_empty() {
        bail!("the agent token is empty");
    }
    Ok(token.trim().to_owned())
}

/// Runs `caruso-agent agent ...`; the exit code on success (2: `events` timed out).
pub async fn run(args: AgentArgs, channel: Channel, timeout: Duration) -> anyhow::Result<i32> {
    let token = token(&args)?;
    let value: AsciiMetadataValue = format!("Bearer {token}")
        .parse()
        .context("the agent token contains characters not allowed in gRPC metadata")?;
    let mut c = AgentClient::with_interceptor(channel, Bearer(value));
    let ask = Unary { timeout };
    match args.command {
        AgentCommand::Login => println!("{}", status_line(&ask.login(&mut c).await?)),
        AgentCommand::Logout => println!("{}", status_line(&ask.logout(&mut c).await?)),
        AgentCommand::Ready => println!("{}", status_line(&ask.ready(&mut c).await?)),
        AgentCommand::NotReady { reason } => {
            println!("{}", status_line(&ask.not_ready(&mut c, reason).await?))
        }
        AgentCommand::WrapUp { disposition, note } => println!(
            "{}",
            status_line(&ask.wrap_up(&mut c, disposition, note).await?)
        ),
        AgentCommand::Disposition { code, note, call } => {
            let r = ask.disposition(&mut c, call, code.clone(), note).await?;
            println!("{}", disposition_line(&code, r.call));
        }
        AgentCommand::Transfer {
            queue,
            agent,
            number,
        } => {
            let target = match (queue, agent, number) {
                (Some(q), _, _) => Target::Queue(q),
                (_, Some(a), _) => Target::Agent(a),
                (_, _, Some(n)) => Target::Number(n),
                _ => bail!("transfer needs --queue, --agent or --number"),
            };
            let line = transfer_line(&target);
            ask.transfer(&mut c, target).await?;
            println!("{line}");
        }
        AgentCommand::Status => println!("{}", status_line(&ask.status(&mut c).await?)),
        AgentCommand::Events {
            count,
            until,
            timeout,
        } => return events(&mut c, count, until, timeout).await,
        AgentCommand::Preview {
            decision,
            attempt,
            campaign,
        } => {
            let accept = decision == PreviewDecision::Accept;
            ask.decide_preview(&mut c, attempt, accept, campaign)
                .await?;
            println!("{}", preview_line(attempt, accept));
        }
        AgentCommand::Console => {
            console(&mut c, ask).await?;
        }
    }
    Ok(0)
}

/// The line printed after a preview decision.
fn preview_line(attempt: u64, accept: bool) -> String {
    format!(
        "preview={} attempt={attempt}",
        if accept { "accepted" } else { "skipped" }
    )
}

/// The line printed after a disposition.
fn disposition_line(code: &str, call: u64) -> String {
    format!("disposition={} call={call}", quote(code))
}

/// The line printed after a transfer.
fn transfer_line(t: &Target) -> String {
    let (kind, v) = match t {
        Target::Queue(v) => ("queue", v),
        Target::Agent(v) => ("agent", v),
        Target::Number(v) => ("number", v),
    };
    format!("transferred=true {kind}={}", quote(v))
}

/// Unary calls with a deadline and the server's message on failure.
#[derive(Debug, Clone, Copy)]
struct Unary {
    timeout: Duration,
}

impl Unary {
    async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => bail!("{what}: no answer within {:?}", self.timeout),
            Ok(Err(s)) => bail!("{}", status_error(&s)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    async fn login(&self, c: &mut Client) -> anyhow::Result<pb::AgentStatus> {
        self.call("LogIn", c.log_in(pb::LogInRequest {})).await
    }

    async fn logout(&self, c: &mut Client) -> anyhow::Result<pb::AgentStatus> {
        self.call("LogOut", c.log_out(pb::LogOutRequest {})).await
    }

    async fn ready(&self, c: &mut Client) -> anyhow::Result<pb::AgentStatus> {
        self.call("SetReady", c.set_ready(pb::SetReadyRequest {}))
            .await
    }

    async fn not_ready(&self, c: &mut Client, reason: String) -> anyhow::Result<pb::AgentStatus> {
        self.call(
            "SetNotReady",
            c.set_not_ready(pb::SetNotReadyRequest { reason }),
        )
        .await
    }

    async fn wrap_up(
        &self,
        c: &mut Client,
        disposition: String,
        note: String,
    ) -> anyhow::Result<pb::AgentStatus> {
        self.call(
            "EndWrapUp",
            c.end_wrap_up(pb::EndWrapUpRequest { disposition, note }),
        )
        .await
    }

    async fn disposition(
        &self,
        c: &mut Client,
        call: Option<u64>,
        disposition: String,
        note: String,
    ) -> anyhow::Result<pb::SetDispositionResponse> {
        self.call(
            "SetDisposition",
            c.set_disposition(pb::SetDispositionRequest {
                call,
                disposition,
                note,
            }),
        )
        .await
    }

    async fn transfer(&self, c: &mut Client, target: Target) -> anyhow::Result<()> {
        self.call(
            "Transfer",
            c.transfer(pb::TransferRequest {
                target: Some(target),
            }),
        )
        .await
        .map(|_| ())
    }

    async fn decide_preview(
        &self,
        c: &mut Client,
        attempt: u64,
        accept: bool,
        campaign: String,
    ) -> anyhow::Result<()> {
        self.call(
            "DecidePreview",
            c.decide_preview(pb::DecidePreviewRequest {
                attempt,
                accept,
                campaign,
            }),
        )
        .await
        .map(|_| ())
    }

    async fn status(&self, c: &mut Client) -> anyhow::Result<pb::AgentStatus> {
        self.call("GetStatus", c.get_status(pb::GetAgentStatusRequest {}))
            .await
    }
}

/// Opens the agent's event stream.
async fn subscribe(c: &mut Client) -> anyhow::Result<tonic::Streaming<pb::AgentEvent>> {
    match c.events(pb::AgentEventsRequest {}).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) => bail!("{}", status_error(&s)),
    }
}

/// `events`: prints events until `count`, `until` or `timeout`.
async fn events(
    c: &mut Client,
    count: u64,
    until: Option<Until>,
    timeout: Option<f64>,
) -> anyhow::Result<i32> {
    let deadline = match timeout {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Instant::now() + Duration::from_secs_f64(s)),
        Some(s) => bail!("--timeout must be a number of seconds >= 0, got {s}"),
        None => None,
    };
    let goal = count > 0 || until.is_some();
    let mut seen = 0u64;
    let next = async {
        let mut stream = subscribe(c).await?;
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => bail!("the server ended the event stream"),
                Err(s) => bail!("{}", status_error(&s)),
            };
            let Some(event) = msg.event else { continue };
            println!("{}", event_line(&event));
            seen += 1;
            if until.is_some_and(|u| u.matches(&event)) || (count > 0 && seen >= count) {
                return Ok::<_, anyhow::Error>(0);
            }
        }
    };
    match deadline {
        None => next.await,
        Some(at) => match tokio::time::timeout_at(at, next).await {
            Ok(r) => r,
            Err(_) if goal => {
                eprintln!(
                    "timed out after {}s ({seen} events) before {}",
                    timeout.unwrap_or_default(),
                    match until {
                        Some(u) => format!("--until {}", until_name(u)),
                        None => format!("--count {count}"),
                    }
                );
                Ok(2)
            }
            Err(_) => Ok(0),
        },
    }
}

/// An `--until` value's name.
fn until_name(u: Until) -> &'static str {
    match u {
        Until::Offered => "offered",
        Until::Connected => "connected",
        Until::Ended => "ended",
        Until::Preview => "preview",
        Until::State(s) => state_name(s),
    }
}

/// A command typed in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// `login`.
    Login,
    /// `logout`.
    Logout,
    /// `ready`.
    Ready,
    /// `not-ready <reason>`.
    NotReady(String),
    /// `wrap-up <disposition> [note...]`.
    WrapUp(String, String),
    /// `disposition <code> [note...]`: for the agent's last call, in any state.
    Disposition(String, String),
    /// `transfer queue|agent|number <target>`.
    Transfer(Target),
    /// `accept [attempt]` / `skip [attempt]` (default: the preview shown last).
    Preview(bool, Option<u64>),
    /// `status`.
    Status,
    /// `help`.
    Help,
    /// `quit` (or end of input).
    Quit,
}

/// Console help text.
pub const CONSOLE_HELP: &str = "commands: login | logout | ready | not-ready <reason> | \
wrap-up <disposition> [note...] | disposition <code> [note...] | transfer queue|agent|number <target> | \
accept [attempt] | skip [attempt] | status | help | quit";

/// Parses a console line; `Ok(None)` for a blank line.
pub fn parse_console(line: &str) -> Result<Option<ConsoleCommand>, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let cmd = match word {
        "" => return Ok(None),
        "login" => ConsoleCommand::Login,
        "logout" => ConsoleCommand::Logout,
        "ready" => ConsoleCommand::Ready,
        "not-ready" | "notready" | "nr" if !rest.is_empty() => {
            ConsoleCommand::NotReady(rest.to_owned())
        }
        "not-ready" | "notready" | "nr" => return Err("usage: not-ready <reason>".into()),
        "wrap-up" | "wrapup" | "wu" => {
            let (disp, note) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if disp.is_empty() {
                return Err("usage: wrap-up <disposition> [note...]".into());
            }
            ConsoleCommand::WrapUp(disp.to_owned(), note.trim().to_owned())
        }
        "disposition" | "dispo" => {
            let (code, note) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if code.is_empty() {
                return Err("usage: disposition <code> [note...]".into());
            }
            ConsoleCommand::Disposition(code.to_owned(), note.trim().to_owned())
        }
        "transfer" | "xfer" => {
            let (kind, target) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let target = target.trim().to_owned();
            if target.is_empty() {
                return Err("usage: transfer queue|agent|number <target>".into());
            }
            ConsoleCommand::Transfer(match kind {
                "queue" => Target::Queue(target),
                "agent" => Target::Agent(target),
                "number" => Target::Number(target),
                _ => return Err("usage: transfer queue|agent|number <target>".into()),
            })
        }
        "accept" | "skip" => {
            let attempt = if rest.is_empty() {
                None
            } else {
                Some(
                    rest.parse::<u64>()
                        .map_err(|_| format!("usage: {word} [attempt]"))?,
                )
            };
            ConsoleCommand::Preview(word == "accept", attempt)
        }
        "status" => ConsoleCommand::Status,
        "help" | "?" => ConsoleCommand::Help,
        "quit" | "exit" | "q" => ConsoleCommand::Quit,
        other => return Err(format!("unknown command {other:?}; {CONSOLE_HELP}")),
    };
    Ok(Some(cmd))
}

/// What the console shows: the agent's state and the current call.
#[derive(Debug, Default)]
pub struct ConsoleView {
    /// Last known status.
    pub status: Option<pb::AgentStatus>,
    /// The call offered or connected, if any.
    pub call: Option<pb::CallOffered>,
    /// The last preview offer shown.
    pub preview: Option<pb::CallPreview>,
}

impl ConsoleView {
    /// Applies an event and returns the line to print.
    pub fn apply(&mut self, e: &Event) -> String {
        match e {
            Event::State(s) => {
                self.status = Some(s.clone());
                format!("[state] {}", self.describe())
            }
            Event::Offered(o) => {
                self.call = Some(o.clone());
                let mut line = format!(
                    "[offered] call {} from {} via queue {}, waited {:.1}s",
                    o.call,
                    caller(o),
                    o.queue,
                    o.waited_ms as f64 / 1000.0
                );
                if !o.data.is_empty() {
                    let data: BTreeMap<_, _> = o.data.iter().collect();
                    let pairs: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    line.push_str(&format!("; data: {}", pairs.join(", ")));
                }
                line
            }
            Event::Connected(c) => match &self.call {
                Some(o) if o.call == c.call => {
                    format!("[connected] call {} with {}", c.call, caller(o))
                }
                _ => format!("[connected] call {}", c.call),
            },
            Event::Ended(c) => {
                if self.call.as_ref().is_some_and(|o| o.call == c.call) {
                    self.call = None;
                }
                format!("[ended] call {}", c.call)
            }
            Event::Preview(p) => {
                self.preview = Some(p.clone());
                preview_text(p)
            }
            Event::PreviewEnded(p) => {
                if self
                    .preview
                    .as_ref()
                    .is_some_and(|s| s.attempt == p.attempt && s.campaign == p.campaign)
                {
                    self.preview = None;
                }
                format!(
                    "[preview] offer {} of campaign {} ended: {}",
                    p.attempt, p.campaign, p.reason
                )
            }
        }
    }

    /// The state and current call, in one line.
    pub fn describe(&self) -> String {
        let Some(s) = &self.status else {
            return "unknown".into();
        };
        let mut out = state_name(s.state()).to_owned();
        if !s.reason.is_empty() {
            out.push_str(&format!(" ({})", s.reason));
        }
        if let Some(o) = &self.call {
            out.push_str(&format!(
                " | call {} from {} via {}",
                o.call,
                caller(o),
                o.queue
            ));
        } else if let Some(call) = s.call {
            out.push_str(&format!(" | call {call}"));
        }
        out
    }
}

/// A preview offer as the console shows it (several lines).
pub fn preview_text(p: &pb::CallPreview) -> String {
    let who = if p.name.is_empty() {
        p.number.clone()
    } else {
        format!("{} <{}>", p.name, p.number)
    };
    let mut out = format!(
        "[preview] campaign {}, attempt {}: {who}; accept or skip within {} s",
        p.campaign, p.attempt, p.deadline_s
    );
    let columns: BTreeMap<_, _> = p.columns.iter().collect();
    if !columns.is_empty() {
        let pairs: Vec<String> = columns.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("\n  data: {}", pairs.join(", ")));
    }
    if !p.script.is_empty() {
        out.push_str("\n  script:");
        for line in p.script.lines() {
            out.push_str(&format!("\n    {line}"));
        }
    }
    out
}

/// `Name <number>` or just the number.
fn caller(o: &pb::CallOffered) -> String {
    if o.caller_name.is_empty() {
        o.caller_number.clone()
    } else {
        format!("{} <{}>", o.caller_name, o.caller_number)
    }
}

/// Interactive line mode: logs in when logged out, prints events, runs typed commands.
async fn console(c: &mut Client, ask: Unary) -> anyhow::Result<()> {
    let mut view = ConsoleView::default();
    let status = ask.status(c).await?;
    println!("agent {} ({}); {CONSOLE_HELP}", status.agent, status.name);
    if status.state() == pb::AgentState::LoggedOut {
        ask.login(c).await?;
    }
    let mut stream = subscribe(c).await?;
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    loop {
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(pb::AgentEvent { event: Some(e) })) => println!("{}", view.apply(&e)),
                Ok(Some(_)) => {}
                Err(s) if s.code() == Code::DataLoss => {
                    println!("[notice] {}; re-subscribing", s.message());
                    stream = subscribe(c).await?;
                }
                Ok(None) => bail!("the server ended the event stream"),
                Err(s) => bail!("{}", status_error(&s)),
            },
            line = lines.recv() => {
                let Some(line) = line else { return Ok(()) };
                let cmd = match parse_console(&line) {
                    Ok(Some(cmd)) => cmd,
                    Ok(None) => continue,
                    Err(e) => { println!("[error] {e}"); continue; }
                };
                let result = match cmd {
                    ConsoleCommand::Quit => return Ok(()),
                    ConsoleCommand::Help => { println!("{CONSOLE_HELP}"); continue; }
                    ConsoleCommand::Status => ask.status(c).await.map(|s| {
                        view.status = Some(s);
                        format!("[status] {}", view.describe())
                    }),
                    // State changes show up as events; only errors are printed here.
                    ConsoleCommand::Login => ask.login(c).await.map(|_| String::new()),
                    ConsoleCommand::Logout => ask.logout(c).await.map(|_| String::new()),
                    ConsoleCommand::Ready => ask.ready(c).await.map(|_| String::new()),
                    ConsoleCommand::NotReady(r) => ask.not_ready(c, r).await.map(|_| String::new()),
                    ConsoleCommand::WrapUp(d, n) => ask.wrap_up(c, d, n).await.map(|_| String::new()),
                    ConsoleCommand::Disposition(d, n) => {
                        let line = |r: pb::SetDispositionResponse| {
                            format!("[disposition] {}", disposition_line(&d, r.call))
                        };
                        ask.disposition(c, None, d.clone(), n).await.map(line)
                    }
                    ConsoleCommand::Transfer(t) => {
                        let line = transfer_line(&t);
                        ask.transfer(c, t).await.map(|_| format!("[transfer] {line}"))
                    }
                    ConsoleCommand::Preview(accept, attempt) => {
                        let shown = view.preview.as_ref().map(|p| (p.attempt, p.campaign.clone()));
                        match attempt.map(|a| (a, String::new())).or(shown) {
                            None => Err(anyhow::anyhow!("no preview offer shown")),
                            Some((a, campaign)) => ask
                                .decide_preview(c, a, accept, campaign)
                                .await
                                .map(|_| format!("[preview] {}", preview_line(a, accept))),
                        }
                    }
                };
                match result {
                    Ok(line) if line.is_empty() => {}
                    Ok(line) => println!("{line}"),
                    Err(e) => println!("[error] {e:#}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: pb::AgentState, reason: &str, call: Option<u64>) -> pb::AgentStatus {
        pb::AgentStatus {
            agent: "alice".into(),
            name: "Alice Example".into(),
            state: state.into(),
            reason: reason.into(),
            call,
            since_ms: 1500,
            queues: vec!["sales".into(), "support".into()],
        }
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(quote("sales"), "sales");
        assert_eq!(quote(""), "");
        assert_eq!(quote("Bob Caller"), "\"Bob Caller\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote("say \"hi\"\\\n"), "\"say \\\"hi\\\"\\\\\\n\"");
    }

    #[test]
    fn status_and_event_lines() {
        assert_eq!(
            status_line(&status(pb::AgentState::NotReady, "break", None)),
            "agent=alice state=not-ready reason=break call= since_ms=1500 \
             queues=sales,support name=\"Alice Example\""
        );
        let mut data = std::collections::HashMap::new();
        data.insert("z".to_string(), "last".to_string());
        data.insert("account".to_string(), "A 1".to_string());
        let offered = Event::Offered(pb::CallOffered {
            call: 7,
            caller_number: "5551000".into(),
            caller_name: "Bob Caller".into(),
            queue: "sales".into(),
            waited_ms: 1234,
            data,
        });
        assert_eq!(
            event_line(&offered),
            "event=offered call=7 caller_number=5551000 caller_name=\"Bob Caller\" \
             queue=sales waited_ms=1234 data.account=\"A 1\" data.z=last"
        );
        assert_eq!(
            event_line(&Event::State(status(pb::AgentState::OnCall, "", Some(7)))),
            "event=state agent=alice state=on-call reason= call=7 since_ms=1500 \
             queues=sales,support name=\"Alice Example\""
        );
        assert_eq!(
            event_line(&Event::Ended(pb::CallEnded { call: 9 })),
            "event=ended call=9"
        );
    }

    #[test]
    fn disposition_parses_and_prints() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            agent: AgentArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--token",
            "t",
            "disposition",
            "sale",
            "--note",
            "gold plan",
            "--call",
            "7",
        ])
        .expect("parses");
        match cli.agent.command {
            AgentCommand::Disposition { code, note, call } => {
                assert_eq!(
                    (code.as_str(), note.as_str(), call),
                    ("sale", "gold plan", Some(7))
                )
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["x", "disposition", "callback"]).expect("parses");
        assert!(matches!(
            cli.agent.command,
            AgentCommand::Disposition { call: None, .. }
        ));
        assert!(
            Cli::try_parse_from(["x", "disposition"]).is_err(),
            "a code is needed"
        );
        assert_eq!(
            disposition_line("no sale", 9),
            "disposition=\"no sale\" call=9"
        );
    }

    #[test]
    fn until_parses_and_matches() {
        assert_eq!(parse_until("connected"), Ok(Until::Connected));
        assert_eq!(
            parse_until("on-call"),
            Ok(Until::State(pb::AgentState::OnCall))
        );
        assert!(parse_until("busy").unwrap_err().contains("busy"));
        let ready = Event::State(status(pb::AgentState::Ready, "", None));
        assert!(Until::State(pb::AgentState::Ready).matches(&ready));
        assert!(!Until::State(pb::AgentState::WrapUp).matches(&ready));
        assert!(!Until::Ended.matches(&ready));
        assert!(Until::Ended.matches(&Event::Ended(pb::CallEnded { call: 1 })));
    }

    #[test]
    fn a_preview_prints_its_contact_columns_and_script_and_its_decisions_parse() {
        let p = pb::CallPreview {
            campaign: "demo".into(),
            attempt: 12,
            number: "+48601000001".into(),
            name: "Ann Smith".into(),
            columns: [("plan".to_string(), "gold".to_string())].into(),
            script: "Good morning,\nmy name is".into(),
            deadline_s: 30,
        };
        let e = Event::Preview(p.clone());
        assert_eq!(
            event_line(&e),
            "event=preview campaign=demo attempt=12 number=+48601000001 name=\"Ann Smith\" \
             deadline_s=30 script=\"Good morning,\\nmy name is\" col.plan=gold"
        );
        assert_eq!(parse_until("preview"), Ok(Until::Preview));
        assert!(Until::Preview.matches(&e));
        assert!(!Until::Offered.matches(&e));
        let mut v = ConsoleView::default();
        assert_eq!(
            v.apply(&e),
            "[preview] campaign demo, attempt 12: Ann Smith <+48601000001>; accept or skip \
             within 30 s\n  data: plan=gold\n  script:\n    Good morning,\n    my name is"
        );
        assert_eq!(v.preview, Some(p));
        assert_eq!(
            parse_console("accept"),
            Ok(Some(ConsoleCommand::Preview(true, None)))
        );
        assert_eq!(
            parse_console("skip 12"),
            Ok(Some(ConsoleCommand::Preview(false, Some(12))))
        );
        assert!(parse_console("skip twelve").is_err());
        assert_eq!(preview_line(12, false), "preview=skipped attempt=12");

        // The offer times out: the console forgets it (`accept` no longer means it).
        let other = Event::PreviewEnded(pb::CallPreviewEnded {
            campaign: "other".into(),
            attempt: 12,
            reason: "timed out".into(),
        });
        v.apply(&other);
        assert!(v.preview.is_some(), "another campaign's attempt 12");
        let ended = Event::PreviewEnded(pb::CallPreviewEnded {
            campaign: "demo".into(),
            attempt: 12,
            reason: "timed out".into(),
        });
        assert_eq!(
            event_line(&ended),
            "event=preview-ended campaign=demo attempt=12 reason=\"timed out\""
        );
        assert_eq!(
            v.apply(&ended),
            "[preview] offer 12 of campaign demo ended: timed out"
        );
        assert_eq!(v.preview, None);
    }

    #[test]
    fn console_commands_parse() {
        assert_eq!(parse_console("  "), Ok(None));
        assert_eq!(
            parse_console("not-ready lunch"),
            Ok(Some(ConsoleCommand::NotReady("lunch".into())))
        );
        assert!(parse_console("not-ready").is_err());
        assert_eq!(
            parse_console("wrap-up sale customer wants a callback"),
            Ok(Some(ConsoleCommand::WrapUp(
                "sale".into(),
                "customer wants a callback".into()
            )))
        );
        assert_eq!(
            parse_console("transfer queue support"),
            Ok(Some(ConsoleCommand::Transfer(Target::Queue(
                "support".into()
            ))))
        );
        assert!(parse_console("transfer desk 5").is_err());
        assert_eq!(
            parse_console("disposition callback after 5 pm"),
            Ok(Some(ConsoleCommand::Disposition(
                "callback".into(),
                "after 5 pm".into()
            )))
        );
        assert!(parse_console("disposition").is_err());
        assert_eq!(parse_console("quit"), Ok(Some(ConsoleCommand::Quit)));
        assert!(parse_console("dance").unwrap_err().contains("dance"));
    }

    #[test]
    fn console_view_tracks_the_current_call() {
        let mut v = ConsoleView::default();
        v.apply(&Event::State(status(pb::AgentState::Ready, "", None)));
        assert_eq!(v.describe(), "ready");
        let line = v.apply(&Event::Offered(pb::CallOffered {
            call: 3,
            caller_number: "5551000".into(),
            caller_name: "Bob".into(),
            queue: "sales".into(),
            waited_ms: 2500,
            data: [("account".to_string(), "42".to_string())].into(),
        }));
        assert_eq!(
            line,
            "[offered] call 3 from Bob <5551000> via queue sales, waited 2.5s; data: account=42"
        );
        v.apply(&Event::State(status(pb::AgentState::OnCall, "", Some(3))));
        assert_eq!(
            v.describe(),
            "on-call | call 3 from Bob <5551000> via sales"
        );
        assert_eq!(
            v.apply(&Event::Connected(pb::CallConnected { call: 3 })),
            "[connected] call 3 with Bob <5551000>"
        );
        v.apply(&Event::Ended(pb::CallEnded { call: 3 }));
        v.apply(&Event::State(status(pb::AgentState::WrapUp, "", None)));
        assert_eq!(v.describe(), "wrap-up");
    }

    #[test]
    fn errors_show_code_and_server_message() {
        let s = Status::failed_precondition("agent alice is logged out: cannot set ready");
        assert_eq!(
            status_error(&s),
            "FAILED_PRECONDITION: agent alice is logged out: cannot set ready"
        );
        assert!(status_error(&Status::unimplemented("")).contains("ACD"));
    }
}
