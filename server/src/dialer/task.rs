//! The dialer task: one tokio task owning every [`Campaign`] and the do-not-call list.
//!
//! Inputs, handled one at a time:
//! - [`DialerCommand`]s from the gRPC `caruso.v1.Campaigns` service, through a
//!   [`DialerHandle`] (create, load contacts, start / pause / resume / stop, status,
//!   do-not-call changes);
//! - the campaigns' own timers ([`Campaign::poll_timeout`]: a contact becomes due, a
//!   calling window opens, the predictive pacing tick);
//! - the event bus: [`Event::AgentState`] (the task then asks the ACD for that agent's
//!   typed status and gives it to every campaign whose queue the agent serves) and
//!   [`Event::Disposition`] (the agent's wrap-up or `SetDisposition`; matched to the
//!   attempt whose [`OriginateEvent::Connected`] named the same ACD call key, for
//!   24 hours; a later disposition for the call replaces the earlier one);
//! - each dial's [`OriginateEvent`]s, forwarded from the [`Originator`]'s channel.
//!
//! Outputs: dials handed to the [`Originator`] (after every input, [`Campaign::poll_dial`]
//! until `None`), and [`Event::Campaign`] figures on the bus.
//!
//! Where a person goes ([`HumanRoute`]): preview and progressive dials go to the agent
//! the campaign reserved ([`HumanRoute::Agent`]); predictive dials to the campaign's
//! queue; agentless dials to the configured prompt or flow. With
//! [`DialerTask::with_holds`] the agent is also held in the ACD until the dial connects
//! or ends (the router offers it no queued call; a call sent to it by name still
//! reaches it). The hold is a request with an answer ([`CallToAcd::Reserve`]): the
//! campaign first claims the agent and a contact ([`Campaign::set_claim_first`]), the
//! ACD grants the hold only to a ready agent, and only then is the contact dialed; a
//! refused hold (an inbound call was offered to the agent just before) withdraws the
//! claim without dialing or counting anything ([`Campaign::handle_hold_refused`]).
//!
//! Preview (with holds): the agent is held from the moment the contact is shown; the
//! granted hold delivers [`crate::acd::api::AgentEvent::Preview`] (contact, columns, script, deadline) to
//! the agent's event stream; the agent answers with [`DialerCommand::PreviewDecision`]
//! (gRPC `Agent.DecidePreview`): accept dials, skip puts the contact back (after the
//! `retry.no_answer` delay, no attempt counted) and releases the agent; no answer
//! within `preview_timeout_s` counts as a skip. Without holds (no ACD) every offer is
//! accepted at once.
//!
//! Store writes (sled, flushed) run under [`tokio::task::block_in_place`] on a
//! multi-thread runtime, so they never stall the runtime's other tasks.
//!
//! Wall-clock time comes from a [`WallClock`] (tests give one tied to tokio's paused
//! clock); timers sleep on tokio's clock for the difference.

use super::campaign::{
    AgentView, AttemptId, AttemptRecord, Availability, CallResult, Campaign, CampaignError,
    CampaignEvent, CampaignFigures, ContactId, DialRequest,
};
use super::config::{
    parse_campaigns, AgentlessAction, CampaignConfig, CampaignReferences, MachineAction,
};
use super::contacts::{parse_csv_bytes, ContactsError, RowError};
use super::dnc::{DncError, DncList};
use super::originate::{HumanRoute, Originate, OriginateEvent, Originator};
use super::pacing::DialMode;
use super::phone::{Country, E164};
use crate::acd::api::{AcdHandle, CallPreview};
use crate::acd::config::AcdConfig;
use crate::acd::task::{CallToAcd, HoldRefused};
use crate::acd::{AgentState, CallKey};
use crate::events::{CampaignStats, Event, EventBus};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

/// How long a person may wait for an agent after the answer (the 2 s rule).
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// How often every campaign's figures are published even without a change.
const FIGURES_EVERY: Duration = Duration::from_secs(10);

/// Store tree of campaigns created over gRPC (key: name, value: the TOML table).
pub const CREATED_TREE: &str = "dialer_created";
/// How long an ACD call key is remembered for a late disposition.
const DISPOSITION_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Longest sleep without input (timers are re-read after every input anyway).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The wall clock the task reads (`SystemTime::now` in the server).
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(SystemTime::now)
}

/// Why the dialer refused a command.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// No campaign with that name.
    #[error("no campaign named {0:?}")]
    NotFound(String),
    /// A campaign with that name exists.
    #[error("a campaign named {0:?} exists")]
    Exists(String),
    /// A field that does not validate.
    #[error("{0}")]
    Invalid(String),
    /// The contact list has no usable header.
    #[error("contact list: {0}")]
    Contacts(#[from] ContactsError),
    /// The campaign refused (state) or its store failed.
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    /// A do-not-call number could not be read, or the store failed.
    #[error(transparent)]
    Dnc(#[from] DncError),
    /// The dialer task is not running.
    #[error("the dialer is not running")]
    Stopped,
    /// No preview offer with this attempt id is pending (decided, timed out, withdrawn).
    #[error("no preview offer {0} is pending")]
    NoOffer(AttemptId),
    /// The preview offer was made to another agent.
    #[error("preview offer {attempt} was not made to agent {agent}")]
    NotYours {
        /// Attempt id.
        attempt: AttemptId,
        /// The agent who asked.
        agent: String,
    },
}

/// A campaign's mode and figures.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInfo {
    /// How it dials.
    pub mode: DialMode,
    /// Its figures (with the run state).
    pub figures: CampaignFigures,
}

