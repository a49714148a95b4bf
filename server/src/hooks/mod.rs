//! Plug-in hooks: caruso calls integrators' services (`caruso.v1.Plugin`) at fixed
//! points.
//!
//! Contract:
//! - the config's `[hooks]` ([`config::HooksConfig`]) names the registry service of each
//!   hook; every call resolves it through the registry ([`RegistryHandle::pick`]:
//!   round-robin over the healthy instances) and goes over a tonic channel cached per
//!   instance (dropped when the instance leaves the registry; calls in flight keep
//!   their clone and finish);
//! - every call has a hard deadline (a tokio timeout around the pick and the call, and
//!   the gRPC `grpc-timeout`); on no instance, an error or the deadline the answer is
//!   `None` and the caller goes on unchanged (the fallback);
//! - outcomes are counted in [`HOOK_CALLS`]`{hook,outcome}` (`ok`, `timeout`, `error`,
//!   `no_instance`, `dropped`) with latencies in [`HOOK_DURATION`]`{hook}`; timeouts and
//!   errors are logged as warnings with the service, endpoint and elapsed time;
//! - fire-and-forget hooks (`call.ended`, `voicemail.new`, `agent.state`) never wait: they
//!   are put on a bounded queue (`[hooks] queue_size`; full: dropped and counted) that
//!   one worker drains, at most [`MAX_IN_FLIGHT`] calls at once.
//!
//! ```no_run
//! # async fn demo(hooks: caruso::hooks::Hooks) {
//! use caruso::hooks::IncomingCall;
//! let call = IncomingCall { call_id: "abc".into(), caller_number: "555".into(), ..Default::default() };
//! match hooks.call_incoming(call).await {
//!     Some(answer) => println!("customer data: {:?}", answer.data),
//!     None => println!("no answer in time: routed unchanged"),
//! }
//! # }
//! ```

pub mod config;

pub use config::{HookTarget, HooksConfig};

use crate::acd::Requirement;
use crate::events::{BusEvent, Event, MailboxChange};
use crate::ivr::Variables;
use crate::registry::task::RegistryHandle;
use crate::registry::{EventKind, Instance, Query};
use crate::store::CallRecord;
use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::plugin_client::PluginClient;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tonic::transport::Channel;
use tracing::{debug, warn};

/// Counter: hook calls by `hook` and `outcome` (ok, timeout, error, no_instance, dropped).
pub use crate::metrics::HOOK_CALLS;
/// Histogram: hook call latency in seconds by `hook` (answered or not).
pub use crate::metrics::HOOK_DURATION;
/// Most fire-and-forget calls in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most customer data entries taken from one answer.
pub const MAX_DATA: usize = 256;

/// The hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `call.incoming`.
    CallIncoming,
    /// `call.ended`.
    CallEnded,
    /// `voicemail.new`.
    VoicemailNew,
    /// `agent.state`.
    AgentState,
    /// `action`.
    Action,
}

impl Hook {
    /// The hook's name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::CallIncoming => "call.incoming",
            Hook::CallEnded => "call.ended",
            Hook::VoicemailNew => "voicemail.new",
            Hook::AgentState => "agent.state",
            Hook::Action => "action",
        }
    }
}

/// How one hook call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered in time.
    Ok,
    /// The deadline passed.
    Timeout,
    /// The plug-in (or the connection) failed.
    Error,
    /// No healthy instance of the service.
    NoInstance,
    /// The fire-and-forget queue was full.
    Dropped,
}

impl Outcome {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::NoInstance => "no_instance",
            Outcome::Dropped => "dropped",
        }
    }
}

/// A new call, as `call.incoming` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingCall {
    /// SIP Call-ID.
    pub call_id: String,
    /// Caller number.
    pub caller_number: String,
    /// Caller display name.
    pub caller_name: String,
    /// Number called.
    pub called_number: String,
    /// Variables so far.
    pub variables: Variables,
}

/// What a `call.incoming` plug-in attached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingAnswer {
    /// Customer data (call variables).
    pub data: Variables,
    /// Caller priority.
    pub priority: Option<i32>,
    /// Extra required skills.
    pub skills: Vec<Requirement>,
    /// Queue to go to at once.
    pub queue: Option<String>,
}

