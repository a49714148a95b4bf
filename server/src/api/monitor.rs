//! `caruso.v1.Monitor`: the supervisor's live view, over a [`MonitorHandle`].
//!
//! `Snapshot` answers the hub's filtered model. `Watch` streams the watcher's first
//! snapshot, then its updates; the stream ends with `RESOURCE_EXHAUSTED` ("watcher too
//! slow") as soon as the hub cut the watcher off (buffered updates are dropped then: the
//! client is behind anyway and must watch again), or `UNAVAILABLE` when the monitor
//! stops. Authorization (supervisor, admin) is the API layer's, not this service's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::monitor_server;
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::acd::AgentState;
use crate::events::CampaignStats;
use crate::monitor::hub::{MonitorHandle, Update, Watcher};
use crate::monitor::model::{
    AgentRow, CallRow, Change, Delta, Filter, Outcome, QueueFigures, ServerFigures, Snapshot,
};
use crate::monitor::MonitorError;

/// Implementation of the `caruso.v1.Monitor` gRPC service.
#[derive(Debug, Clone)]
pub struct MonitorService {
    monitor: MonitorHandle,
}

impl MonitorService {
    /// The service over the monitor task's handle.
    pub fn new(monitor: MonitorHandle) -> Self {
        Self { monitor }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wire form of an agent's row at `at_ms`.
fn agent_out(a: &AgentRow, at_ms: u64) -> pb::MonitorAgent {
    let (state, reason, call) = match &a.state {
        AgentState::LoggedOut => (pb::AgentState::LoggedOut, String::new(), None),
        AgentState::Ready => (pb::AgentState::Ready, String::new(), None),
        AgentState::Reserved(c) => (pb::AgentState::Reserved, String::new(), Some(*c)),
        AgentState::OnCall(c) => (pb::AgentState::OnCall, String::new(), Some(*c)),
        AgentState::WrapUp => (pb::AgentState::WrapUp, String::new(), None),
        AgentState::NotReady(r) => (pb::AgentState::NotReady, r.clone(), None),
    };
    pb::MonitorAgent {
        agent: a.agent.to_string(),
        name: a.name.clone(),
        state: state.into(),
        reason,
        call,
        call_queue: a.call_queue.as_ref().map(|q| q.to_string()),
        since_unix_ms: a.since_ms,
        in_state_ms: at_ms.saturating_sub(a.since_ms),
        queues: a.queues.iter().map(|q| q.to_string()).collect(),
    }
}

/// The wire form of a waiting call at `at_ms`.
fn call_out(c: &CallRow, at_ms: u64) -> pb::QueuedCall {
    pb::QueuedCall {
        call: c.call,
        position: c.position,
        priority: c.priority,
        queued_at_unix_ms: c.queued_at_ms,
        wait_ms: at_ms.saturating_sub(c.queued_at_ms),
        ringing: c.ringing.iter().map(|a| a.to_string()).collect(),
    }
}

/// The wire form of a queue's figures at `at_ms`.
fn figures_out(f: &QueueFigures, at_ms: u64) -> pb::QueueFigures {
    pb::QueueFigures {
        queue: f.queue.to_string(),
        waiting: f.waiting,
        longest_wait_ms: ms(f.longest_wait(at_ms)),
        oldest_queued_at_unix_ms: f.oldest_queued_at_ms,
        agents_ready: f.agents_ready,
        agents_busy: f.agents_busy,
        agents_away: f.agents_away,
        offered_today: f.today.offered,
        answered_today: f.today.answered,
        answered_within_threshold_today: f.today.answered_within,
        abandoned_today: f.today.abandoned,
        exited_today: f.today.exited,
        turned_away_today: f.today.turned_away,
        service_level: f.today.service_level(),
        service_level_threshold_ms: ms(f.threshold),
        expected_wait_ms: ms(f.expected_wait),
    }
}

fn server_out(s: &ServerFigures) -> pb::ServerFigures {
    pb::ServerFigures {
        active_calls: s.active_calls,
        registrations: s.registrations,
    }
}

fn campaign_out(c: &CampaignStats) -> pb::MonitorCampaign {
    pb::MonitorCampaign {
        campaign: c.campaign.clone(),
        state: c.state.clone(),
        dialed: c.dialed,
        in_flight: c.in_flight,
        answered: c.answered,
        human: c.human,
        machine: c.machine,
        busy: c.busy,
        no_answer: c.no_answer,
        failed: c.failed,
        abandoned: c.abandoned,
        abandon_rate_percent: f64::from(c.abandon_rate_bp) / 100.0,
        contacts: c.contacts,
        contacts_left: c.contacts_left,
        today: c.today.day.clone(),
        today_dialed: c.today.dialed,
        today_answered: c.today.answered,
        today_human: c.today.human,
        today_machine: c.today.machine,
        today_abandoned: c.today.abandoned,
    }
}

/// The wire form of a snapshot.
pub fn snapshot_out(s: &Snapshot) -> pb::MonitorSnapshot {
    pb::MonitorSnapshot {
        seq: s.seq,
        at_unix_ms: s.at_ms,
        today: s.today.to_string(),
        agents: s.agents.iter().map(|a| agent_out(a, s.at_ms)).collect(),
        queues: s
            .queues
            .iter()
            .map(|q| pb::MonitorQueue {
                figures: Some(figures_out(&q.figures, s.at_ms)),
                calls: q.calls.iter().map(|c| call_out(c, s.at_ms)).collect(),
            })
            .collect(),
        campaigns: s.campaigns.iter().map(campaign_out).collect(),
        server: Some(server_out(&s.server)),
    }
}

fn outcome_out(o: Outcome) -> pb::QueueOutcome {
    match o {
        Outcome::Answered => pb::QueueOutcome::Answered,
        Outcome::Abandoned => pb::QueueOutcome::Abandoned,
        Outcome::MaxWait => pb::QueueOutcome::MaxWait,
        Outcome::ExitKey => pb::QueueOutcome::ExitKey,
        Outcome::Other => pb::QueueOutcome::Other,
        Outcome::TurnedAway => pb::QueueOutcome::TurnedAway,
    }
}

/// The wire form of a change sent after `prev_seq`.
pub fn change_out(c: &Change, prev_seq: u64) -> pb::MonitorEvent {
    use pb::monitor_event::Event;
    let at = c.at_ms;
    let event = match &c.delta {
        Delta::Agent { row, cause } => Event::Agent(pb::AgentChanged {
            agent: Some(agent_out(row, at)),
            cause: (*cause).to_owned(),
        }),
        Delta::Queue(f) => Event::Queue(pb::QueueChanged {
            figures: Some(figures_out(f, at)),
        }),
        Delta::CallJoined(row) => Event::CallJoined(pb::CallJoinedQueue {
            queue: row.queue.to_string(),
            call: Some(call_out(row, at)),
        }),
        Delta::CallLeft {
            queue,
            call,
            outcome,
            waited,
            agent,
        } => Event::CallLeft(pb::CallLeftQueue {
            queue: queue.to_string(),
            call: *call,
            outcome: outcome_out(*outcome).into(),
            waited_ms: ms(*waited),
            agent: agent.as_ref().map(|a| a.to_string()),
        }),
        Delta::Server(s) => Event::Server(pb::ServerFiguresChanged {
            figures: Some(server_out(s)),
        }),
        Delta::Campaign(c) => Event::Campaign(pb::CampaignChanged {
            campaign: Some(campaign_out(c)),
        }),
    };
    pb::MonitorEvent {
        seq: c.seq,
        prev_seq,
        at_unix_ms: at,
        event: Some(event),
    }
}

fn snapshot_event(s: &Snapshot, prev_seq: u64) -> pb::MonitorEvent {
    pb::MonitorEvent {
        seq: s.seq,
        prev_seq,
        at_unix_ms: s.at_ms,
        event: Some(pb::monitor_event::Event::Snapshot(snapshot_out(s))),
    }
}

fn filter_in(queues: Vec<String>, agents: Vec<String>) -> Filter {
    let clean = |v: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = v
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    Filter::new(clean(queues), clean(agents))
}

/// The `Watch` response stream: the first snapshot, then the hub's updates, then
/// `RESOURCE_EXHAUSTED` if the watcher was cut off.
#[derive(Debug)]
pub struct WatchStream {
    first: Option<pb::MonitorEvent>,
    updates: mpsc::Receiver<Update>,
    cut: Option<oneshot::Receiver<MonitorError>>,
    last: u64,
    done: bool,
}

impl WatchStream {
    fn new(w: Watcher) -> Self {
        WatchStream {
            last: w.snapshot.seq,
            first: Some(snapshot_event(&w.snapshot, 0)),
            updates: w.updates,
            cut: Some(w.cut),
            done: false,
        }
    }

    fn end(&mut self, err: MonitorError) -> Poll<Option<Result<pb::MonitorEvent, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(ApiError::from(err).into())))
    }
}

