//! The registry task: runs [`Registry`] in one tokio task, reached through a cloneable
//! [`RegistryHandle`] (an mpsc sender; every request gets its answer on a oneshot).
//!
//! It writes the core's [`Persist`] outputs to the store (tree
//! [`REGISTRY_TREE`](super::REGISTRY_TREE), TOML values keyed by instance id; sled's
//! insert does not wait for the disk), broadcasts events to watchers (a watcher that
//! falls [`WATCH_CAPACITY`] events behind lags and must re-sync), and sleeps until the
//! next lease expiry. At spawn it restores the stored registrations (see the module doc
//! of [`crate::registry`]).

use super::core::Registry;
use super::{
    Instance, Lease, Persist, Query, Registration, RegistryConfig, RegistryError, RegistryEvent,
    StoredInstance, REGISTRY_INSTANCES, REGISTRY_REMOVED, REGISTRY_TREE,
};
use crate::config::AllowList;
use crate::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

/// Events kept for slow watchers before they lag.
pub const WATCH_CAPACITY: usize = 1024;

/// An instance with the time left of its lease.
pub type Healthy = (Arc<Instance>, Duration);

/// What a Watch starts with: the current instances and the stream of changes after them.
pub type WatchStart = (Vec<Healthy>, broadcast::Receiver<Arc<RegistryEvent>>);

/// A request to the task.
#[derive(Debug)]
enum Command {
    Register(Registration, oneshot::Sender<Result<Lease, RegistryError>>),
    KeepAlive(String, oneshot::Sender<Result<Lease, RegistryError>>),
    Deregister(
        String,
        oneshot::Sender<Result<Arc<Instance>, RegistryError>>,
    ),
    Lookup(Query, oneshot::Sender<Vec<Healthy>>),
    Watch(Query, oneshot::Sender<WatchStart>),
    Pick(String, oneshot::Sender<Option<Arc<Instance>>>),
}

/// The address of the registry task (cheap to clone).
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    tx: mpsc::Sender<Command>,
}

impl RegistryHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RegistryError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| RegistryError::Stopped)?;
        rx.await.map_err(|_| RegistryError::Stopped)
    }

    /// Registers (or re-registers) an instance.
    pub async fn register(&self, r: Registration) -> Result<Lease, RegistryError> {
        self.ask(|tx| Command::Register(r, tx)).await?
    }

    /// Renews an instance's lease.
    pub async fn keepalive(&self, id: &str) -> Result<Lease, RegistryError> {
        let id = id.to_string();
        self.ask(|tx| Command::KeepAlive(id, tx)).await?
    }

    /// Removes an instance.
    pub async fn deregister(&self, id: &str) -> Result<Arc<Instance>, RegistryError> {
        let id = id.to_string();
        self.ask(|tx| Command::Deregister(id, tx)).await?
    }

    /// The healthy instances matching `q`, in registration order.
    pub async fn lookup(&self, q: Query) -> Result<Vec<Healthy>, RegistryError> {
        self.ask(|tx| Command::Lookup(q, tx)).await
    }

    /// The healthy instances matching `q` now and every change from then on (taken in
    /// one step of the task: no change falls between them). Events are for every name:
    /// the caller filters.
    pub async fn watch(&self, q: Query) -> Result<WatchStart, RegistryError> {
        self.ask(|tx| Command::Watch(q, tx)).await
    }

    /// The next healthy instance of `name` in turn (round-robin).
    pub async fn pick(&self, name: &str) -> Result<Option<Arc<Instance>>, RegistryError> {
        let name = name.to_string();
        self.ask(|tx| Command::Pick(name, tx)).await
    }
}

/// The registry task's state.
pub struct RegistryTask {
    core: Registry,
    store: Option<Arc<dyn Store>>,
    events: broadcast::Sender<Arc<RegistryEvent>>,
    reported: usize,
}