impl IncomingAnswer {
    /// The answer from the wire: empty keys and skill names are dropped, levels clamped
    /// to 1..=5, at most [`MAX_DATA`] data entries kept.
    pub fn from_pb(r: pb::CallIncomingResponse) -> IncomingAnswer {
        IncomingAnswer {
            data: r
                .data
                .into_iter()
                .filter(|(k, _)| !k.is_empty())
                .take(MAX_DATA)
                .collect(),
            priority: r.priority,
            skills: r
                .skills
                .into_iter()
                .filter(|s| !s.skill.is_empty())
                .map(|s| Requirement {
                    skill: s.skill.into(),
                    min_level: s.min_level.clamp(1, 5) as u8,
                })
                .collect(),
            queue: r.queue.filter(|q| !q.is_empty()),
        }
    }

    /// The call's variables with the answer applied: the data, and `priority` when set.
    pub fn apply_to(&self, vars: &mut Variables) {
        for (k, v) in &self.data {
            vars.insert(k.clone(), v.clone());
        }
        if let Some(p) = self.priority {
            vars.insert("priority".into(), p.to_string());
        }
    }
}

/// A fire-and-forget call waiting for the worker.
#[derive(Debug)]
enum Fire {
    CallEnded(pb::CallEndedRequest),
    VoicemailNew(pb::VoicemailNewRequest),
    AgentState(pb::AgentStateChangedRequest),
}

impl Fire {
    fn hook(&self) -> Hook {
        match self {
            Fire::CallEnded(_) => Hook::CallEnded,
            Fire::VoicemailNew(_) => Hook::VoicemailNew,
            Fire::AgentState(_) => Hook::AgentState,
        }
    }
}

/// What every config generation shares: the registry, the channel cache, the queue.
#[derive(Debug)]
struct Shared {
    registry: RegistryHandle,
    /// Channels by instance id (with the endpoint they go to).
    channels: Mutex<HashMap<String, (std::net::SocketAddr, Channel)>>,
    fire: mpsc::Sender<(HookTarget, Fire)>,
}

/// The plug-in client (cheap to clone; one per config generation, sharing channels).
#[derive(Debug, Clone)]
pub struct Hooks {
    config: Arc<HooksConfig>,
    shared: Arc<Shared>,
}

impl Hooks {
    /// Starts the plug-in client over `registry`: the fire-and-forget worker and the
    /// channel cache's cleaner. Needs a tokio runtime.
    pub fn start(config: HooksConfig, registry: RegistryHandle) -> Hooks {
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        let shared = Arc::new(Shared {
            registry,
            channels: Mutex::new(HashMap::new()),
            fire: tx,
        });
        tokio::spawn(fire_worker(Arc::downgrade(&shared), rx));
        tokio::spawn(evict_channels(Arc::downgrade(&shared)));
        Hooks {
            config: Arc::new(config),
            shared,
        }
    }

