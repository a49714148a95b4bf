//! The monitor's task: owns the [`Model`], reads the event bus, the server's figures and
//! the clock, and fans changes out to watchers.
//!
//! Inputs, handled one at a time: bus events (first, so watchers never see a model that
//! lags the bus more than necessary), server figures, commands ([`MonitorHandle`]:
//! snapshot, watch), local midnight. After each input every new change goes to each
//! watcher whose filter selects it, with `try_send` on the watcher's bounded queue:
//! - queue full: the watcher is cut off (its [`Watcher::cut`] fires, its queue closes)
//!   and counted in `caruso_monitor_watchers_cut_total`;
//! - queue closed (the client went away): the watcher is removed.
//!
//! The hub never awaits a watcher. When its own bus receiver lags, or the model sees a
//! gap, it asks the ACD for a fresh view ([`AcdCommand::Snapshot`]), re-synchronises the
//! model and sends each watcher a new snapshot ([`Update::Snapshot`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::clock::LocalDays;
use super::model::{Change, Filter, Model, ServerFigures, Snapshot};
use super::MonitorError;
use crate::acd::api::{AcdCommand, AcdHandle, AcdView};
use crate::api::ServerStats;
use crate::events::{BusEvent, EventBus};

/// Times the monitor re-synchronised from the ACD after missing bus events (counter).
pub use crate::metrics::MONITOR_RESYNCS as RESYNCS;
/// Watchers connected now (gauge).
pub use crate::metrics::MONITOR_WATCHERS as WATCHERS;
/// Watchers cut off for reading too slowly (counter).
pub use crate::metrics::MONITOR_WATCHERS_CUT as WATCHERS_CUT;

/// Messages a watcher may leave unread before it is cut off.
pub const WATCHER_BUFFER: usize = 1024;

/// Tunables of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSettings {
    /// Each watcher's queue capacity ([`WATCHER_BUFFER`]).
    pub watcher_buffer: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            watcher_buffer: WATCHER_BUFFER,
        }
    }
}

/// What a watcher receives after its first snapshot.
#[derive(Debug, Clone)]
pub enum Update {
    /// A change the watcher's filter selects.
    Change {
        /// The `seq` of the previous message sent to this watcher (the first snapshot's
        /// for the first change).
        prev_seq: u64,
        /// The change (shared by every watcher).
        change: Arc<Change>,
    },
    /// The hub re-synchronised: replace everything with this snapshot.
    Snapshot(Arc<Snapshot>),
}

/// A registered watcher: its first snapshot, then its updates.
#[derive(Debug)]
pub struct Watcher {
    /// The model (filtered) when the watch began.
    pub snapshot: Snapshot,
    /// Later updates, in order; closes when the watcher is cut off or the hub stops.
    pub updates: mpsc::Receiver<Update>,
    /// Resolves `Ok` when the watcher was cut off for reading too slowly (then the error
    /// is `too_slow`); `Err` when the hub stopped or dropped it otherwise.
    pub cut: oneshot::Receiver<MonitorError>,
}

enum Command {
    Snapshot {
        filter: Filter,
        reply: oneshot::Sender<Result<Snapshot, MonitorError>>,
    },
    Watch {
        filter: Filter,
        reply: oneshot::Sender<Result<Watcher, MonitorError>>,
    },
}

/// The address of the monitor task (cheap to clone).
#[derive(Debug, Clone)]
pub struct MonitorHandle {
    tx: mpsc::Sender<Command>,
}

impl MonitorHandle {
    /// The model as `filter` sees it now.
    pub async fn snapshot(&self, filter: Filter) -> Result<Snapshot, MonitorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot { filter, reply })
            .await
            .map_err(|_| MonitorError::Stopped)?;
        rx.await.map_err(|_| MonitorError::Stopped)?
    }

    /// Registers a watcher with `filter`.
    pub async fn watch(&self, filter: Filter) -> Result<Watcher, MonitorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Watch { filter, reply })
            .await
            .map_err(|_| MonitorError::Stopped)?;
        rx.await.map_err(|_| MonitorError::Stopped)?
    }
}

