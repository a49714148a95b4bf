//! The registry core under a hand-advanced clock.

use super::*;
use crate::config::IpNet;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg() -> RegistryConfig {
    RegistryConfig {
        default_ttl: ms(3000),
        min_ttl: ms(500),
        max_ttl: ms(60_000),
        max_instances: 10,
    }
}

fn reg() -> Registry {
    Registry::new(cfg(), AllowList::default(), 42)
}

fn r(name: &str, endpoint: &str, version: &str) -> Registration {
    Registration {
        version: version.into(),
        ..Registration::new(name, endpoint)
    }
}

fn events(reg: &mut Registry) -> Vec<(u64, EventKind, String)> {
    std::iter::from_fn(|| reg.poll_event())
        .map(|e| (e.seq, e.kind, e.instance.id.clone()))
        .collect()
}

fn persists(reg: &mut Registry) -> Vec<Persist> {
    std::iter::from_fn(|| reg.poll_persist()).collect()
}

#[test]
fn a_lease_expires_one_ttl_after_the_last_keepalive() {
    let t0 = Instant::now();
    let mut reg = reg();
    let lease = reg
        .handle_register(t0, 1_000, r("crm.lookup", "127.0.0.1:7000", "1"))
        .unwrap();
    assert_eq!(lease.ttl, ms(3000), "the default TTL");
    let id = lease.instance.id.clone();
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(3000)));

    // Keep-alive at 2 s moves the expiry to 5 s.
    reg.handle_keepalive(t0 + ms(2000), &id).unwrap();
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(5000)));
    reg.handle_timeout(t0 + ms(4999));
    assert_eq!(reg.len(), 1, "still leased just before the expiry");
    assert!(reg.pick(t0 + ms(4999), "crm.lookup").is_some());
    // At the expiry it is no longer healthy even before handle_timeout collects it.
    assert!(reg.pick(t0 + ms(5000), "crm.lookup").is_none());
    assert!(reg
        .lookup(t0 + ms(5000), &Query::name("crm.lookup"))
        .is_empty());
    reg.handle_timeout(t0 + ms(5000));
    assert!(reg.is_empty());
    assert_eq!(reg.poll_timeout(), None);
    assert_eq!(
        events(&mut reg),
        vec![
            (1, EventKind::Added, id.clone()),
            (2, EventKind::Removed(RemovalReason::Expired), id.clone()),
        ]
    );
    assert_eq!(
        reg.handle_keepalive(t0 + ms(5001), &id),
        Err(RegistryError::UnknownInstance(id.clone())),
        "an expired instance must register again"
    );
}

#[test]
fn requested_ttls_are_clamped_to_the_limits() {
    let t0 = Instant::now();
    let mut reg = reg();
    let mut a = r("a", "127.0.0.1:7000", "");
    a.ttl = Some(ms(10));
    assert_eq!(reg.handle_register(t0, 0, a).unwrap().ttl, ms(500));
    let mut b = r("b", "127.0.0.1:7001", "");
    b.ttl = Some(ms(3_600_000));
    assert_eq!(reg.handle_register(t0, 0, b).unwrap().ttl, ms(60_000));
    let mut c = r("c", "127.0.0.1:7002", "");
    c.ttl = Some(ms(1234));
    assert_eq!(reg.handle_register(t0, 0, c).unwrap().ttl, ms(1234));
}

#[test]
fn watch_events_come_in_order_with_gap_free_numbers() {
    let t0 = Instant::now();
    let mut reg = reg();
    let a = reg
        .handle_register(t0, 0, r("crm", "127.0.0.1:7000", "1"))
        .unwrap()
        .instance;
    let b = reg
        .handle_register(t0 + ms(10), 0, r("crm", "127.0.0.1:7001", "2"))
        .unwrap()
        .instance;
    // Re-registering b with new metadata is a change; with the same data it is not.
    let mut again = r("crm", "127.0.0.1:7001", "2");
    again.instance_id = Some(b.id.clone());
    reg.handle_register(t0 + ms(20), 0, again.clone()).unwrap();
    again.metadata.insert("region".into(), "eu".into());
    let changed = reg.handle_register(t0 + ms(30), 0, again).unwrap().instance;
    assert_eq!(
        changed.metadata.get("region").map(String::as_str),
        Some("eu")
    );
    assert_eq!(changed.registered_at_ms, b.registered_at_ms);
    reg.handle_deregister(t0 + ms(40), &a.id).unwrap();
    reg.handle_timeout(t0 + ms(30) + ms(3000));
    assert_eq!(
        events(&mut reg),
        vec![
            (1, EventKind::Added, a.id.clone()),
            (2, EventKind::Added, b.id.clone()),
            (3, EventKind::Changed, b.id.clone()),
            (
                4,
                EventKind::Removed(RemovalReason::Deregistered),
                a.id.clone()
            ),
            (5, EventKind::Removed(RemovalReason::Expired), b.id.clone()),
        ]
    );
    assert_eq!(reg.seq(), 5);
}

