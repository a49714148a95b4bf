//! The plug-in client against in-process `caruso.v1.Plugin` servers on loopback.

use super::*;
use crate::config::AllowList;
use crate::registry::task::RegistryTask;
use crate::registry::{Registration, RegistryConfig};
use caruso_proto::caruso::v1::plugin_server::{Plugin, PluginServer};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// A test plug-in: answers call.incoming with its name after `delay`, counts calls.
#[derive(Debug, Clone)]
struct TestPlugin {
    name: &'static str,
    delay: Duration,
    incoming: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
    fail: bool,
}

impl TestPlugin {
    fn new(name: &'static str, delay_ms: u64) -> TestPlugin {
        TestPlugin {
            name,
            delay: Duration::from_millis(delay_ms),
            incoming: Arc::default(),
            ended: Arc::default(),
            fail: false,
        }
    }
}

#[tonic::async_trait]
impl Plugin for TestPlugin {
    async fn call_incoming(
        &self,
        req: Request<pb::CallIncomingRequest>,
    ) -> Result<Response<pb::CallIncomingResponse>, Status> {
        self.incoming.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(Status::internal("crm is down"));
        }
        let req = req.into_inner();
        let mut data = std::collections::HashMap::new();
        data.insert("served_by".to_string(), self.name.to_string());
        data.insert("caller".to_string(), req.caller_number);
        data.insert(String::new(), "dropped".to_string());
        Ok(Response::new(pb::CallIncomingResponse {
            data,
            priority: Some(7),
            skills: vec![pb::RequiredSkill {
                skill: "german".into(),
                min_level: 9,
            }],
            queue: Some(String::new()),
        }))
    }
    async fn call_ended(
        &self,
        _req: Request<pb::CallEndedRequest>,
    ) -> Result<Response<pb::CallEndedResponse>, Status> {
        self.ended.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::CallEndedResponse {}))
    }
    async fn voicemail_new(
        &self,
        _req: Request<pb::VoicemailNewRequest>,
    ) -> Result<Response<pb::VoicemailNewResponse>, Status> {
        Err(Status::unimplemented("no"))
    }
    async fn agent_state_changed(
        &self,
        _req: Request<pb::AgentStateChangedRequest>,
    ) -> Result<Response<pb::AgentStateChangedResponse>, Status> {
        Err(Status::unimplemented("no"))
    }
    async fn action(
        &self,
        req: Request<pb::ActionRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let req = req.into_inner();
        let mut variables = std::collections::HashMap::new();
        variables.insert("ticket".to_string(), format!("{}-1", req.name));
        Ok(Response::new(pb::ActionResponse { variables }))
    }
}

/// Serves `p` on a loopback port; its address.
async fn serve(p: TestPlugin) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PluginServer::new(p))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

fn registry() -> RegistryHandle {
    RegistryTask::new(
        RegistryConfig::default(),
        AllowList::default(),
        None,
        tokio::time::Instant::now().into_std(),
    )
    .spawn()
}

fn hooks_cfg(deadline_ms: u64) -> HooksConfig {
    let t = |s: &str| {
        Some(HookTarget {
            service: s.into(),
            deadline: Duration::from_millis(deadline_ms),
        })
    };
    HooksConfig {
        call_incoming: t("crm"),
        call_ended: t("crm"),
        action: t("crm"),
        ..HooksConfig::default()
    }
}

fn call() -> IncomingCall {
    IncomingCall {
        call_id: "c1".into(),
        caller_number: "555".into(),
        ..IncomingCall::default()
    }
}

