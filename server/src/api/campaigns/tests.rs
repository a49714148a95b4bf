//! `caruso.v1.Campaigns` in process: a real dialer task (no ACD, dialing not wired)
//! behind the real auth layer.

use super::*;
use crate::api::{auth, serve_on, ApiSecurity, ServerStats};
use crate::dialer::config::{parse_campaigns, CampaignReferences};
use crate::dialer::dnc::DncList;
use crate::dialer::task::{system_clock, DialerTask, References, UnwiredOriginator};
use crate::events::EventBus;
use crate::store::{MemoryStore, Store};
use caruso_proto::caruso::v1::campaigns_client::CampaignsClient;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Auth = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;
type Client = CampaignsClient<InterceptedService<Channel, Auth>>;

const DEMO: &str = r#"
[[campaigns]]
name = "demo"
queue = "sales"
trunk = "pstn"
caller_id = "+48221234567"
default_country = "PL"
"#;

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    let v: toml::Table = toml::from_str(DEMO).unwrap();
    let cfgs: Vec<_> = parse_campaigns(
        &v["campaigns"],
        "t.toml",
        std::path::Path::new("/"),
        &CampaignReferences::unchecked(),
    )
    .unwrap()
    .into_iter()
    .map(Arc::new)
    .collect();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let refs = References {
        queues: Some(vec!["sales".into()]),
        trunks: Some(vec!["pstn".into()]),
        flows: Some(vec![]),
        prompt_dir: None,
    };
    let dialer = DialerTask::new(
        &cfgs,
        DncList::default(),
        store,
        Arc::new(UnwiredOriginator),
        EventBus::new(64),
        None,
        refs,
        system_clock(),
    )
    .unwrap()
    .spawn();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = watch::channel(ServerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let security = ApiSecurity::new(auth::test_policy(&[("alice-secret", "alice")]));
    tokio::spawn(async move {
        let _keep = _tx;
        serve_on(
            listener,
            crate::api::ApiServices {
                campaigns: Some(dialer),
                ..crate::api::ApiServices::new(rx)
            },
            security,
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    (format!("http://{addr}"), stop_tx)
}

async fn client(url: &str, token: &'static str) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let f: Auth = Box::new(move |mut r: Request<()>| {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(r)
    });
    CampaignsClient::with_interceptor(channel, f)
}

fn named(name: &str) -> pb::CampaignRef {
    pb::CampaignRef { name: name.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_load_start_status_and_dnc_over_grpc() {
    let (url, _stop) = start().await;
    let mut c = client(&url, "supervisor-secret").await;

    let list = c
        .list(pb::ListCampaignsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.campaigns.len(), 1);
    assert_eq!(list.campaigns[0].name, "demo");
    assert_eq!(list.campaigns[0].state(), pb::CampaignState::Idle);
    assert_eq!(list.campaigns[0].mode(), pb::DialMode::Progressive);

    let load = c
        .load_contacts(pb::LoadContactsRequest {
            name: "demo".into(),
            csv: b"phone,name\n601000001,A\n12,Bad\n601000002,B\n".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(load.added, 2);
    assert_eq!(load.rejected.len(), 1);
    assert_eq!(load.rejected[0].line, 3);
    assert!(
        load.rejected[0].reason.contains("12"),
        "{}",
        load.rejected[0].reason
    );
    assert_eq!(load.status.unwrap().contacts, 2);

    let no_header = c
        .load_contacts(pb::LoadContactsRequest {
            name: "demo".into(),
            csv: b"name\nA\n".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_header.code(), tonic::Code::InvalidArgument);

    let st = c.start(named("demo")).await.unwrap().into_inner();
    assert_eq!(st.state(), pb::CampaignState::Running);
    let again = c.start(named("demo")).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(again.message().contains("running"), "{}", again.message());
    let paused = c.pause(named("demo")).await.unwrap().into_inner();
    assert_eq!(paused.state(), pb::CampaignState::Paused);
    let resumed = c.resume(named("demo")).await.unwrap().into_inner();
    assert_eq!(resumed.state(), pb::CampaignState::Running);
    let stopped = c.stop(named("demo")).await.unwrap().into_inner();
    assert_eq!(stopped.state(), pb::CampaignState::Stopped);
    let st = c.get_status(named("demo")).await.unwrap().into_inner();
    assert_eq!(st.contacts_left, 2);
    let missing = c.get_status(named("nope")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let added = c
        .add_dnc(pb::DncRequest {
            numbers: vec!["601 000 009".into(), "+14155550100".into()],
            default_country: "PL".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.changed, ["+48601000009", "+14155550100"]);
    let bad = c
        .add_dnc(pb::DncRequest {
            numbers: vec!["x".into()],
            default_country: "PL".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let page = c
        .list_dnc(pb::ListDncRequest {
            after: String::new(),
            limit: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.numbers, ["+14155550100"]);
    assert_eq!(page.total, 2);
    let removed = c
        .remove_dnc(pb::DncRequest {
            numbers: vec!["+48601000009".into(), "+48601000008".into()],
            default_country: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.changed, ["+48601000009"]);
    assert_eq!(removed.unchanged, ["+48601000008"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_like_the_config_and_agents_are_refused() {
    let (url, _stop) = start().await;
    let mut c = client(&url, "admin-secret").await;
    let req = pb::CreateCampaignRequest {
        name: "spring".into(),
        mode: pb::DialMode::Progressive as i32,
        queue: "sales".into(),
        trunk: "pstn".into(),
        caller_id: "221234567".into(),
        default_country: "PL".into(),
        window_from: "09:00".into(),
        window_to: "17:00".into(),
        abandon_window: pb::AbandonWindow::AbandonWindow24h as i32,
        ring_timeout_s: 20,
        ..Default::default()
    };
    let st = c.create(req.clone()).await.unwrap().into_inner();
    assert_eq!(st.name, "spring");
    assert_eq!(st.state(), pb::CampaignState::Idle);
    let dup = c.create(req.clone()).await.unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let bad_queue = c
        .create(pb::CreateCampaignRequest {
            name: "other".into(),
            queue: "nope".into(),
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_queue.code(), tonic::Code::InvalidArgument);
    assert!(
        bad_queue.message().starts_with("queue:"),
        "{}",
        bad_queue.message()
    );
    let short_ring = c
        .create(pb::CreateCampaignRequest {
            name: "other".into(),
            ring_timeout_s: 10,
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert!(
        short_ring.message().contains("ring_timeout_s"),
        "{}",
        short_ring.message()
    );

    let mut agent = client(&url, "alice-secret").await;
    let refused = agent.list(pb::ListCampaignsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_false_positives_and_todays_figures_over_grpc() {
    let (url, _stop) = start().await;
    let mut c = client(&url, "supervisor-secret").await;
    let list = |campaign: &str, limit: u32| pb::ListAttemptsRequest {
        campaign: campaign.into(),
        contact: None,
        limit,
    };
    // No dial yet (no ACD: no agent is ready).
    let r = c.list_attempts(list("demo", 0)).await.unwrap().into_inner();
    assert!(r.attempts.is_empty());
    let e = c.list_attempts(list("nope", 0)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c.list_attempts(list("demo", 10_001)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = c
        .report_false_positive(pb::ReportFalsePositiveRequest {
            campaign: "demo".into(),
            attempt: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("attempt 3"), "{}", e.message());
    // Today's figures come with the status: the campaign's local date, nothing yet.
    let st = c.get_status(named("demo")).await.unwrap().into_inner();
    let today = st.today.expect("today");
    assert_eq!(today.date.len(), 10, "{}", today.date);
    assert_eq!((today.dialed, today.answered), (0, 0));
    // An agent's token may not use them.
    let mut alice = client(&url, "alice-secret").await;
    let e = alice.list_attempts(list("demo", 0)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = alice
        .report_false_positive(pb::ReportFalsePositiveRequest {
            campaign: "demo".into(),
            attempt: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}