#[test]
fn expiries_are_reported_in_expiry_order() {
    let t0 = Instant::now();
    let mut reg = reg();
    let mut slow = r("x", "127.0.0.1:7000", "");
    slow.ttl = Some(ms(2000));
    let slow = reg.handle_register(t0, 0, slow).unwrap().instance;
    let mut fast = r("y", "127.0.0.1:7001", "");
    fast.ttl = Some(ms(1000));
    let fast = reg.handle_register(t0, 0, fast).unwrap().instance;
    events(&mut reg);
    reg.handle_timeout(t0 + ms(5000));
    let ev = events(&mut reg);
    assert_eq!(
        ev.iter().map(|e| e.2.as_str()).collect::<Vec<_>>(),
        [fast.id.as_str(), slow.id.as_str()]
    );
}

#[test]
fn pick_goes_round_robin_over_healthy_instances_in_registration_order() {
    let t0 = Instant::now();
    let mut reg = reg();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let mut x = r("crm", &format!("127.0.0.1:{}", 7000 + i), "");
            x.ttl = Some(ms(1000 * (i + 1)));
            reg.handle_register(t0, 0, x).unwrap().instance.id.clone()
        })
        .collect();
    reg.handle_register(t0, 0, r("other", "127.0.0.1:7100", ""))
        .unwrap();
    let picks: Vec<String> = (0..6)
        .map(|_| reg.pick(t0, "crm").unwrap().id.clone())
        .collect();
    assert_eq!(
        picks,
        [&ids[0], &ids[1], &ids[2], &ids[0], &ids[1], &ids[2]].map(|s| s.clone())
    );
    // The first lease (1 s) has run out: only the other two take turns.
    let later = t0 + ms(1500);
    let picks: Vec<String> = (0..4)
        .map(|_| reg.pick(later, "crm").unwrap().id.clone())
        .collect();
    assert!(!picks.contains(&ids[0]), "{picks:?}");
    assert!(
        picks.contains(&ids[1]) && picks.contains(&ids[2]),
        "{picks:?}"
    );
    assert_ne!(picks[0], picks[1]);
    assert_eq!(picks[0], picks[2]);
    assert!(reg.pick(t0, "nobody").is_none());
}

#[test]
fn replacement_a_new_version_registers_then_the_old_one_deregisters() {
    let t0 = Instant::now();
    let mut reg = reg();
    let v1 = reg
        .handle_register(t0, 0, r("crm", "127.0.0.1:7000", "1.0"))
        .unwrap()
        .instance;
    let v2 = reg
        .handle_register(t0 + ms(100), 0, r("crm", "127.0.0.1:7001", "2.0"))
        .unwrap()
        .instance;
    let q = Query {
        version: Some("2.0".into()),
        ..Query::name("crm")
    };
    assert_eq!(reg.lookup(t0 + ms(100), &q).len(), 1);
    assert_eq!(reg.lookup(t0 + ms(100), &Query::name("crm")).len(), 2);
    reg.handle_deregister(t0 + ms(200), &v1.id).unwrap();
    for _ in 0..3 {
        assert_eq!(reg.pick(t0 + ms(200), "crm").unwrap().id, v2.id);
    }
    assert_eq!(
        reg.handle_deregister(t0 + ms(300), &v1.id),
        Err(RegistryError::UnknownInstance(v1.id.clone()))
    );
}

