//! The sans-IO registry: instances by name with leases; time is an input.
//!
//! Inputs: `handle_register`, `handle_keepalive`, `handle_deregister`, `restore` (at
//! start), `handle_timeout(now)` (expires leases; due at `poll_timeout`). Outputs:
//! `poll_event` (ADDED / CHANGED / REMOVED, numbered), `poll_persist` (store writes).
//! Queries: `lookup(now, query)`, `pick(now, name)` (round-robin over the healthy
//! instances of a name, in registration order).

use super::{
    EventKind, Instance, Lease, Persist, Query, Registration, RegistryConfig, RegistryError,
    RegistryEvent, RemovalReason, StoredInstance, MAX_ENTRIES, MAX_TEXT, MAX_VALUE,
};
use crate::config::AllowList;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// One registered instance and its lease.
#[derive(Debug)]
struct Slot {
    instance: Arc<Instance>,
    expires_at: Instant,
    /// Registration order (lookups and round-robin follow it).
    ordinal: u64,
}

/// The registry state machine (see the module doc).
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    allow: AllowList,
    slots: HashMap<String, Slot>,
    /// Instance ids of each name, in registration order.
    by_name: BTreeMap<String, Vec<String>>,
    /// Round-robin position of each name.
    cursor: HashMap<String, u64>,
    events: VecDeque<RegistryEvent>,
    persist: VecDeque<Persist>,
    seq: u64,
    ordinal: u64,
    id_seed: u64,
    id_counter: u64,
}

/// SplitMix64: a good 64-bit mix for ids from a seed and a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Parses `IP:port`, `[v6]:port` or `http://IP:port` (an optional trailing `/`).
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, RegistryError> {
    let bad = |why| RegistryError::InvalidEndpoint {
        endpoint: s.to_string(),
        why,
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("expected IP:port or http://IP:port, found nothing"));
    }
    if t.starts_with("https://") {
        return Err(bad("TLS to plug-ins is not supported: use http://IP:port"));
    }
    let t = t.strip_prefix("http://").unwrap_or(t);
    let t = t.strip_suffix('/').unwrap_or(t);
    let addr: SocketAddr = t
        .parse()
        .map_err(|_| bad("expected IP:port or http://IP:port (an IP address: no DNS names)"))?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(bad(
            "expected a reachable address (not port 0, not 0.0.0.0 / ::)",
        ));
    }
    Ok(addr)
}

fn check_text(field: String, v: &str, max: usize, empty_ok: bool) -> Result<(), RegistryError> {
    if (!empty_ok && v.is_empty()) || v.len() > max || v.chars().any(char::is_control) {
        return Err(RegistryError::InvalidField {
            field,
            why: format!(
                "expected {}..={max} characters without control characters, found {} characters",
                usize::from(!empty_ok),
                v.len()
            ),
        });
    }
    Ok(())
}