    /// The same client with a new config (a reload; the queue keeps its size).
    pub fn with_config(&self, config: HooksConfig) -> Hooks {
        Hooks {
            config: Arc::new(config),
            shared: self.shared.clone(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &HooksConfig {
        &self.config
    }

    /// The channel to `inst`, made (lazily connecting) on first use.
    fn channel(&self, inst: &Instance, deadline: Duration) -> Result<Channel, tonic::Status> {
        let mut cache = self
            .shared
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((addr, ch)) = cache.get(&inst.id) {
            if *addr == inst.endpoint {
                return Ok(ch.clone());
            }
        }
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", inst.endpoint))
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
            .connect_timeout(deadline.max(Duration::from_millis(100)))
            .tcp_nodelay(true)
            .connect_lazy();
        cache.insert(inst.id.clone(), (inst.endpoint, ch.clone()));
        Ok(ch)
    }

    /// One hook call with its deadline, counted and logged; `None` is the fallback.
    async fn invoke<T, F, Fut>(&self, hook: Hook, target: &HookTarget, call: F) -> Option<T>
    where
        F: FnOnce(PluginClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = tokio::time::Instant::now();
        let mut picked: Option<Arc<Instance>> = None;
        let slot = &mut picked;
        let attempt = async {
            let inst = match self.shared.registry.pick(&target.service).await {
                Ok(Some(i)) => i,
                Ok(None) | Err(_) => return Err(None),
            };
            *slot = Some(inst.clone());
            let ch = self.channel(&inst, target.deadline).map_err(Some)?;
            let left = target.deadline.saturating_sub(started.elapsed());
            call(PluginClient::new(ch), left)
                .await
                .map(tonic::Response::into_inner)
                .map_err(Some)
        };
        let res = tokio::time::timeout(target.deadline, attempt).await;
        let elapsed = started.elapsed();
        let endpoint = picked
            .as_ref()
            .map(|i| i.endpoint.to_string())
            .unwrap_or_default();
        let (outcome, value) = match res {
            Ok(Ok(v)) => (Outcome::Ok, Some(v)),
            Ok(Err(None)) => (Outcome::NoInstance, None),
            // The gRPC deadline (tonic enforces it on the client too: CANCELLED "Timeout
            // expired") may fire a moment before our own timer.
            Ok(Err(Some(status)))
                if status.code() == tonic::Code::DeadlineExceeded
                    || (status.code() == tonic::Code::Cancelled
                        && elapsed + Duration::from_millis(5) >= target.deadline) =>
            {
                warn!(hook = hook.as_str(), service = %target.service, %endpoint,
                    elapsed_ms = elapsed.as_millis() as u64, "plug-in missed its deadline");
                (Outcome::Timeout, None)
            }
            Ok(Err(Some(status))) => {
                warn!(hook = hook.as_str(), service = %target.service, %endpoint,
                    elapsed_ms = elapsed.as_millis() as u64, code = ?status.code(),
                    message = status.message(), "plug-in call failed");
                (Outcome::Error, None)
            }
            Err(_) => {
                warn!(hook = hook.as_str(), service = %target.service, %endpoint,
                    elapsed_ms = elapsed.as_millis() as u64,
                    deadline_ms = target.deadline.as_millis() as u64, "plug-in missed its deadline");
                (Outcome::Timeout, None)
            }
        };
        if outcome == Outcome::NoInstance {
            debug!(hook = hook.as_str(), service = %target.service, "no instance registered: hook skipped");
        }
        count(hook, outcome);
        metrics::histogram!(HOOK_DURATION, "hook" => hook.as_str()).record(elapsed.as_secs_f64());
        value
    }

    /// Whether `call.incoming` is configured.
    pub fn has_call_incoming(&self) -> bool {
        self.config.call_incoming.is_some()
    }

    /// Asks the `call.incoming` plug-in about a new call; `None` when the hook is off,
    /// nobody answered in time, or the plug-in failed (route the call unchanged).
    pub async fn call_incoming(&self, call: IncomingCall) -> Option<IncomingAnswer> {
        let target = self.config.call_incoming.clone()?;
        let req = pb::CallIncomingRequest {
            call_id: call.call_id,
            caller_number: call.caller_number,
            caller_name: call.caller_name,
            called_number: call.called_number,
            variables: call.variables.into_iter().collect(),
            deadline_ms: target.deadline.as_millis() as u64,
        };
        self.invoke(Hook::CallIncoming, &target, |mut c, left| async move {
            c.call_incoming(with_timeout(req, left)).await
        })
        .await
        .map(IncomingAnswer::from_pb)
    }

    /// Runs the named action `name` on the `action` plug-in; the variables to set, or
    /// `None` (hook off, no answer in time, failure).
    pub async fn action(
        &self,
        name: &str,
        call_id: &str,
        variables: &Variables,
    ) -> Option<Variables> {
        let target = self.config.action.clone()?;
        let req = pb::ActionRequest {
            name: name.to_string(),
            call_id: call_id.to_string(),
            variables: variables.clone().into_iter().collect(),
        };
        self.invoke(Hook::Action, &target, |mut c, left| async move {
            c.action(with_timeout(req, left)).await
        })
        .await
        .map(|r| {
            r.variables
                .into_iter()
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
    }

    /// Queues a fire-and-forget call (never waits; a full queue drops it, counted).
    fn fire(&self, target: &Option<HookTarget>, job: Fire) {
        let Some(target) = target.clone() else {
            return;
        };
        let hook = job.hook();
        if self.shared.fire.try_send((target, job)).is_err() {
            count(hook, Outcome::Dropped);
            debug!(hook = hook.as_str(), "hook queue full: call dropped");
        }
    }

    /// `call.ended` with the call's record (fire-and-forget).
    pub fn call_ended(&self, r: &CallRecord) {
        if self.config.call_ended.is_none() {
            return;
        }
        self.fire(
            &self.config.call_ended,
            Fire::CallEnded(pb::CallEndedRequest {
                call_id: r.call_id.clone(),
                number: r.number.clone(),
                peer: r.peer.clone(),
                started_ms: r.started_ms,
                answered_ms: r.answered_ms,
                ended_ms: r.ended_ms,
                reason: r.reason.clone(),
                rtp_sent: r.rtp_sent,
                rtp_received: r.rtp_received,
                rtp_lost: r.rtp_lost,
            }),
        );
    }

    /// `voicemail.new` / `agent.state` for a bus event (fire-and-forget); other events
    /// are ignored.
    pub fn bus_event(&self, ev: &BusEvent) {
        match &ev.event {
            Event::Mailbox(m) if m.change == MailboxChange::New => self.fire(
                &self.config.voicemail_new,
                Fire::VoicemailNew(pb::VoicemailNewRequest {
                    mailbox: m.mailbox.clone(),
                    message_id: m.message_id.clone().unwrap_or_default(),
                    new_count: m.new_count,
                    saved_count: m.saved_count,
                    seq: ev.seq,
                    at_ms: ev.at_ms,
                }),
            ),
            Event::AgentState {
                agent, from, to, ..
            } => self.fire(
                &self.config.agent_state,
                Fire::AgentState(pb::AgentStateChangedRequest {
                    agent: agent.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    seq: ev.seq,
                    at_ms: ev.at_ms,
                }),
            ),
            _ => {}
        }
    }
}

fn with_timeout<T>(msg: T, left: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(left.max(Duration::from_millis(1)));
    req
}

fn count(hook: Hook, outcome: Outcome) {
    metrics::counter!(HOOK_CALLS, "hook" => hook.as_str(), "outcome" => outcome.as_str())
        .increment(1);
}

/// Drains the fire-and-forget queue, at most [`MAX_IN_FLIGHT`] calls at once.
async fn fire_worker(shared: std::sync::Weak<Shared>, mut rx: mpsc::Receiver<(HookTarget, Fire)>) {
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some((target, job)) = rx.recv().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let hooks = Hooks {
            config: Arc::new(HooksConfig::default()),
            shared,
        };
        tokio::spawn(async move {
            let hook = job.hook();
            let _ = match job {
                Fire::CallEnded(r) => hooks
                    .invoke(hook, &target, |mut c, left| async move {
                        c.call_ended(with_timeout(r, left)).await
                    })
                    .await
                    .map(drop),
                Fire::VoicemailNew(r) => hooks
                    .invoke(hook, &target, |mut c, left| async move {
                        c.voicemail_new(with_timeout(r, left)).await
                    })
                    .await
                    .map(drop),
                Fire::AgentState(r) => hooks
                    .invoke(hook, &target, |mut c, left| async move {
                        c.agent_state_changed(with_timeout(r, left)).await
                    })
                    .await
                    .map(drop),
            };
            drop(permit);
        });
    }
}

/// Drops the cached channel of every instance that leaves the registry.
async fn evict_channels(shared: std::sync::Weak<Shared>) {
    let registry = match shared.upgrade() {
        Some(s) => s.registry.clone(),
        None => return,
    };
    let Ok((_, mut rx)) = registry.watch(Query::default()).await else {
        return;
    };
    drop(registry);
    loop {
        let ev = rx.recv().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut cache = shared.channels.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            Ok(ev) if matches!(ev.kind, EventKind::Removed(_)) => {
                cache.remove(&ev.instance.id);
            }
            Ok(_) => {}
            // Missed removals: start over (channels are made again on demand).
            Err(broadcast::error::RecvError::Lagged(_)) => cache.clear(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Feeds bus events to the hooks of the current config (`current` is asked for every
/// event, so a reload takes effect at once) until the bus closes.
pub async fn forward_bus(
    mut rx: broadcast::Receiver<Arc<BusEvent>>,
    current: impl Fn() -> Option<Hooks> + Send,
) {
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if let Some(h) = current() {
                    h.bus_event(&ev);
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(
                    missed = n,
                    "hooks fell behind the event bus: events not forwarded"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests;