/// The answer to a contact load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    /// Contacts added.
    pub added: u64,
    /// Rows refused (bad rows of the CSV, numbers already in the campaign), by line.
    pub rejected: Vec<RowError>,
    /// The campaign afterwards.
    pub info: CampaignInfo,
}

/// The answer to a do-not-call change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncChange {
    /// Numbers (E.164) added or removed.
    pub changed: Vec<String>,
    /// Numbers (E.164) already listed (add) or not listed (remove).
    pub unchanged: Vec<String>,
}

/// One page of the do-not-call list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncPage {
    /// Numbers in order.
    pub numbers: Vec<String>,
    /// Numbers listed in all.
    pub total: u64,
}

/// One attempt as listed for a reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptInfo {
    /// The stored attempt.
    pub record: AttemptRecord,
    /// The contact's name from the list.
    pub contact_name: String,
}

/// The answer to a false-positive report.
#[derive(Debug, Clone, PartialEq)]
pub struct FalsePositiveResult {
    /// This report counted it (`false`: reported already).
    pub counted: bool,
    /// The attempt afterwards.
    pub attempt: AttemptInfo,
    /// The campaign afterwards.
    pub info: CampaignInfo,
}

/// A run-state command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Start (or restart) dialing.
    Start,
    /// No new dials.
    Pause,
    /// Dial again after a pause.
    Resume,
    /// Stop dialing.
    Stop,
}

/// One answer channel.
pub type Reply<T> = oneshot::Sender<Result<T, DialerError>>;

/// Commands to the dialer task.
#[derive(Debug)]
pub enum DialerCommand {
    /// Creates a campaign from a `[[campaigns]]`-shaped table (kept in the store).
    Create {
        /// The table, as in the config.
        table: toml::Table,
        /// Answer.
        reply: Reply<CampaignInfo>,
    },
    /// Loads contacts from CSV.
    Load {
        /// Campaign.
        name: String,
        /// CSV bytes.
        csv: Vec<u8>,
        /// Answer.
        reply: Reply<LoadResult>,
    },
    /// Start / pause / resume / stop.
    Control {
        /// Campaign.
        name: String,
        /// What to do.
        action: Control,
        /// Answer.
        reply: Reply<CampaignInfo>,
    },
    /// One campaign's figures.
    Status {
        /// Campaign.
        name: String,
        /// Answer.
        reply: Reply<CampaignInfo>,
    },
    /// Every campaign, by name.
    List {
        /// Answer.
        reply: Reply<Vec<CampaignInfo>>,
    },
    /// Adds numbers to the do-not-call list.
    AddDnc {
        /// Numbers (E.164 or national).
        numbers: Vec<String>,
        /// Country of national numbers (empty: US).
        country: String,
        /// Answer.
        reply: Reply<DncChange>,
    },
    /// Removes numbers from the do-not-call list.
    RemoveDnc {
        /// Numbers (E.164 or national).
        numbers: Vec<String>,
        /// Country of national numbers (empty: US).
        country: String,
        /// Answer.
        reply: Reply<DncChange>,
    },
    /// A preview agent's decision on an offer ([`crate::acd::api::AgentEvent::Preview`]).
    PreviewDecision {
        /// The agent deciding (an offer to another agent is refused).
        agent: String,
        /// The campaign, if the caller knows it (else every campaign is searched).
        campaign: Option<String>,
        /// The offer's attempt id.
        attempt: AttemptId,
        /// True: dial the contact; false: skip it.
        accept: bool,
        /// Answer.
        reply: Reply<()>,
    },
    /// A campaign's newest attempts, newest first.
    ListAttempts {
        /// Campaign.
        name: String,
        /// Only this contact's.
        contact: Option<ContactId>,
        /// At most this many.
        limit: usize,
        /// Answer.
        reply: Reply<Vec<AttemptInfo>>,
    },
    /// An attempt the AMD took for a machine was a person (counted as abandoned).
    ReportFalsePositive {
        /// Campaign.
        name: String,
        /// Attempt.
        attempt: AttemptId,
        /// Answer.
        reply: Reply<FalsePositiveResult>,
    },
    /// One page of the do-not-call list.
    ListDnc {
        /// Start after this number (E.164).
        after: Option<String>,
        /// Page size.
        limit: usize,
        /// Answer.
        reply: Reply<DncPage>,
    },
}

/// The address of the dialer task.
#[derive(Debug, Clone)]
pub struct DialerHandle {
    tx: mpsc::Sender<DialerCommand>,
}

impl DialerHandle {
    /// Sends a command built around a fresh reply channel and awaits the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> DialerCommand,
    ) -> Result<T, DialerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)?
    }
}

/// What exists elsewhere in the config (for campaigns created over gRPC).
#[derive(Debug, Clone, Default)]
pub struct References {
    /// ACD queue names (`None`: not checked).
    pub queues: Option<Vec<String>>,
    /// Trunk names.
    pub trunks: Option<Vec<String>>,
    /// IVR flow names.
    pub flows: Option<Vec<String>>,
    /// Where prompts are (`<dir>/<name>.wav`; `None`: not checked).
    pub prompt_dir: Option<PathBuf>,
}

