//! The Monitor service over real gRPC: a real ACD task, the real hub, tonic clients.

use super::*;
use crate::acd::api::{AcdCommand, AcdHandle};
use crate::acd::config::{parse_acd, AcdReferences};
use crate::acd::task::AcdTask;
use crate::events::EventBus;
use crate::monitor::clock::LocalDays;
use crate::monitor::hub::{self, HubSettings};
use caruso_proto::caruso::v1::monitor_client::MonitorClient;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint};

const ACD: &str = r#"
reasons = ["break"]
[[queues]]
name = "sales"
skills = { sales = 1 }
[[queues]]
name = "support"
skills = { support = 1 }
[[agents]]
id = "alice"
name = "Alice"
token = "ta"
skills = { sales = 1 }
phone = { uri = "sip:alice@127.0.0.1:5071" }
[[agents]]
id = "bob"
name = "Bob"
token = "tb"
skills = { support = 1 }
phone = { uri = "sip:bob@127.0.0.1:5072" }
"#;

struct Fixture {
    addr: SocketAddr,
    acd: AcdHandle,
    /// Kept: the ACD task stops when the call actors' channel closes.
    _calls: crate::acd::task::AcdCalls,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(buffer: usize) -> Fixture {
    let v: toml::Value = toml::from_str(ACD).expect("toml");
    let exists = |_: &str| true;
    let config = Arc::new(parse_acd(&v, "t.toml", &AcdReferences::new(&exists)).expect("acd"));
    let bus = EventBus::default();
    let now = tokio::time::Instant::now().into_std();
    let (acd, calls) = AcdTask::new(config, None, bus.clone(), now).spawn();
    let monitor = hub::spawn(
        &bus,
        Some(acd.clone()),
        None,
        LocalDays::default(),
        HubSettings {
            watcher_buffer: buffer,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_tx, stats) = tokio::sync::watch::channel(crate::api::ServerStats::default());
    std::mem::forget(_tx);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::api::serve_on(
        listener,
        crate::api::ApiServices {
            acd: Some(acd.clone()),
            monitor: Some(monitor),
            ..crate::api::ApiServices::new(stats)
        },
        crate::api::ApiSecurity::new(crate::api::auth::test_policy(&[])),
        async {
            let _ = stop_rx.await;
        },
    ));
    Fixture {
        addr,
        acd,
        _calls: calls,
        _stop: stop,
    }
}

/// Adds the supervisor's token.
fn supervisor(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.metadata_mut()
        .insert("authorization", "Bearer supervisor-secret".parse().unwrap());
    Ok(r)
}

type Client = MonitorClient<
    InterceptedService<
        Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

fn with_token(channel: Channel) -> Client {
    MonitorClient::with_interceptor(channel, supervisor as fn(_) -> _)
}

async fn client(addr: SocketAddr) -> Client {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    with_token(channel)
}

async fn set(acd: &AcdHandle, agent: &str, ready: bool) {
    let agent: crate::acd::AgentId = agent.into();
    if ready {
        acd.ask(|reply| AcdCommand::SetReady { agent, reply })
            .await
            .expect("ready");
    } else {
        acd.ask(|reply| AcdCommand::SetNotReady {
            agent,
            reason: "break".into(),
            reply,
        })
        .await
        .expect("not ready");
    }
}

#[tokio::test]
async fn snapshot_and_watch_over_grpc() {
    let f = start(256).await;
    let anonymous = MonitorClient::connect(format!("http://{}", f.addr))
        .await
        .expect("connect")
        .snapshot(pb::MonitorSnapshotRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let mut c = client(f.addr).await;
    f.acd
        .ask(|reply| AcdCommand::LogIn {
            agent: "alice".into(),
            reply,
        })
        .await
        .expect("login");
    let snap = c
        .snapshot(pb::MonitorSnapshotRequest::default())
        .await
        .expect("snapshot")
        .into_inner();
    let names: Vec<&str> = snap.agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(snap.agents[0].state(), pb::AgentState::NotReady);
    assert_eq!(snap.agents[0].reason, "login");
    assert_eq!(snap.queues.len(), 2);
    let sales = snap.queues[0].figures.as_ref().expect("figures");
    assert_eq!(sales.queue, "sales");
    assert_eq!(sales.agents_away, 1);
    assert_eq!(sales.service_level_threshold_ms, 20_000);
    assert_eq!(
        sales.expected_wait_ms, 180_000,
        "one staffed agent, no history"
    );
    assert!(snap.campaigns.is_empty());
    assert_eq!(snap.today.len(), 10, "YYYY-MM-DD: {}", snap.today);

    let mut stream = c
        .watch(pb::MonitorWatchRequest {
            queues: vec!["sales".into()],
            agents: vec![],
        })
        .await
        .expect("watch")
        .into_inner();
    let first = stream.message().await.expect("ok").expect("first");
    let Some(pb::monitor_event::Event::Snapshot(s)) = &first.event else {
        panic!("first message is a snapshot: {first:?}");
    };
    assert_eq!(s.agents.len(), 1, "sales shows alice only");
    assert_eq!(s.queues.len(), 1);
    set(&f.acd, "alice", true).await;
    let a = stream.message().await.expect("ok").expect("agent");
    assert_eq!(a.prev_seq, first.seq);
    let Some(pb::monitor_event::Event::Agent(ch)) = &a.event else {
        panic!("agent change: {a:?}");
    };
    assert_eq!(
        ch.agent.as_ref().map(|x| x.state()),
        Some(pb::AgentState::Ready)
    );
    assert_eq!(ch.cause, "client");
    let q = stream.message().await.expect("ok").expect("queue");
    assert_eq!(q.prev_seq, a.seq);
    let Some(pb::monitor_event::Event::Queue(qc)) = &q.event else {
        panic!("queue change: {q:?}");
    };
    assert_eq!(qc.figures.as_ref().map(|f| f.agents_ready), Some(1));

    let err = c
        .watch(pb::MonitorWatchRequest {
            queues: vec!["nowhere".into()],
            agents: vec![],
        })
        .await
        .expect_err("unknown queue");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("nowhere"), "{}", err.message());
}

#[tokio::test]
async fn a_watcher_that_does_not_read_ends_with_resource_exhausted() {
    let f = start(64).await;
    // Small HTTP/2 windows so that the server's sends stop early while we do not read.
    let channel = Endpoint::from_shared(format!("http://{}", f.addr))
        .expect("url")
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .expect("connect");
    let mut slow = with_token(channel);
    let mut stream = slow
        .watch(pb::MonitorWatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    // A normal watcher that keeps reading.
    let mut fast = client(f.addr).await;
    let mut fast_stream = fast
        .watch(pb::MonitorWatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = fast_stream.message().await.expect("ok").expect("snapshot");
    let reader = tokio::spawn(async move {
        let mut last = first.seq;
        let mut n = 0;
        while n < 2000 {
            let m = fast_stream
                .message()
                .await
                .expect("no error")
                .expect("open");
            assert_eq!(m.prev_seq, last, "no gap");
            last = m.seq;
            n += 1;
        }
        n
    });
    f.acd
        .ask(|reply| AcdCommand::LogIn {
            agent: "bob".into(),
            reply,
        })
        .await
        .expect("login");
    // 1,000 state changes: 2,000 changes (bob's row and support's figures each time),
    // far more than the slow watcher's 64 messages plus what HTTP/2 and tonic buffer.
    for i in 0..1000 {
        set(&f.acd, "bob", i % 2 == 0).await;
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // (the login itself made 2 more changes; the reader stops at 2,000)
    assert_eq!(reader.await.expect("fast watcher"), 2000);
    // Now read the slow stream: whatever fitted, then the status.
    let mut got = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(_))) => got += 1,
            Ok(Ok(None)) => panic!("stream ended without a status after {got}"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("no status within 5 s after {got} messages"),
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("watcher too slow"),
        "{}",
        status.message()
    );
    assert!(got < 2000, "cut off before the end ({got} messages)");
}