impl Registry {
    /// An empty registry; instance ids come from `id_seed` (give it a random value).
    pub fn new(config: RegistryConfig, allow: AllowList, id_seed: u64) -> Registry {
        Registry {
            config,
            allow,
            slots: HashMap::new(),
            by_name: BTreeMap::new(),
            cursor: HashMap::new(),
            events: VecDeque::new(),
            persist: VecDeque::new(),
            seq: 0,
            ordinal: 0,
            id_seed,
            id_counter: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Instances registered (healthy or not yet collected).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The last event number handed out (0: none yet).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn validate(&self, r: &Registration) -> Result<SocketAddr, RegistryError> {
        if r.name.is_empty() || r.name.len() > MAX_TEXT || !r.name.chars().all(is_name_char) {
            return Err(RegistryError::InvalidName(r.name.clone()));
        }
        let addr = parse_endpoint(&r.endpoint)?;
        if !self.allow.permits(addr.ip()) && !self.allow.permits(canonical(addr.ip())) {
            return Err(RegistryError::EndpointDenied(addr));
        }
        check_text("version".into(), &r.version, MAX_TEXT, true)?;
        if r.capabilities.len() > MAX_ENTRIES {
            return Err(RegistryError::InvalidField {
                field: "capabilities".into(),
                why: format!(
                    "expected at most {MAX_ENTRIES}, found {}",
                    r.capabilities.len()
                ),
            });
        }
        for (i, c) in r.capabilities.iter().enumerate() {
            check_text(format!("capabilities[{i}]"), c, MAX_TEXT, false)?;
        }
        if r.metadata.len() > MAX_ENTRIES {
            return Err(RegistryError::InvalidField {
                field: "metadata".into(),
                why: format!(
                    "expected at most {MAX_ENTRIES} entries, found {}",
                    r.metadata.len()
                ),
            });
        }
        for (k, v) in &r.metadata {
            check_text(format!("metadata key {k:?}"), k, MAX_TEXT, false)?;
            check_text(format!("metadata[{k:?}]"), v, MAX_VALUE, true)?;
        }
        if let Some(id) = &r.instance_id {
            if id.is_empty() || id.len() > MAX_TEXT || !id.chars().all(is_name_char) {
                return Err(RegistryError::InvalidField {
                    field: "instance_id".into(),
                    why: format!(
                        "expected 1..={MAX_TEXT} letters, digits, '.', '-' or '_', found {id:?}"
                    ),
                });
            }
        }
        Ok(addr)
    }

    fn new_id(&mut self) -> String {
        loop {
            self.id_counter += 1;
            let id = format!("{:016x}", mix(self.id_seed ^ mix(self.id_counter)));
            if !self.slots.contains_key(&id) {
                return id;
            }
        }
    }

    fn emit(&mut self, kind: EventKind, instance: Arc<Instance>) {
        self.seq += 1;
        self.events.push_back(RegistryEvent {
            seq: self.seq,
            kind,
            instance,
        });
    }

    /// Registers an instance (or re-registers `instance_id`): validates it, grants a
    /// lease from `now`, emits ADDED (or CHANGED when an existing instance's data changed
    /// or it was restored) and a store write. `wall_ms` is the wall clock (for
    /// `registered_at_ms`).
    pub fn handle_register(
        &mut self,
        now: Instant,
        wall_ms: u64,
        r: Registration,
    ) -> Result<Lease, RegistryError> {
        let endpoint = self.validate(&r)?;
        let ttl = self.config.grant(r.ttl);
        if let Some(id) = r.instance_id.as_deref() {
            if let Some(slot) = self.slots.get_mut(id) {
                let old = &slot.instance;
                if old.name != r.name {
                    return Err(RegistryError::IdTaken {
                        id: id.to_string(),
                        name: old.name.clone(),
                    });
                }
                let updated = Instance {
                    id: old.id.clone(),
                    name: r.name,
                    version: r.version,
                    endpoint,
                    capabilities: r.capabilities,
                    metadata: r.metadata,
                    ttl,
                    registered_at_ms: old.registered_at_ms,
                    restored: false,
                };
                slot.expires_at = now + ttl;
                if updated == **old {
                    return Ok(Lease {
                        instance: old.clone(),
                        ttl,
                    });
                }
                let data_changed = Instance {
                    restored: old.restored,
                    ..updated.clone()
                } != **old;
                let inst = Arc::new(updated);
                slot.instance = inst.clone();
                if data_changed {
                    self.persist
                        .push_back(Persist::Put(StoredInstance::of(&inst)));
                }
                self.emit(EventKind::Changed, inst.clone());
                return Ok(Lease {
                    instance: inst,
                    ttl,
                });
            }
        }
        if self.slots.len() >= self.config.max_instances {
            return Err(RegistryError::Full(self.config.max_instances));
        }
        let id = match r.instance_id {
            Some(id) => id,
            None => self.new_id(),
        };
        let inst = Arc::new(Instance {
            id: id.clone(),
            name: r.name,
            version: r.version,
            endpoint,
            capabilities: r.capabilities,
            metadata: r.metadata,
            ttl,
            registered_at_ms: wall_ms,
            restored: false,
        });
        self.insert(inst.clone(), now + ttl);
        self.persist
            .push_back(Persist::Put(StoredInstance::of(&inst)));
        self.emit(EventKind::Added, inst.clone());
        Ok(Lease {
            instance: inst,
            ttl,
        })
    }

    fn insert(&mut self, instance: Arc<Instance>, expires_at: Instant) {
        self.ordinal += 1;
        self.by_name
            .entry(instance.name.clone())
            .or_default()
            .push(instance.id.clone());
        self.slots.insert(
            instance.id.clone(),
            Slot {
                instance,
                expires_at,
                ordinal: self.ordinal,
            },
        );
    }

    /// Renews `id`'s lease for its TTL from `now`; the first keep-alive of a restored
    /// instance emits CHANGED (`restored` becomes false). An instance whose lease has
    /// passed but that `handle_timeout` has not collected yet is renewed too.
    pub fn handle_keepalive(&mut self, now: Instant, id: &str) -> Result<Lease, RegistryError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| RegistryError::UnknownInstance(id.to_string()))?;
        let ttl = slot.instance.ttl;
        slot.expires_at = now + ttl;
        if slot.instance.restored {
            let inst = Arc::new(Instance {
                restored: false,
                ..(*slot.instance).clone()
            });
            slot.instance = inst.clone();
            self.emit(EventKind::Changed, inst.clone());
            return Ok(Lease {
                instance: inst,
                ttl,
            });
        }
        Ok(Lease {
            instance: slot.instance.clone(),
            ttl,
        })
    }