impl References {
    fn parse(&self, table: &toml::Table, file: &str) -> Result<CampaignConfig, String> {
        let dir = self.prompt_dir.clone();
        let exists = move |n: &str| {
            dir.as_ref()
                .is_none_or(|d| d.join(format!("{n}.wav")).is_file())
        };
        let refs = CampaignReferences {
            queues: self.queues.clone(),
            trunks: self.trunks.clone(),
            flows: self.flows.clone(),
            prompt_exists: &exists,
        };
        let v = toml::Value::Array(vec![toml::Value::Table(table.clone())]);
        let mut list = parse_campaigns(&v, file, std::path::Path::new(""), &refs)
            .map_err(|e| format!("{}: {}", e.key.replacen("campaigns[0].", "", 1), e.expected))?;
        list.pop().ok_or_else(|| "no campaign".to_string())
    }
}

/// Runs blocking work (store, files) without stalling the runtime's other tasks.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        // A current-thread runtime (tests with an in-memory store) cannot leave the
        // thread; the work is not blocking there.
        _ => f(),
    }
}

/// The bus's view of a campaign's figures.
pub fn stats_of(f: &CampaignFigures) -> CampaignStats {
    CampaignStats {
        campaign: f.campaign.clone(),
        state: f.state.as_str().to_string(),
        dialed: f.dialed,
        in_flight: f.in_flight,
        answered: f.answered,
        human: f.human,
        machine: f.machine,
        busy: f.busy,
        no_answer: f.no_answer,
        failed: f.failed,
        abandoned: f.abandoned,
        amd_false_positives: f.amd_false_positives,
        dnc_skipped: f.dnc_skipped,
        outside_window: f.outside_window,
        abandon_rate_bp: (f.abandon_rate * 10_000.0).round().clamp(0.0, 10_000.0) as u32,
        contacts: f.contacts,
        contacts_left: f.contacts_left,
        today: f.today.clone(),
    }
}

/// The ACD's agent state as a campaign sees it.
pub fn availability(state: &AgentState) -> Availability {
    match state {
        AgentState::Ready => Availability::Ready,
        AgentState::Reserved(_) | AgentState::OnCall(_) | AgentState::WrapUp => Availability::Busy,
        AgentState::LoggedOut | AgentState::NotReady(_) => Availability::Away,
    }
}

/// The ACD's answer to a hold request ([`CallToAcd::Reserve`]).
#[derive(Debug)]
struct HoldAnswer {
    campaign: String,
    attempt: AttemptId,
    agent: String,
    result: Result<(), HoldRefused>,
}

/// A dial event forwarded from one dial's channel.
#[derive(Debug)]
struct DialEvent {
    campaign: String,
    attempt: AttemptId,
    event: OriginateEvent,
}

/// The dialer task's state (see the module doc).
pub struct DialerTask {
    campaigns: BTreeMap<String, Campaign>,
    dnc: DncList,
    store: Arc<dyn Store>,
    originator: Arc<dyn Originator>,
    bus: EventBus,
    acd: Option<(AcdHandle, Arc<AcdConfig>)>,
    refs: References,
    clock: WallClock,
    /// ACD call key → (campaign, attempt, when connected), for dispositions.
    by_call: HashMap<CallKey, (String, AttemptId, SystemTime)>,
    dial_tx: mpsc::Sender<DialEvent>,
    dial_rx: mpsc::Receiver<DialEvent>,
    /// The agents held in the ACD for dials and preview offers.
    holds: Holds,
    /// Answers to hold requests.
    hold_tx: mpsc::Sender<HoldAnswer>,
    hold_rx: mpsc::Receiver<HoldAnswer>,
}

impl std::fmt::Debug for DialerTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialerTask")
            .field("campaigns", &self.campaigns.keys().collect::<Vec<_>>())
            .field("dnc", &self.dnc.len())
            .finish_non_exhaustive()
    }
}