#[tokio::test]
async fn call_incoming_answers_with_data_priority_and_skills() {
    let reg = registry();
    let p = TestPlugin::new("a", 0);
    let addr = serve(p.clone()).await;
    reg.register(Registration::new("crm", &addr.to_string()))
        .await
        .unwrap();
    let hooks = Hooks::start(hooks_cfg(2000), reg);
    let a = hooks.call_incoming(call()).await.expect("answered");
    assert_eq!(a.data.get("served_by").map(String::as_str), Some("a"));
    assert_eq!(a.data.get("caller").map(String::as_str), Some("555"));
    assert!(!a.data.contains_key(""), "empty keys are dropped");
    assert_eq!(a.priority, Some(7));
    assert_eq!(
        a.skills,
        vec![Requirement {
            skill: "german".into(),
            min_level: 5
        }]
    );
    assert_eq!(a.queue, None, "an empty queue is no queue");
    let mut vars = Variables::new();
    a.apply_to(&mut vars);
    assert_eq!(vars.get("priority").map(String::as_str), Some("7"));
    assert_eq!(vars.get("served_by").map(String::as_str), Some("a"));

    let v = hooks
        .action("crm.ticket", "c1", &Variables::new())
        .await
        .unwrap();
    assert_eq!(v.get("ticket").map(String::as_str), Some("crm.ticket-1"));
}

#[tokio::test]
async fn a_slow_plugin_is_cut_off_at_the_deadline() {
    let reg = registry();
    let p = TestPlugin::new("slow", 3000);
    let addr = serve(p.clone()).await;
    reg.register(Registration::new("crm", &addr.to_string()))
        .await
        .unwrap();
    let hooks = Hooks::start(hooks_cfg(200), reg);
    let t = std::time::Instant::now();
    assert_eq!(hooks.call_incoming(call()).await, None);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(700),
        "{took:?}"
    );
    assert_eq!(
        p.incoming.load(Ordering::SeqCst),
        1,
        "the plug-in was called"
    );
}