    /// Removes `id` at once (REMOVED / DEREGISTERED).
    pub fn handle_deregister(
        &mut self,
        _now: Instant,
        id: &str,
    ) -> Result<Arc<Instance>, RegistryError> {
        self.remove(id, RemovalReason::Deregistered)
            .ok_or_else(|| RegistryError::UnknownInstance(id.to_string()))
    }

    fn remove(&mut self, id: &str, reason: RemovalReason) -> Option<Arc<Instance>> {
        let slot = self.slots.remove(id)?;
        let name = &slot.instance.name;
        if let Some(ids) = self.by_name.get_mut(name) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.by_name.remove(name);
                self.cursor.remove(name);
            }
        }
        self.persist.push_back(Persist::Remove(id.to_string()));
        self.emit(EventKind::Removed(reason), slot.instance.clone());
        Some(slot.instance)
    }

    /// Removes every instance whose lease has expired at `now` (REMOVED / EXPIRED, in
    /// expiry order).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<(Instant, u64, String)> = self
            .slots
            .values()
            .filter(|s| s.expires_at <= now)
            .map(|s| (s.expires_at, s.ordinal, s.instance.id.clone()))
            .collect();
        due.sort();
        for (_, _, id) in due {
            self.remove(&id, RemovalReason::Expired);
        }
    }

    /// When the next lease expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots.values().map(|s| s.expires_at).min()
    }

    /// The next change for watchers.
    pub fn poll_event(&mut self) -> Option<RegistryEvent> {
        self.events.pop_front()
    }

    /// The next store write.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        self.persist.pop_front()
    }

    /// Brings back stored registrations at start: each gets a fresh lease of its TTL
    /// (clamped to the current limits) from `now` and is marked `restored`. Entries
    /// that no longer validate (a name, an endpoint outside `network.allow`), duplicates
    /// and those beyond `max_instances` are dropped and removed from the store. No
    /// events (nobody watches yet). Returns how many came back.
    pub fn restore(&mut self, now: Instant, mut stored: Vec<StoredInstance>) -> usize {
        stored.sort_by(|a, b| (a.registered_at_ms, &a.id).cmp(&(b.registered_at_ms, &b.id)));
        let mut n = 0;
        for s in stored {
            let r = Registration {
                name: s.name.clone(),
                version: s.version.clone(),
                endpoint: s.endpoint.clone(),
                capabilities: s.capabilities.clone(),
                metadata: s.metadata.clone(),
                ttl: None,
                instance_id: Some(s.id.clone()),
            };
            if self.slots.contains_key(&s.id) {
                continue; // the same id twice: the first one stays
            }
            let ok = match self.validate(&r) {
                Ok(endpoint) if self.slots.len() < self.config.max_instances => Some(endpoint),
                _ => None,
            };
            let Some(endpoint) = ok else {
                self.persist.push_back(Persist::Remove(s.id));
                continue;
            };
            let ttl = self
                .config
                .grant(Some(std::time::Duration::from_millis(s.ttl_ms)));
            let inst = Arc::new(Instance {
                id: s.id,
                name: s.name,
                version: s.version,
                endpoint,
                capabilities: s.capabilities,
                metadata: s.metadata,
                ttl,
                registered_at_ms: s.registered_at_ms,
                restored: true,
            });
            self.insert(inst, now + ttl);
            n += 1;
        }
        n
    }

    /// The healthy instances (lease not expired at `now`) that match, in registration
    /// order, each with the time left of its lease.
    pub fn lookup(&self, now: Instant, query: &Query) -> Vec<(Arc<Instance>, std::time::Duration)> {
        let mut out: Vec<&Slot> = match &query.name {
            Some(name) => self
                .by_name
                .get(name)
                .map(|ids| ids.iter().filter_map(|id| self.slots.get(id)).collect())
                .unwrap_or_default(),
            None => self.slots.values().collect(),
        };
        out.retain(|s| s.expires_at > now && query.matches(&s.instance));
        out.sort_by_key(|s| s.ordinal);
        out.into_iter()
            .map(|s| (s.instance.clone(), s.expires_at - now))
            .collect()
    }

    /// The next healthy instance of `name` in turn (round-robin in registration order).
    pub fn pick(&mut self, now: Instant, name: &str) -> Option<Arc<Instance>> {
        let ids = self.by_name.get(name)?;
        let healthy: Vec<&Slot> = ids
            .iter()
            .filter_map(|id| self.slots.get(id))
            .filter(|s| s.expires_at > now)
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let cursor = self.cursor.entry(name.to_string()).or_insert(0);
        let chosen = healthy[(*cursor % healthy.len() as u64) as usize]
            .instance
            .clone();
        *cursor = cursor.wrapping_add(1);
        Some(chosen)
    }
}

/// An IPv4-mapped IPv6 address as IPv4 (for the allow-list).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