struct Slot {
    id: u64,
    filter: Filter,
    tx: mpsc::Sender<Update>,
    cut: Option<oneshot::Sender<MonitorError>>,
    last: u64,
}

struct Hub {
    model: Model,
    bus: broadcast::Receiver<Arc<BusEvent>>,
    acd: Option<AcdHandle>,
    bus_handle: EventBus,
    stats: Option<watch::Receiver<ServerStats>>,
    watchers: Vec<Slot>,
    next_id: u64,
    settings: HubSettings,
}

/// Starts the monitor over `bus` (subscribed before the first view is asked for, so
/// nothing is lost between them), the ACD (`None`: no agents or queues), the server's
/// figures and the local days of the daily counters. Must run inside a tokio runtime.
pub fn spawn(
    bus: &EventBus,
    acd: Option<AcdHandle>,
    stats: Option<watch::Receiver<ServerStats>>,
    days: LocalDays,
    settings: HubSettings,
) -> MonitorHandle {
    let receiver = bus.subscribe();
    let (tx, rx) = mpsc::channel(256);
    let bus = bus.clone();
    tokio::spawn(async move {
        let figures = stats
            .as_ref()
            .map(|s| figures(&s.borrow()))
            .unwrap_or_default();
        let view = fetch_view(acd.as_ref(), &bus).await;
        let hub = Hub {
            model: Model::new(&view, days, figures),
            bus: receiver,
            acd,
            bus_handle: bus,
            stats,
            watchers: Vec::new(),
            next_id: 1,
            settings,
        };
        hub.run(rx).await;
    });
    MonitorHandle { tx }
}

fn figures(s: &ServerStats) -> ServerFigures {
    ServerFigures {
        active_calls: s.active_calls,
        registrations: s.registrations,
    }
}

/// The ACD's view, or an empty one (no ACD, or it stopped) at the bus's position.
async fn fetch_view(acd: Option<&AcdHandle>, bus: &EventBus) -> AcdView {
    if let Some(acd) = acd {
        match acd.ask(|reply| AcdCommand::Snapshot { reply }).await {
            Ok(view) => return view,
            Err(e) => warn!(error = %e, "monitor: no view from the ACD"),
        }
    }
    AcdView {
        bus_seq: bus.last_seq(),
        wall_ms: crate::call::unix_ms(),
        agents: Vec::new(),
        queues: Vec::new(),
        waiting: Vec::new(),
        connected: Vec::new(),
    }
}