#[tokio::test]
async fn no_instance_and_errors_fall_back_at_once() {
    let reg = registry();
    let hooks = Hooks::start(hooks_cfg(2000), reg.clone());
    let t = std::time::Instant::now();
    assert_eq!(hooks.call_incoming(call()).await, None);
    assert!(t.elapsed() < Duration::from_millis(200));

    let mut p = TestPlugin::new("broken", 0);
    p.fail = true;
    let addr = serve(p.clone()).await;
    reg.register(Registration::new("crm", &addr.to_string()))
        .await
        .unwrap();
    assert_eq!(hooks.call_incoming(call()).await, None);
    assert_eq!(p.incoming.load(Ordering::SeqCst), 1);

    // Nothing listens at a registered endpoint: an error, well within the deadline.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let reg2 = registry();
    reg2.register(Registration::new("crm", &dead_addr.to_string()))
        .await
        .unwrap();
    let hooks2 = Hooks::start(hooks_cfg(2000), reg2);
    let t = std::time::Instant::now();
    assert_eq!(hooks2.call_incoming(call()).await, None);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );

    // A hook that is off is not called at all.
    let off = hooks.with_config(HooksConfig::default());
    assert!(!off.has_call_incoming());
    assert_eq!(off.call_incoming(call()).await, None);
    assert_eq!(p.incoming.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn calls_take_turns_and_a_replaced_instance_finishes_its_call() {
    let reg = registry();
    let (a, b) = (TestPlugin::new("a", 0), TestPlugin::new("b", 300));
    let (addr_a, addr_b) = (serve(a.clone()).await, serve(b.clone()).await);
    let la = reg
        .register(Registration::new("crm", &addr_a.to_string()))
        .await
        .unwrap();
    let lb = reg
        .register(Registration::new("crm", &addr_b.to_string()))
        .await
        .unwrap();
    let hooks = Hooks::start(hooks_cfg(2000), reg.clone());
    let mut served = Vec::new();
    for _ in 0..4 {
        let ans = hooks.call_incoming(call()).await.unwrap();
        served.push(ans.data["served_by"].clone());
    }
    assert_eq!(served, ["a", "b", "a", "b"]);

    // b (slow) is busy with a call when it is replaced: that call still finishes.
    reg.pick("crm").await.unwrap(); // a's turn is used up: the next call goes to b
    let h = hooks.clone();
    let in_flight = tokio::spawn(async move { h.call_incoming(call()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    reg.deregister(&lb.instance.id).await.unwrap();
    let ans = in_flight
        .await
        .unwrap()
        .expect("the call in flight finished");
    assert_eq!(ans.data["served_by"], "b");
    for _ in 0..3 {
        assert_eq!(
            hooks.call_incoming(call()).await.unwrap().data["served_by"],
            "a"
        );
    }
    reg.deregister(&la.instance.id).await.unwrap();
    assert_eq!(hooks.call_incoming(call()).await, None);
}

#[tokio::test]
async fn call_ended_is_fire_and_forget_and_a_full_queue_drops() {
    let reg = registry();
    let p = TestPlugin::new("j", 0);
    let addr = serve(p.clone()).await;
    reg.register(Registration::new("crm", &addr.to_string()))
        .await
        .unwrap();
    let hooks = Hooks::start(hooks_cfg(2000), reg);
    let record = CallRecord {
        call_id: "c1".into(),
        number: "100".into(),
        peer: "127.0.0.1:5070".into(),
        started_ms: 1,
        answered_ms: None,
        ended_ms: 2,
        reason: "completed".into(),
        rtp_sent: 0,
        rtp_received: 0,
        rtp_lost: 0,
    };
    hooks.call_ended(&record);
    for _ in 0..50 {
        if p.ended.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.ended.load(Ordering::SeqCst), 1);

    // A queue of one, nothing draining it on a current-thread runtime until we yield:
    // the second call is dropped at once, without waiting.
    let (tx, mut rx) = mpsc::channel(1);
    let small = Hooks {
        config: hooks.config.clone(),
        shared: Arc::new(Shared {
            registry: hooks.shared.registry.clone(),
            channels: Mutex::new(HashMap::new()),
            fire: tx,
        }),
    };
    small.call_ended(&record);
    small.call_ended(&record);
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "the second call was dropped");
}

#[test]
fn bus_events_map_to_their_hooks() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(8);
        let t = || {
            Some(HookTarget {
                service: "s".into(),
                deadline: Duration::from_millis(300),
            })
        };
        let hooks = Hooks {
            config: Arc::new(HooksConfig {
                voicemail_new: t(),
                agent_state: t(),
                ..HooksConfig::default()
            }),
            shared: Arc::new(Shared {
                registry: registry(),
                channels: Mutex::new(HashMap::new()),
                fire: tx,
            }),
        };
        let ev = |seq, event| BusEvent {
            seq,
            at_ms: 5,
            event,
        };
        hooks.bus_event(&ev(
            1,
            Event::AgentState {
                agent: "alice".into(),
                from: "ready".into(),
                to: "on call".into(),
                state: crate::acd::AgentState::OnCall(1),
                cause: "answered",
            },
        ));
        hooks.bus_event(&ev(
            2,
            Event::Mailbox(crate::events::MailboxEvent {
                mailbox: "200".into(),
                change: MailboxChange::Read,
                message_id: None,
                new_count: 0,
                saved_count: 1,
            }),
        ));
        hooks.bus_event(&ev(
            3,
            Event::Mailbox(crate::events::MailboxEvent {
                mailbox: "200".into(),
                change: MailboxChange::New,
                message_id: Some("m1".into()),
                new_count: 1,
                saved_count: 1,
            }),
        ));
        match rx.try_recv().unwrap().1 {
            Fire::AgentState(r) => assert_eq!(
                (r.agent.as_str(), r.to.as_str(), r.seq),
                ("alice", "on call", 1)
            ),
            other => panic!("{other:?}"),
        }
        match rx.try_recv().unwrap().1 {
            Fire::VoicemailNew(r) => {
                assert_eq!((r.message_id.as_str(), r.new_count, r.seq), ("m1", 1, 3))
            }
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err(), "a read message is no hook call");
    });
}