/// Reads every stored registration; corrupt entries are logged and skipped.
fn load(store: &dyn Store) -> Vec<StoredInstance> {
    let entries = match store.scan_prefix(REGISTRY_TREE, b"") {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "cannot read stored registrations: starting empty");
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter_map(|(k, v)| {
            let parsed = std::str::from_utf8(&v)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<StoredInstance>(t).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(key = %String::from_utf8_lossy(&k), error = %e, "stored registration is corrupt: dropped");
                    let _ = store.remove(REGISTRY_TREE, &k);
                    None
                }
            }
        })
        .collect()
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl RegistryTask {
    /// A task over `config`, restoring what `store` holds (leases fresh from `now`).
    pub fn new(
        config: RegistryConfig,
        allow: AllowList,
        store: Option<Arc<dyn Store>>,
        now: Instant,
    ) -> RegistryTask {
        let mut core = Registry::new(config, allow, rand::random());
        if let Some(s) = &store {
            let stored = load(s.as_ref());
            let found = stored.len();
            let n = core.restore(now, stored);
            if found > 0 {
                info!(
                    restored = n,
                    dropped = found - n,
                    "service registrations restored"
                );
            }
        }
        let (events, _) = broadcast::channel(WATCH_CAPACITY);
        let mut task = RegistryTask {
            core,
            store,
            events,
            reported: 0,
        };
        task.flush();
        task
    }

    /// Starts the task; it runs until every handle is dropped.
    pub fn spawn(self) -> RegistryHandle {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(self.run(rx));
        RegistryHandle { tx }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.core.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.on_command(now(), cmd),
                    None => break,
                },
                _ = sleep => self.core.handle_timeout(now()),
            }
            self.flush();
        }
        debug!("registry task stopped");
    }

    fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Register(r, reply) => {
                let res = self.core.handle_register(now, crate::call::unix_ms(), r);
                if let Ok(l) = &res {
                    info!(service = %l.instance.name, id = %l.instance.id, version = %l.instance.version,
                        endpoint = %l.instance.endpoint, ttl_ms = l.ttl.as_millis() as u64, "service registered");
                }
                let _ = reply.send(res);
            }
            Command::KeepAlive(id, reply) => {
                let _ = reply.send(self.core.handle_keepalive(now, &id));
            }
            Command::Deregister(id, reply) => {
                let _ = reply.send(self.core.handle_deregister(now, &id));
            }
            Command::Lookup(q, reply) => {
                let _ = reply.send(self.core.lookup(now, &q));
            }
            Command::Watch(q, reply) => {
                // Events so far are flushed (flush runs after every command): the
                // receiver sees exactly the changes after this snapshot.
                let rx = self.events.subscribe();
                let _ = reply.send((self.core.lookup(now, &q), rx));
            }
            Command::Pick(name, reply) => {
                let _ = reply.send(self.core.pick(now, &name));
            }
        }
    }

    /// Store writes, events and the gauge after a step.
    fn flush(&mut self) {
        while let Some(p) = self.core.poll_persist() {
            let Some(store) = &self.store else {
                continue;
            };
            let res = match &p {
                Persist::Put(s) => match toml::to_string(s) {
                    Ok(text) => store.put(REGISTRY_TREE, s.id.as_bytes(), text.as_bytes()),
                    Err(e) => {
                        warn!(error = %e, "cannot encode a registration");
                        continue;
                    }
                },
                Persist::Remove(id) => store.remove(REGISTRY_TREE, id.as_bytes()),
            };
            if let Err(e) = res {
                warn!(error = %e, "registration not stored");
            }
        }
        while let Some(ev) = self.core.poll_event() {
            if let super::EventKind::Removed(reason) = ev.kind {
                metrics::counter!(REGISTRY_REMOVED, "reason" => reason.as_str()).increment(1);
                info!(service = %ev.instance.name, id = %ev.instance.id, reason = reason.as_str(), "service instance removed");
            }
            // No watcher: nothing to do.
            let _ = self.events.send(Arc::new(ev));
        }
        let n = self.core.len();
        if n != self.reported {
            metrics::gauge!(REGISTRY_INSTANCES).set(n as f64);
            self.reported = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::EventKind;
    use crate::store::MemoryStore;

    fn cfg() -> RegistryConfig {
        RegistryConfig {
            default_ttl: Duration::from_millis(2000),
            ..RegistryConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn leases_expire_on_time_and_registrations_survive_a_restart() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let h = RegistryTask::new(cfg(), AllowList::default(), Some(store.clone()), now()).spawn();
        let a = h
            .register(Registration::new("crm", "127.0.0.1:7000"))
            .await
            .unwrap();
        let b = h
            .register(Registration::new("crm", "127.0.0.1:7001"))
            .await
            .unwrap();
        let (current, mut rx) = h.watch(Query::name("crm")).await.unwrap();
        assert_eq!(current.len(), 2);

        // a keeps alive, b does not: b is removed 2 s after it registered.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.keepalive(&a.instance.id).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("b expires within its TTL")
            .unwrap();
        assert_eq!(
            ev.kind,
            EventKind::Removed(crate::registry::RemovalReason::Expired)
        );
        assert_eq!(ev.instance.id, b.instance.id);
        let left = h.lookup(Query::name("crm")).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0.id, a.instance.id);
        assert_eq!(
            store.scan_prefix(REGISTRY_TREE, b"").unwrap().len(),
            1,
            "the expired instance left the store"
        );

        // "Restart": a new task on the same store restores a, leased afresh.
        drop(h);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let h2 = RegistryTask::new(cfg(), AllowList::default(), Some(store.clone()), now()).spawn();
        let back = h2.lookup(Query::name("crm")).await.unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].0.restored);
        assert_eq!(back[0].1, Duration::from_millis(2000));
        // Its plug-in keeps sending keep-alives with the old id: nothing else needed.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let l = h2.keepalive(&a.instance.id).await.unwrap();
        assert!(!l.instance.restored);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(h2.pick("crm").await.unwrap().unwrap().id, a.instance.id);
        // Then it stops: gone one TTL after its last keep-alive.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(h2.pick("crm").await.unwrap().is_none());
        assert!(store.scan_prefix(REGISTRY_TREE, b"").unwrap().is_empty());
    }

    #[tokio::test]
    async fn corrupt_stored_entries_are_dropped() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        store.put(REGISTRY_TREE, b"x", b"\xff not toml").unwrap();
        let h = RegistryTask::new(cfg(), AllowList::default(), Some(store.clone()), now()).spawn();
        assert!(h.lookup(Query::default()).await.unwrap().is_empty());
        assert!(store.get(REGISTRY_TREE, b"x").unwrap().is_none());
    }
}