#[test]
fn lookup_filters_by_version_and_capability() {
    let t0 = Instant::now();
    let mut reg = reg();
    let mut a = r("crm", "127.0.0.1:7000", "1");
    a.capabilities = vec!["call.incoming".into(), "german".into()];
    reg.handle_register(t0, 0, a).unwrap();
    reg.handle_register(t0, 0, r("crm", "127.0.0.1:7001", "2"))
        .unwrap();
    reg.handle_register(t0, 0, r("tickets", "127.0.0.1:7002", "1"))
        .unwrap();
    let q = Query {
        capability: Some("german".into()),
        ..Query::default()
    };
    let found = reg.lookup(t0, &q);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.endpoint.port(), 7000);
    assert_eq!(found[0].1, ms(3000), "time left of the lease");
    assert_eq!(reg.lookup(t0, &Query::default()).len(), 3);
    let v1 = Query {
        version: Some("1".into()),
        ..Query::default()
    };
    let ports: Vec<u16> = reg
        .lookup(t0, &v1)
        .iter()
        .map(|(i, _)| i.endpoint.port())
        .collect();
    assert_eq!(ports, [7000, 7002], "registration order");
}

#[test]
fn invalid_registrations_are_refused_and_change_nothing() {
    let t0 = Instant::now();
    let allow = AllowList(vec![IpNet::parse("127.0.0.0/8").unwrap()]);
    let mut reg = Registry::new(cfg(), allow, 1);
    let cases: Vec<(Registration, &str)> = vec![
        (r("", "127.0.0.1:7000", ""), "name"),
        (r("crm lookup", "127.0.0.1:7000", ""), "name"),
        (r("crm", "", ""), "endpoint"),
        (r("crm", "crm.example.com:7000", ""), "endpoint"),
        (r("crm", "https://127.0.0.1:7000", ""), "endpoint"),
        (r("crm", "127.0.0.1:0", ""), "endpoint"),
        (r("crm", "10.1.2.3:7000", ""), "network.allow"),
        (r("crm", "127.0.0.1:7000", &"v".repeat(200)), "version"),
        (
            Registration {
                capabilities: vec![String::new()],
                ..r("crm", "127.0.0.1:7000", "")
            },
            "capabilities[0]",
        ),
        (
            Registration {
                instance_id: Some("a/b".into()),
                ..r("crm", "127.0.0.1:7000", "")
            },
            "instance_id",
        ),
    ];
    for (reg_req, needle) in cases {
        let e = reg.handle_register(t0, 0, reg_req.clone()).unwrap_err();
        assert!(e.to_string().contains(needle), "{reg_req:?}: {e}");
    }
    assert!(reg.is_empty());
    assert!(reg.poll_event().is_none());
    assert!(reg.poll_persist().is_none());
    // The accepted forms of an endpoint.
    for ep in [
        "127.0.0.1:7000",
        "http://127.0.0.1:7001",
        "http://127.0.0.1:7002/",
    ] {
        reg.handle_register(t0, 0, r("crm", ep, "")).unwrap();
    }
    // An id bound to one name cannot be taken by another.
    let id = reg.pick(t0, "crm").unwrap().id.clone();
    let steal = Registration {
        instance_id: Some(id.clone()),
        ..r("tickets", "127.0.0.1:7003", "")
    };
    assert!(matches!(
        reg.handle_register(t0, 0, steal),
        Err(RegistryError::IdTaken { .. })
    ));
}

#[test]
fn the_registry_refuses_more_than_max_instances() {
    let t0 = Instant::now();
    let mut reg = Registry::new(
        RegistryConfig {
            max_instances: 2,
            ..cfg()
        },
        AllowList::default(),
        1,
    );
    reg.handle_register(t0, 0, r("a", "127.0.0.1:7000", ""))
        .unwrap();
    let b = reg
        .handle_register(t0, 0, r("a", "127.0.0.1:7001", ""))
        .unwrap();
    assert_eq!(
        reg.handle_register(t0, 0, r("a", "127.0.0.1:7002", "")),
        Err(RegistryError::Full(2))
    );
    // Updating an existing instance is still allowed when full.
    let upd = Registration {
        instance_id: Some(b.instance.id.clone()),
        ..r("a", "127.0.0.1:7001", "2")
    };
    reg.handle_register(t0, 0, upd).unwrap();
}