impl Hub {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let midnight = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(midnight);
        loop {
            if self.model.needs_resync() {
                self.resync().await;
            }
            let wait = self
                .model
                .poll_timeout()
                .saturating_sub(crate::call::unix_ms());
            // Wake at least hourly: the wall clock may have been set meanwhile.
            let wait = Duration::from_millis(wait).min(Duration::from_secs(3600));
            midnight.as_mut().reset(tokio::time::Instant::now() + wait);
            tokio::select! {
                biased;
                ev = self.bus.recv() => match ev {
                    Ok(ev) => self.model.handle_event(&ev),
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "monitor fell behind the event bus: re-synchronising");
                        self.model.lost_events();
                    }
                    Err(RecvError::Closed) => break,
                },
                changed = changed(&mut self.stats) => match changed {
                    Some(f) => self.model.handle_server(crate::call::unix_ms(), f),
                    None => self.stats = None,
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                () = &mut midnight => self.model.handle_timeout(crate::call::unix_ms()),
            }
            self.fan_out();
        }
        metrics::gauge!(WATCHERS).set(0.0);
        debug!("monitor stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Snapshot { filter, reply } => {
                let r = self
                    .check(&filter)
                    .map(|()| self.model.snapshot(crate::call::unix_ms(), &filter));
                let _ = reply.send(r);
            }
            Command::Watch { filter, reply } => {
                if let Err(e) = self.check(&filter) {
                    let _ = reply.send(Err(e));
                    return;
                }
                // Changes are fanned out after every input: the model has none pending,
                // so the snapshot and the watcher's first change follow each other.
                let snapshot = self.model.snapshot(crate::call::unix_ms(), &filter);
                let (tx, updates) = mpsc::channel(self.settings.watcher_buffer.max(1));
                let (cut_tx, cut) = oneshot::channel();
                let id = self.next_id;
                self.next_id += 1;
                let last = snapshot.seq;
                if reply
                    .send(Ok(Watcher {
                        snapshot,
                        updates,
                        cut,
                    }))
                    .is_ok()
                {
                    self.watchers.push(Slot {
                        id,
                        filter,
                        tx,
                        cut: Some(cut_tx),
                        last,
                    });
                    metrics::gauge!(WATCHERS).set(self.watchers.len() as f64);
                    debug!(watcher = id, "monitor watcher added");
                }
            }
        }
    }

    fn check(&self, filter: &Filter) -> Result<(), MonitorError> {
        if let Some(q) = filter.queues().iter().find(|q| !self.model.has_queue(q)) {
            return Err(MonitorError::UnknownQueue(q.clone()));
        }
        if let Some(a) = filter.agents().iter().find(|a| !self.model.has_agent(a)) {
            return Err(MonitorError::UnknownAgent(a.clone()));
        }
        Ok(())
    }

    /// Sends every pending change to the watchers that select it.
    fn fan_out(&mut self) {
        while let Some(change) = self.model.poll_change() {
            let change = Arc::new(change);
            let buffer = self.settings.watcher_buffer;
            let before = self.watchers.len();
            self.watchers.retain_mut(|w| {
                if !change.selected_by(&w.filter) {
                    return true;
                }
                let update = Update::Change {
                    prev_seq: w.last,
                    change: change.clone(),
                };
                deliver(w, update, change.seq, buffer)
            });
            if self.watchers.len() != before {
                metrics::gauge!(WATCHERS).set(self.watchers.len() as f64);
            }
        }
    }

    /// Fetches a fresh view from the ACD and sends every watcher a new snapshot.
    async fn resync(&mut self) {
        metrics::counter!(RESYNCS).increment(1);
        let view = fetch_view(self.acd.as_ref(), &self.bus_handle).await;
        self.model.resync(&view);
        // Changes the resync made (none today) precede the snapshots.
        self.fan_out();
        let now = crate::call::unix_ms();
        let buffer = self.settings.watcher_buffer;
        let model = &self.model;
        self.watchers.retain_mut(|w| {
            let snap = Arc::new(model.snapshot(now, &w.filter));
            let seq = snap.seq;
            deliver(w, Update::Snapshot(snap), seq, buffer)
        });
        metrics::gauge!(WATCHERS).set(self.watchers.len() as f64);
        info!(
            watchers = self.watchers.len(),
            seq = self.model.seq(),
            "monitor re-synchronised"
        );
    }
}

/// Tries to queue `update` for `w`; false when the watcher is to be dropped.
fn deliver(w: &mut Slot, update: Update, seq: u64, buffer: usize) -> bool {
    match w.tx.try_send(update) {
        Ok(()) => {
            w.last = seq;
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            warn!(watcher = w.id, buffer, "monitor watcher too slow: cut off");
            metrics::counter!(WATCHERS_CUT).increment(1);
            if let Some(cut) = w.cut.take() {
                let _ = cut.send(MonitorError::TooSlow { buffer });
            }
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            debug!(watcher = w.id, "monitor watcher gone");
            false
        }
    }
}

/// The next server figures that differ in what the monitor shows; `None` when the
/// sender is gone (or there is no receiver: then it never resolves).
async fn changed(stats: &mut Option<watch::Receiver<ServerStats>>) -> Option<ServerFigures> {
    let Some(rx) = stats else {
        return std::future::pending().await;
    };
    rx.changed().await.ok()?;
    Some(figures(&rx.borrow_and_update()))
}

#[cfg(test)]
mod tests;