impl Stream for WatchStream {
    type Item = Result<pb::MonitorEvent, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        // Cut off: stop now, whatever is still buffered.
        if let Some(cut) = this.cut.as_mut() {
            match Pin::new(cut).poll(cx) {
                Poll::Ready(Ok(err)) => return this.end(err),
                Poll::Ready(Err(_)) => this.cut = None,
                Poll::Pending => {}
            }
        }
        match this.updates.poll_recv(cx) {
            Poll::Ready(Some(Update::Change { prev_seq, change })) => {
                this.last = change.seq;
                Poll::Ready(Some(Ok(change_out(&change, prev_seq))))
            }
            Poll::Ready(Some(Update::Snapshot(s))) => {
                let ev = snapshot_event(&s, this.last);
                this.last = s.seq;
                Poll::Ready(Some(Ok(ev)))
            }
            Poll::Ready(None) => {
                // The hub signals a cut before it closes the queue.
                let err = this
                    .cut
                    .take()
                    .and_then(|mut c| c.try_recv().ok())
                    .unwrap_or(MonitorError::Stopped);
                this.end(err)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tonic::async_trait]
impl monitor_server::Monitor for MonitorService {
    async fn snapshot(
        &self,
        request: Request<pb::MonitorSnapshotRequest>,
    ) -> Result<Response<pb::MonitorSnapshot>, Status> {
        let req = request.into_inner();
        let snap = self
            .monitor
            .snapshot(filter_in(req.queues, req.agents))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(snapshot_out(&snap)))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::MonitorWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let watcher = self
            .monitor
            .watch(filter_in(req.queues, req.agents))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(WatchStream::new(watcher)))
    }
}

#[cfg(test)]
mod tests;