#[test]
fn ids_are_unique_and_deterministic_for_a_seed() {
    let t0 = Instant::now();
    let mut a = Registry::new(cfg(), AllowList::default(), 9);
    let mut b = Registry::new(cfg(), AllowList::default(), 9);
    let mut seen = std::collections::HashSet::new();
    for i in 0..10 {
        let ep = format!("127.0.0.1:{}", 7000 + i);
        let x = a.handle_register(t0, 0, r("s", &ep, "")).unwrap();
        let y = b.handle_register(t0, 0, r("s", &ep, "")).unwrap();
        assert_eq!(x.instance.id, y.instance.id);
        assert!(seen.insert(x.instance.id.clone()));
    }
}

#[test]
fn persistence_round_trip_restores_with_a_fresh_ttl() {
    let t0 = Instant::now();
    let mut before = reg();
    let mut a = r("crm", "127.0.0.1:7000", "1");
    a.metadata.insert("k".into(), "v".into());
    a.capabilities = vec!["call.incoming".into()];
    a.ttl = Some(ms(2000));
    let a = before.handle_register(t0, 111, a).unwrap().instance;
    let b = before
        .handle_register(t0, 222, r("crm", "127.0.0.1:7001", "2"))
        .unwrap()
        .instance;
    let c = before
        .handle_register(t0, 333, r("gone", "127.0.0.1:7002", ""))
        .unwrap()
        .instance;
    before.handle_deregister(t0, &c.id).unwrap();
    // Apply the writes to a "store" (a map, like the task does).
    let mut store: BTreeMap<String, StoredInstance> = BTreeMap::new();
    for p in persists(&mut before) {
        match p {
            Persist::Put(s) => {
                store.insert(s.id.clone(), s);
            }
            Persist::Remove(id) => {
                store.remove(&id);
            }
        }
    }
    assert_eq!(store.len(), 2);

    // A restart much later: both are back, restored, with a fresh lease from then.
    let t1 = t0 + Duration::from_secs(3600);
    let mut after = reg();
    assert_eq!(after.restore(t1, store.values().cloned().collect()), 2);
    let found = after.lookup(t1, &Query::name("crm"));
    assert_eq!(found.len(), 2);
    let ra = &found[0].0;
    assert_eq!(ra.id, a.id, "registration order survives");
    assert!(ra.restored);
    assert_eq!(ra.metadata, a.metadata);
    assert_eq!(ra.capabilities, a.capabilities);
    assert_eq!(ra.ttl, ms(2000));
    assert_eq!(ra.registered_at_ms, 111);
    assert_eq!(found[0].1, ms(2000), "a fresh TTL from the restart");
    assert_eq!(found[1].0.id, b.id);
    assert!(after.poll_event().is_none(), "no events for a restore");

    // a keeps alive (CHANGED: no longer restored); b does not and expires one TTL on.
    let l = after.handle_keepalive(t1 + ms(1500), &a.id).unwrap();
    assert!(!l.instance.restored);
    after.handle_timeout(t1 + ms(3000));
    assert_eq!(
        events(&mut after),
        vec![
            (1, EventKind::Changed, a.id.clone()),
            (2, EventKind::Removed(RemovalReason::Expired), b.id.clone()),
        ]
    );
    assert_eq!(after.pick(t1 + ms(3000), "crm").unwrap().id, a.id);
    assert_eq!(persists(&mut after), vec![Persist::Remove(b.id.clone())]);
}

#[test]
fn restore_drops_entries_that_no_longer_validate() {
    let t0 = Instant::now();
    let allow = AllowList(vec![IpNet::parse("127.0.0.0/8").unwrap()]);
    let mut reg = Registry::new(cfg(), allow, 1);
    let ok = StoredInstance {
        id: "a1".into(),
        name: "crm".into(),
        version: String::new(),
        endpoint: "127.0.0.1:7000".into(),
        capabilities: vec![],
        metadata: BTreeMap::new(),
        ttl_ms: 1000,
        registered_at_ms: 1,
    };
    let outside = StoredInstance {
        id: "a2".into(),
        endpoint: "192.0.2.1:7000".into(),
        ..ok.clone()
    };
    let dup = StoredInstance {
        registered_at_ms: 2,
        ..ok.clone()
    };
    assert_eq!(reg.restore(t0, vec![ok, outside, dup]), 1);
    assert_eq!(
        persists(&mut reg),
        vec![Persist::Remove("a2".into())],
        "the entry outside network.allow leaves the store; the duplicate id keeps its entry"
    );
    assert!(reg.lookup(t0, &Query::name("crm"))[0].0.restored);
}