impl DialerTask {
    /// Opens every configured campaign (and those created over gRPC earlier) from
    /// `store`, loads each one's `contacts` file (numbers already in the campaign are
    /// left out, so a restart adds nothing twice), and applies the store's do-not-call
    /// changes to `dnc`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        configs: &[Arc<CampaignConfig>],
        mut dnc: DncList,
        store: Arc<dyn Store>,
        originator: Arc<dyn Originator>,
        bus: EventBus,
        acd: Option<(AcdHandle, Arc<AcdConfig>)>,
        refs: References,
        clock: WallClock,
    ) -> Result<DialerTask, DialerError> {
        let now = clock();
        blocking(|| dnc.load_changes(&*store)).map_err(|e| DialerError::Dnc(e.into()))?;
        let (dial_tx, dial_rx) = mpsc::channel(1024);
        let (hold_tx, hold_rx) = mpsc::channel(256);
        let mut task = DialerTask {
            campaigns: BTreeMap::new(),
            dnc,
            store,
            originator,
            bus,
            acd,
            refs,
            clock,
            by_call: HashMap::new(),
            dial_tx,
            dial_rx,
            holds: Holds::default(),
            hold_tx,
            hold_rx,
        };
        for cfg in configs {
            let c = blocking(|| Campaign::open(cfg.clone(), task.store.clone(), now))?;
            task.campaigns.insert(cfg.name.clone(), c);
            if let Some(path) = &cfg.contacts {
                task.load_file(&cfg.name, path, now);
            }
        }
        let created = blocking(|| task.store.scan_prefix(CREATED_TREE, b""))
            .map_err(|e| DialerError::Campaign(e.into()))?;
        for (k, v) in created {
            let name = String::from_utf8_lossy(&k).to_string();
            if task.campaigns.contains_key(&name) {
                warn!(campaign = %name, "a created campaign has the name of a configured one: the config's wins");
                continue;
            }
            let parsed = std::str::from_utf8(&v)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<toml::Table>(t).map_err(|e| e.to_string()))
                .and_then(|t| task.refs.parse(&t, CREATED_TREE));
            match parsed {
                Ok(cfg) => {
                    let c = blocking(|| Campaign::open(Arc::new(cfg), task.store.clone(), now))?;
                    task.campaigns.insert(name, c);
                }
                Err(e) => {
                    warn!(campaign = %name, error = %e, "created campaign no longer valid: not opened")
                }
            }
        }
        Ok(task)
    }

    fn load_file(&mut self, name: &str, path: &std::path::Path, now: SystemTime) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                warn!(campaign = %name, file = %path.display(), error = %e, "cannot read the contact list");
                return;
            }
        };
        match self.load(name, &bytes, now) {
            Ok(r) => {
                for e in &r.rejected {
                    warn!(campaign = %name, file = %path.display(), line = e.line, reason = %e.reason, "contact row refused");
                }
                info!(campaign = %name, file = %path.display(), added = r.added, "contact list loaded");
            }
            Err(e) => {
                warn!(campaign = %name, file = %path.display(), error = %e, "contact list not loaded")
            }
        }
    }

    /// Holds each preview or progressive dial's agent in the ACD
    /// ([`crate::acd::task::CallToAcd::Hold`]) from the dial until it connects or ends,
    /// so inbound routing does not offer that agent a queued call meanwhile.
    pub fn with_holds(mut self, calls: crate::acd::task::AcdCalls) -> Self {
        self.holds.calls = Some(calls);
        self
    }

    /// Starts the task; returns its handle.
    pub fn spawn(self) -> DialerHandle {
        let (tx, rx) = mpsc::channel(64);
        let events = self.bus.subscribe();
        tokio::spawn(self.run(rx, events));
        DialerHandle { tx }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<DialerCommand>,
        mut events: broadcast::Receiver<Arc<crate::events::BusEvent>>,
    ) {
        self.refresh_agents(None).await;
        // Every campaign's figures also go out on a slow tick (the first at once), so a
        // monitor that started after the last change still learns them; it drops
        // figures that did not change.
        let mut figures_tick = tokio::time::interval(FIGURES_EVERY);
        figures_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut now = (self.clock)();
            self.pump(now);
            // Released agents may serve another campaign now (bounded: a pump releases
            // only holds whose offers or dials ended).
            for _ in 0..4 {
                if self.holds.released.is_empty() {
                    break;
                }
                for agent in std::mem::take(&mut self.holds.released) {
                    self.refresh_agents(Some(&agent)).await;
                }
                now = (self.clock)();
                self.pump(now);
            }
            let sleep = self
                .poll_timeout(now)
                .map(|t| t.duration_since((self.clock)()).unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => self.handle_command(c),
                    None => break,
                },
                Some(d) = self.dial_rx.recv() => self.handle_dial(d),
                Some(h) = self.hold_rx.recv() => self.handle_hold(h),
                e = events.recv() => match e {
                    Ok(ev) => self.handle_bus(&ev.event).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "dialer lagged on the event bus: re-reading agents");
                        self.refresh_agents(None).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep(sleep) => {}
                _ = figures_tick.tick() => {
                    for c in self.campaigns.values() {
                        self.bus.publish(Event::Campaign(stats_of(&c.figures())));
                    }
                }
            }
        }
        debug!("dialer task stopped");
    }

    /// The earliest campaign timer after `pumped` (the time of the last
    /// [`DialerTask::pump`]): a contact that was due then and still waits, waits for an
    /// input (an agent, a result, a command), not for time.
    fn poll_timeout(&self, pumped: SystemTime) -> Option<SystemTime> {
        self.campaigns
            .values()
            .filter_map(|c| c.poll_timeout())
            .filter(|t| *t > pumped)
            .min()
    }

    /// Places every dial the campaigns want at `now` and publishes their figures.
    fn pump(&mut self, now: SystemTime) {
        let names: Vec<String> = self.campaigns.keys().cloned().collect();
        for name in names {
            let Some(c) = self.campaigns.get_mut(&name) else {
                continue;
            };
            // With holds, preview offers and progressive dials are claimed first and
            // go out once the ACD holds the agent.
            c.set_claim_first(self.holds.calls.is_some());
            let mut claims = Vec::new();
            loop {
                match blocking(|| c.poll_preview(now, &self.dnc)) {
                    Ok(Some(offer)) if self.holds.calls.is_some() => claims.push(offer),
                    Ok(Some(offer)) => {
                        // No ACD to show the offer: accept it at once.
                        info!(campaign = %name, agent = %offer.agent, attempt = offer.attempt, "preview offer accepted (auto)");
                        let _ = c.handle_preview_accept(offer.attempt);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(campaign = %name, error = %e, "preview failed");
                        break;
                    }
                }
            }
            loop {
                match blocking(|| c.poll_preview_timeout(now)) {
                    Ok(Some((attempt, agent))) => {
                        info!(campaign = %name, attempt, agent = %agent, "preview offer timed out: skipped, agent released");
                        // The agent's client learns it before the hold's release below
                        // (the same channel keeps the order).
                        if let Some(calls) = &self.holds.calls {
                            let _ = calls.send(CallToAcd::PreviewEnded {
                                agent: agent.as_str().into(),
                                campaign: name.clone(),
                                attempt,
                                reason: "timed out".into(),
                            });
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(campaign = %name, error = %e, "preview timeout not recorded");
                        break;
                    }
                }
            }
            // Release the holds of offers that ended (skipped, timed out, withdrawn)
            // before asking new ones: the ACD holds an agent once.
            let ended: Vec<AttemptId> = self
                .holds
                .held
                .keys()
                .filter(|(n, a)| *n == name && !c.is_live(*a))
                .map(|(_, a)| *a)
                .collect();
            for attempt in ended {
                self.holds.release(&name, attempt);
            }
            for offer in claims {
                self.request_hold(&name, offer);
            }
            let Some(c) = self.campaigns.get_mut(&name) else {
                continue;
            };
            loop {
                match blocking(|| c.poll_dial(now, &self.dnc)) {
                    Ok(Some(req)) => {
                        let dial = originate_of(c.config(), req);
                        let attempt = dial.request.attempt;
                        info!(campaign = %name, attempt, agent = ?dial.request.agent, "dialing");
                        if let Some(agent) = dial.request.agent.as_deref() {
                            // Claimed dials were held before; others hold now.
                            if !self.holds.held.contains_key(&(name.clone(), attempt)) {
                                self.holds.hold(&name, attempt, agent);
                            }
                        }
                        let rx = self.originator.originate(dial);
                        tokio::spawn(forward(name.clone(), attempt, rx, self.dial_tx.clone()));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(campaign = %name, error = %e, "cannot dial: store failed");
                        break;
                    }
                }
            }
            while let Some(ev) = c.poll_event() {
                match ev {
                    CampaignEvent::Figures(f) => {
                        self.bus.publish(Event::Campaign(stats_of(&f)));
                    }
                    CampaignEvent::ContactDone { contact, state } => {
                        debug!(campaign = %name, contact, state = ?state, "contact final")
                    }
                }
            }
        }
    }

    fn info(c: &Campaign) -> CampaignInfo {
        CampaignInfo {
            mode: c.config().mode,
            figures: c.figures(),
        }
    }

    fn campaign(&mut self, name: &str) -> Result<&mut Campaign, DialerError> {
        self.campaigns
            .get_mut(name)
            .ok_or_else(|| DialerError::NotFound(name.to_string()))
    }

    fn load(&mut self, name: &str, csv: &[u8], now: SystemTime) -> Result<LoadResult, DialerError> {
        let c = self.campaign(name)?;
        let import = parse_csv_bytes(csv, c.config().default_country)?;
        let lines: Vec<usize> = import.lines.clone();
        let report = blocking(|| c.load_contacts(now, import.contacts))?;
        let mut rejected = import.errors;
        for (i, number) in report.duplicates {
            rejected.push(RowError {
                line: lines.get(i).copied().unwrap_or(0),
                reason: format!("{number} is already in the campaign"),
            });
        }
        rejected.sort_by_key(|e| e.line);
        Ok(LoadResult {
            added: report.added,
            rejected,
            info: Self::info(c),
        })
    }

    /// Handles one command.
    pub fn handle_command(&mut self, cmd: DialerCommand) {
        let now = (self.clock)();
        match cmd {
            DialerCommand::Create { table, reply } => {
                let _ = reply.send(self.create(table, now));
            }
            DialerCommand::Load { name, csv, reply } => {
                let _ = reply.send(self.load(&name, &csv, now));
            }
            DialerCommand::Control {
                name,
                action,
                reply,
            } => {
                let r = self.campaign(&name).and_then(|c| {
                    blocking(|| match action {
                        Control::Start => c.start(now),
                        Control::Pause => c.pause(now),
                        Control::Resume => c.resume(now),
                        Control::Stop => c.stop(now),
                    })?;
                    info!(campaign = %name, ?action, state = c.state().as_str(), "campaign command");
                    Ok(Self::info(c))
                });
                let _ = reply.send(r);
            }
            DialerCommand::Status { name, reply } => {
                let _ = reply.send(self.campaign(&name).map(|c| Self::info(c)));
            }
            DialerCommand::List { reply } => {
                let _ = reply.send(Ok(self.campaigns.values().map(Self::info).collect()));
            }
            DialerCommand::AddDnc {
                numbers,
                country,
                reply,
            } => {
                let _ = reply.send(self.change_dnc(&numbers, &country, true));
            }
            DialerCommand::RemoveDnc {
                numbers,
                country,
                reply,
            } => {
                let _ = reply.send(self.change_dnc(&numbers, &country, false));
            }
            DialerCommand::PreviewDecision {
                agent,
                campaign,
                attempt,
                accept,
                reply,
            } => {
                let _ = reply.send(self.decide(now, &agent, campaign.as_deref(), attempt, accept));
            }
            DialerCommand::ListAttempts {
                name,
                contact,
                limit,
                reply,
            } => {
                let r = self.campaign(&name).and_then(|c| {
                    let list = blocking(|| c.recent_attempts(contact, limit))?;
                    Ok(list.into_iter().map(|a| attempt_info(c, a)).collect())
                });
                let _ = reply.send(r);
            }
            DialerCommand::ReportFalsePositive {
                name,
                attempt,
                reply,
            } => {
                let r = self.campaign(&name).and_then(|c| {
                    let counted = blocking(|| c.handle_false_positive(now, attempt))?;
                    let rec = blocking(|| c.attempt(attempt))?;
                    info!(campaign = %name, attempt, counted, "AMD false positive reported");
                    Ok(FalsePositiveResult {
                        counted,
                        attempt: attempt_info(c, rec),
                        info: Self::info(c),
                    })
                });
                let _ = reply.send(r);
            }
            DialerCommand::ListDnc {
                after,
                limit,
                reply,
            } => {
                let r = match after.as_deref().filter(|a| !a.is_empty()) {
                    None => Ok(None),
                    Some(a) => E164::from_e164(a)
                        .map(Some)
                        .map_err(|e| DialerError::Invalid(format!("after {a:?}: {e}"))),
                }
                .map(|after| DncPage {
                    numbers: self
                        .dnc
                        .list(after.as_ref(), limit)
                        .into_iter()
                        .map(|n| n.to_string())
                        .collect(),
                    total: self.dnc.len() as u64,
                });
                let _ = reply.send(r);
            }
        }
    }

    /// Asks the ACD to hold a claimed offer's agent; the answer comes back as a
    /// [`HoldAnswer`] (preview offers are shown to the agent when the hold is granted).
    fn request_hold(&mut self, name: &str, offer: super::campaign::PreviewOffer) {
        let Some(c) = self.campaigns.get_mut(name) else {
            return;
        };
        let preview = (c.config().mode == DialMode::Preview).then(|| {
            let mut columns = offer.variables.clone();
            let script = columns.remove("script").unwrap_or_default();
            CallPreview {
                campaign: name.to_string(),
                attempt: offer.attempt,
                number: offer.number.to_string(),
                name: columns.get("contact_name").cloned().unwrap_or_default(),
                columns,
                script,
                deadline: c.config().preview_timeout,
            }
        });
        let (reply, answer) = oneshot::channel();
        let sent = self.holds.calls.as_ref().is_some_and(|calls| {
            calls.send(CallToAcd::Reserve {
                agent: offer.agent.as_str().into(),
                preview,
                reply,
            })
        });
        let mut ans = HoldAnswer {
            campaign: name.to_string(),
            attempt: offer.attempt,
            agent: offer.agent,
            result: Err(HoldRefused::UnknownAgent(
                "(the ACD did not take the request)".into(),
            )),
        };
        if !sent {
            self.handle_hold(ans);
            return;
        }
        let tx = self.hold_tx.clone();
        tokio::spawn(async move {
            if let Ok(r) = answer.await {
                ans.result = r;
            }
            let _ = tx.send(ans).await;
        });
    }

    /// The ACD's answer to a hold request.
    fn handle_hold(&mut self, h: HoldAnswer) {
        let now = (self.clock)();
        let key = (h.campaign.clone(), h.attempt);
        let Some(c) = self.campaigns.get_mut(&h.campaign) else {
            return;
        };
        let still = c.offer_agent(h.attempt) == Some(h.agent.as_str());
        match h.result {
            Ok(()) if still => {
                self.holds.held.insert(key, h.agent.as_str().into());
                if c.config().mode == DialMode::Preview {
                    info!(campaign = %h.campaign, attempt = h.attempt, agent = %h.agent, "preview offer shown; agent held");
                } else if let Err(e) = c.handle_preview_accept(h.attempt) {
                    warn!(campaign = %h.campaign, attempt = h.attempt, error = %e, "claim lost");
                }
            }
            Ok(()) => {
                // The offer ended while the hold was on its way: release at once.
                self.holds.held.insert(key.clone(), h.agent.as_str().into());
                self.holds.release(&key.0, key.1);
            }
            Err(e) => {
                info!(campaign = %h.campaign, attempt = h.attempt, agent = %h.agent, reason = %e, "agent hold refused: not dialing");
                if still {
                    if let Err(e) = c.handle_hold_refused(now, h.attempt) {
                        warn!(campaign = %h.campaign, attempt = h.attempt, error = %e, "claim not withdrawn");
                    }
                }
            }
        }
    }

    /// A preview agent's decision (see [`DialerCommand::PreviewDecision`]).
    fn decide(
        &mut self,
        now: SystemTime,
        agent: &str,
        campaign: Option<&str>,
        attempt: AttemptId,
        accept: bool,
    ) -> Result<(), DialerError> {
        let mut other = false;
        let mut found = None;
        for (name, c) in &self.campaigns {
            if campaign.is_some_and(|n| n != name) || c.config().mode != DialMode::Preview {
                continue;
            }
            match c.offer_agent(attempt) {
                // Shown only once held: an offer whose hold is on its way is not
                // pending yet.
                Some(a) if a == agent && self.holds.held.contains_key(&(name.clone(), attempt)) => {
                    found = Some(name.clone());
                    break;
                }
                Some(a) if a != agent => other = true,
                _ => {}
            }
        }
        let Some(name) = found else {
            return Err(if other {
                DialerError::NotYours {
                    attempt,
                    agent: agent.to_string(),
                }
            } else {
                DialerError::NoOffer(attempt)
            });
        };
        let c = self.campaign(&name)?;
        if accept {
            c.handle_preview_accept(attempt)?;
            info!(campaign = %name, attempt, agent, "preview accepted: dialing");
        } else {
            blocking(|| c.handle_preview_skip(now, attempt))?;
            info!(campaign = %name, attempt, agent, "preview skipped");
        }
        Ok(())
    }

    fn create(&mut self, table: toml::Table, now: SystemTime) -> Result<CampaignInfo, DialerError> {
        let name = table
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if self.campaigns.contains_key(&name) {
            return Err(DialerError::Exists(name));
        }
        let cfg = self
            .refs
            .parse(&table, "Create")
            .map_err(DialerError::Invalid)?;
        let text = toml::to_string(&table).map_err(|e| DialerError::Invalid(e.to_string()))?;
        let store = self.store.clone();
        let c = blocking(|| -> Result<Campaign, DialerError> {
            store
                .put(CREATED_TREE, name.as_bytes(), text.as_bytes())
                .and_then(|_| store.flush())
                .map_err(|e| DialerError::Campaign(e.into()))?;
            Ok(Campaign::open(Arc::new(cfg), store.clone(), now)?)
        })?;
        info!(campaign = %name, "campaign created");
        let info = Self::info(&c);
        self.campaigns.insert(name, c);
        Ok(info)
    }

    fn change_dnc(
        &mut self,
        numbers: &[String],
        country: &str,
        add: bool,
    ) -> Result<DncChange, DialerError> {
        let country = if country.is_empty() { "US" } else { country };
        let default: &'static Country = Country::by_alpha2(country)
            .ok_or_else(|| DialerError::Invalid(format!("unknown country {country:?}")))?;
        // Read every number first: nothing changes when one cannot be read.
        let mut parsed = Vec::with_capacity(numbers.len());
        for n in numbers {
            let e = E164::parse(n, default).map_err(|source| DncError::Number {
                number: n.clone(),
                source,
            })?;
            parsed.push(e);
        }
        let mut out = DncChange::default();
        for n in parsed {
            let s = n.to_string();
            let changed = blocking(|| {
                if add {
                    self.dnc.add(&*self.store, n.as_str(), default)
                } else {
                    self.dnc.remove(&*self.store, n.as_str(), default)
                }
            })?;
            if changed {
                info!(number = %s, add, "do-not-call list changed");
                out.changed.push(s);
            } else {
                out.unchanged.push(s);
            }
        }
        Ok(out)
    }

    fn handle_dial(&mut self, d: DialEvent) {
        let now = (self.clock)();
        match d.event {
            OriginateEvent::Ringing => {
                debug!(campaign = %d.campaign, attempt = d.attempt, "ringing")
            }
            OriginateEvent::Answered { amd } => {
                debug!(campaign = %d.campaign, attempt = d.attempt, ?amd, "answered");
                // A machine wants no agent: predictive pacing stops counting it.
                if amd == Some(super::amd::AmdOutcome::Machine) {
                    if let Some(c) = self.campaigns.get_mut(&d.campaign) {
                        c.handle_settled(d.attempt);
                    }
                }
            }
            OriginateEvent::Connected { agent, call } => {
                info!(campaign = %d.campaign, attempt = d.attempt, agent = %agent, call, "connected to agent");
                if let Some(c) = self.campaigns.get_mut(&d.campaign) {
                    c.handle_settled(d.attempt);
                }
                self.holds.release(&d.campaign, d.attempt);
                self.by_call.retain(|_, (_, _, at)| {
                    now.duration_since(*at).unwrap_or_default() < DISPOSITION_MEMORY
                });
                self.by_call.insert(call, (d.campaign, d.attempt, now));
            }
            OriginateEvent::Abandoned => {
                info!(campaign = %d.campaign, attempt = d.attempt, "person abandoned: counted in the window now");
                if let Some(c) = self.campaigns.get_mut(&d.campaign) {
                    c.handle_abandoning(now, d.attempt);
                }
            }
            OriginateEvent::Done(result) => {
                self.holds.release(&d.campaign, d.attempt);
                let Some(c) = self.campaigns.get_mut(&d.campaign) else {
                    return;
                };
                match blocking(|| c.handle_result(now, d.attempt, result.clone())) {
                    Ok(outcome) => {
                        info!(campaign = %d.campaign, attempt = d.attempt, ?result, outcome = ?outcome, "dial ended")
                    }
                    Err(e) => {
                        warn!(campaign = %d.campaign, attempt = d.attempt, error = %e, "dial result not recorded")
                    }
                }
            }
        }
    }

    async fn handle_bus(&mut self, ev: &Event) {
        match ev {
            Event::AgentState { agent, .. } => self.refresh_agents(Some(agent)).await,
            Event::Disposition {
                agent,
                call,
                disposition,
                note,
            } => {
                // Kept (not removed): a later disposition for the same call replaces
                // this one; the entry expires after DISPOSITION_MEMORY.
                let Some((name, attempt, _)) = self.by_call.get(call).cloned() else {
                    return;
                };
                if let Some(c) = self.campaigns.get_mut(&name) {
                    match blocking(|| c.handle_disposition(attempt, disposition, note)) {
                        Ok(()) => {
                            info!(campaign = %name, attempt, agent = %agent, disposition = %disposition, "disposition stored")
                        }
                        Err(e) => {
                            warn!(campaign = %name, attempt, error = %e, "disposition not stored")
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Asks the ACD for one agent's status (or every campaign agent's, with `None`) and
    /// tells the campaigns of its queues.
    async fn refresh_agents(&mut self, only: Option<&str>) {
        let Some((acd, cfg)) = self.acd.clone() else {
            return;
        };
        // Agent → the campaigns whose queue it serves.
        let mut wanted: BTreeMap<Arc<str>, Vec<String>> = BTreeMap::new();
        for (name, c) in &self.campaigns {
            let Some(q) = c.config().queue.as_deref().and_then(|q| cfg.queue(q)) else {
                continue;
            };
            for m in &q.members {
                if only.is_none_or(|o| o == &**m) {
                    wanted.entry(m.clone()).or_default().push(name.clone());
                }
            }
        }
        for (agent, campaigns) in wanted {
            let a = agent.clone();
            let status = acd
                .ask(|reply| crate::acd::api::AcdCommand::Status { agent: a, reply })
                .await;
            let Ok(status) = status else {
                continue;
            };
            let view = AgentView {
                id: agent.to_string(),
                availability: availability(&status.state),
            };
            let now = (self.clock)();
            for name in campaigns {
                if let Some(c) = self.campaigns.get_mut(&name) {
                    c.handle_agent(now, &view);
                }
            }
        }
    }
}

/// An attempt with its contact's name.
fn attempt_info(c: &Campaign, record: AttemptRecord) -> AttemptInfo {
    AttemptInfo {
        contact_name: c
            .contact(record.contact)
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        record,
    }
}

/// The agents the dialer holds in the ACD (hidden from inbound routing), one per dial
/// or preview offer.
#[derive(Default)]
struct Holds {
    /// Where holds go (see [`DialerTask::with_holds`]); `None`: nothing is held.
    calls: Option<crate::acd::task::AcdCalls>,
    /// The agent held per (campaign, attempt).
    held: HashMap<(String, AttemptId), crate::acd::AgentId>,
    /// Agents whose hold was just released: every campaign re-reads them (one whose hold
    /// was refused because another campaign held the agent marked it busy meanwhile).
    released: Vec<crate::acd::AgentId>,
}

impl Holds {
    /// Holds `agent` for `campaign`'s `attempt`.
    fn hold(&mut self, campaign: &str, attempt: AttemptId, agent: &str) {
        if self.calls.is_none() {
            return;
        }
        let agent: crate::acd::AgentId = agent.into();
        self.held
            .insert((campaign.to_string(), attempt), agent.clone());
        self.send(agent, true);
    }

    /// Releases the agent held for `campaign`'s `attempt`, if any.
    fn release(&mut self, campaign: &str, attempt: AttemptId) {
        if let Some(agent) = self.held.remove(&(campaign.to_string(), attempt)) {
            self.released.push(agent.clone());
            self.send(agent, false);
        }
    }

    fn send(&self, agent: crate::acd::AgentId, hold: bool) {
        let Some(calls) = &self.calls else {
            return;
        };
        if !calls.send(CallToAcd::Hold {
            agent: agent.clone(),
            hold,
        }) {
            warn!(agent = %agent, hold, "the ACD did not take the agent hold");
        }
    }
}

/// The dial to hand to the call side for a campaign's request.
pub fn originate_of(cfg: &CampaignConfig, request: DialRequest) -> Originate {
    let on_human = match cfg.mode {
        DialMode::Preview | DialMode::Progressive => match &request.agent {
            Some(a) => HumanRoute::Agent(a.as_str().into()),
            None => HumanRoute::Queue(cfg.queue.as_deref().unwrap_or_default().into()),
        },
        DialMode::Predictive => HumanRoute::Queue(cfg.queue.as_deref().unwrap_or_default().into()),
        DialMode::Agentless => HumanRoute::Agentless(
            cfg.message
                .clone()
                .unwrap_or_else(|| AgentlessAction::Prompt(String::new())),
        ),
    };
    let on_machine: MachineAction = cfg.machine.clone();
    Originate {
        request,
        on_human,
        on_machine,
        safe_harbor: cfg.safe_harbor.clone(),
        abandon_after: ABANDON_AFTER,
    }
}

/// Forwards one dial's events into the task; a channel that closes without `Done`
/// counts as a failed dial.
async fn forward(
    campaign: String,
    attempt: AttemptId,
    mut rx: mpsc::Receiver<OriginateEvent>,
    tx: mpsc::Sender<DialEvent>,
) {
    while let Some(event) = rx.recv().await {
        let done = matches!(event, OriginateEvent::Done(_));
        let ev = DialEvent {
            campaign: campaign.clone(),
            attempt,
            event,
        };
        if tx.send(ev).await.is_err() || done {
            return;
        }
    }
    let _ = tx
        .send(DialEvent {
            campaign,
            attempt,
            event: OriginateEvent::Done(CallResult::Failed {
                reason: "the call side dropped the dial without a result".into(),
            }),
        })
        .await;
}

/// A stand-in [`Originator`] for servers without a call-side dialer: every dial ends at
/// once as `Failed { reason: "dialing not wired" }` (counted, retried by the campaign's
/// `retry.failed` rule).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnwiredOriginator;

impl Originator for UnwiredOriginator {
    fn originate(&self, _dial: Originate) -> mpsc::Receiver<OriginateEvent> {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(OriginateEvent::Done(CallResult::Failed {
            reason: "dialing not wired".into(),
        }));
        rx
    }
}

#[cfg(test)]
mod tests;
