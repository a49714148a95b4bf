//! The service registry: integrators' programs register as instances of named services
//! (`crm.lookup`) with a lease; caruso calls them through the plug-in hooks
//! ([`crate::hooks`]); clients look them up and watch them (`caruso.v1.Registry`).
//!
//! - [`core::Registry`] is sans-IO: instances by name, leases with time as an input
//!   (`handle_register`, `handle_keepalive`, `handle_deregister`, `handle_timeout(now)`
//!   expires leases), round-robin [`core::Registry::pick`] among healthy instances, and
//!   two outputs: [`RegistryEvent`]s (`poll_event`, for watchers) and [`Persist`] writes
//!   (`poll_persist`, for the store).
//! - [`task`] runs the core in one tokio task reached through a [`task::RegistryHandle`]:
//!   it applies persist writes to the [`crate::store::Store`] (tree `registry`),
//!   broadcasts events, and sleeps until the next lease expiry. At start it restores
//!   every stored registration with a fresh lease of its TTL (`restored` until its first
//!   keep-alive): a plug-in that keeps sending keep-alives with its id needs to do
//!   nothing after a restart of caruso; one that does not is gone one TTL later.
//!
//! Invariants: an instance id is unique and bound to one name; a healthy instance is one
//! whose lease has not expired (`expires_at > now`); events are numbered 1, 2, 3 ... in
//! the order they happen.
//!
//! ```
//! use caruso::registry::{core::Registry, Registration, RegistryConfig};
//! use std::time::{Duration, Instant};
//! let t0 = Instant::now();
//! let mut reg = Registry::new(RegistryConfig::default(), Default::default(), 7);
//! let lease = reg
//!     .handle_register(t0, 0, Registration::new("crm.lookup", "127.0.0.1:6000"))
//!     .unwrap();
//! assert_eq!(reg.pick(t0, "crm.lookup").unwrap().id, lease.instance.id);
//! reg.handle_timeout(t0 + lease.ttl);
//! assert!(reg.pick(t0 + lease.ttl, "crm.lookup").is_none());
//! ```

pub mod config;
pub mod core;
pub mod task;

pub use config::RegistryConfig;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Store tree holding registrations (key: instance id).
pub const REGISTRY_TREE: &str = "registry";

/// Longest service name, version, capability, metadata key or instance id.
pub const MAX_TEXT: usize = 128;
/// Longest metadata value.
pub const MAX_VALUE: usize = 1024;
/// Most capabilities or metadata entries per instance.
pub const MAX_ENTRIES: usize = 64;

/// Gauge: registered instances (healthy or not yet collected).
pub use crate::metrics::REGISTRY_INSTANCES;
/// Counter: instances removed, by `reason` (`deregistered`, `expired`).
pub use crate::metrics::REGISTRY_REMOVED;

/// Why the registry refused a request; each names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The service name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid service name {0:?}: expected 1..=128 letters, digits, '.', '-' or '_'")]
    InvalidName(String),
    /// The endpoint is not `IP:port` / `http://IP:port`.
    #[error("invalid endpoint {endpoint:?}: {why}")]
    InvalidEndpoint {
        /// What was given.
        endpoint: String,
        /// What was expected.
        why: &'static str,
    },
    /// The endpoint lies outside the server's `network.allow`.
    #[error("endpoint {0} is outside the server's network.allow")]
    EndpointDenied(SocketAddr),
    /// A version, capability, metadata entry or instance id breaks a limit.
    #[error("invalid {field}: {why}")]
    InvalidField {
        /// Which field (`version`, `capabilities[2]`, `metadata["k"]`, `instance_id`).
        field: String,
        /// The limit.
        why: String,
    },
    /// The instance id is registered for another service name.
    #[error("instance id {id:?} belongs to service {name:?}")]
    IdTaken {
        /// The id.
        id: String,
        /// The name it is registered under.
        name: String,
    },
    /// No instance with this id (never registered, deregistered or expired).
    #[error("no instance with id {0:?} (expired or never registered: register again)")]
    UnknownInstance(String),
    /// `registry.max_instances` reached.
    #[error("the registry is full ({0} instances, registry.max_instances)")]
    Full(usize),
    /// The registry task is not running (server shutting down).
    #[error("the registry is not running")]
    Stopped,
}

/// What a client asks to register.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// Service name (`crm.lookup`).
    pub name: String,
    /// Version, free text.
    pub version: String,
    /// `IP:port` or `http://IP:port`.
    pub endpoint: String,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Requested TTL (`None`: the default).
    pub ttl: Option<Duration>,
    /// Re-register this id (an update, or a new instance with this id).
    pub instance_id: Option<String>,
}

impl Registration {
    /// A registration of `name` at `endpoint` with everything else empty or default.
    pub fn new(name: &str, endpoint: &str) -> Registration {
        Registration {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            ..Registration::default()
        }
    }
}

/// A registered instance (immutable; a change makes a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Where its gRPC server listens.
    pub endpoint: SocketAddr,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Lease TTL (granted).
    pub ttl: Duration,
    /// First registration, ms since the Unix epoch.
    pub registered_at_ms: u64,
    /// Restored from the store and not kept alive since.
    pub restored: bool,
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The instance as stored.
    pub instance: Arc<Instance>,
    /// Its TTL from now.
    pub ttl: Duration,
}

/// Why an instance was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// It deregistered.
    Deregistered,
    /// Its lease expired.
    Expired,
}

impl RemovalReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Deregistered => "deregistered",
            RemovalReason::Expired => "expired",
        }
    }
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Registered.
    Added,
    /// Re-registered with other data, or confirmed after a restart.
    Changed,
    /// Gone.
    Removed(RemovalReason),
}

/// A change, numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEvent {
    /// 1, 2, 3 ... in order.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The instance (for removals: as it was last).
    pub instance: Arc<Instance>,
}

/// A write for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Store (or replace) this instance.
    Put(StoredInstance),
    /// Forget this instance id.
    Remove(String),
}

/// What the store keeps of an instance (no lease: a restart grants a fresh one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInstance {
    /// Instance id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Endpoint, `IP:port`.
    pub endpoint: String,
    /// Capabilities.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Granted TTL, ms.
    pub ttl_ms: u64,
    /// First registration, ms since the Unix epoch.
    pub registered_at_ms: u64,
}

impl StoredInstance {
    /// The stored form of `i`.
    pub fn of(i: &Instance) -> StoredInstance {
        StoredInstance {
            id: i.id.clone(),
            name: i.name.clone(),
            version: i.version.clone(),
            endpoint: i.endpoint.to_string(),
            capabilities: i.capabilities.clone(),
            metadata: i.metadata.clone(),
            ttl_ms: i.ttl.as_millis() as u64,
            registered_at_ms: i.registered_at_ms,
        }
    }
}

/// Which instances a lookup wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Service name (`None`: every service).
    pub name: Option<String>,
    /// Exactly this version.
    pub version: Option<String>,
    /// With this capability.
    pub capability: Option<String>,
}

impl Query {
    /// Every healthy instance of `name`.
    pub fn name(name: &str) -> Query {
        Query {
            name: Some(name.to_string()),
            ..Query::default()
        }
    }

    /// Whether `i` matches.
    pub fn matches(&self, i: &Instance) -> bool {
        self.name.as_ref().is_none_or(|n| *n == i.name)
            && self.version.as_ref().is_none_or(|v| *v == i.version)
            && self
                .capability
                .as_ref()
                .is_none_or(|c| i.capabilities.iter().any(|x| x == c))
    }
}
