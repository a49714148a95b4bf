use super::*;
use std::net::SocketAddr;
use tonic::Code;

const SECRET: &str = "s3cr3t-do-not-echo";

fn table() -> TokenTable {
    let mut t = TokenTable::new();
    for (token, name, role) in [
        ("sup", "wallboard", Role::Supervisor),
        ("int", "crm", Role::Integrator),
        (SECRET, "root", Role::Admin),
    ] {
        t.insert(
            token,
            Principal {
                name: name.into(),
                role,
                agent: None,
            },
        );
    }
    t.insert(
        "alice-secret",
        Principal {
            name: "alice".into(),
            role: Role::Agent,
            agent: Some("alice".into()),
        },
    );
    t
}

fn token_of(role: Role) -> &'static str {
    match role {
        Role::Agent => "alice-secret",
        Role::Supervisor => "sup",
        Role::Integrator => "int",
        Role::Admin => SECRET,
    }
}

fn header(v: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(v).expect("header value")
}

// ----- the table ---------------------------------------------------------------------

/// The contract's matrix: which roles may call each path (the brief's "gRPC auth
/// contract"); `None` means open (no token).
const MATRIX: &[(&str, Option<&[Role]>)] = &[
    ("/grpc.health.v1.Health/Check", None),
    ("/grpc.health.v1.Health/Watch", None),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        None,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        None,
    ),
    (
        "/caruso.v1.System/GetVersion",
        Some(&[Role::Agent, Role::Supervisor, Role::Integrator, Role::Admin]),
    ),
    (
        "/caruso.v1.System/GetStatus",
        Some(&[Role::Agent, Role::Supervisor, Role::Integrator, Role::Admin]),
    ),
    ("/caruso.v1.System/ReloadConfig", Some(&[Role::Admin])),
    ("/caruso.v1.System/SomethingNew", Some(&[Role::Admin])),
    ("/caruso.v1.Agent/LogIn", Some(&[Role::Agent])),
    ("/caruso.v1.Agent/Events", Some(&[Role::Agent])),
    (
        "/caruso.v1.Voicemail/ListMessages",
        Some(&[Role::Integrator, Role::Admin]),
    ),
    (
        "/caruso.v1.Voicemail/GetAudio",
        Some(&[Role::Integrator, Role::Admin]),
    ),
    (
        "/caruso.v1.Registry/Register",
        Some(&[Role::Integrator, Role::Admin]),
    ),
    (
        "/caruso.v1.Registry/Watch",
        Some(&[Role::Integrator, Role::Admin]),
    ),
    (
        "/caruso.v1.Monitor/Snapshot",
        Some(&[Role::Supervisor, Role::Admin]),
    ),
    (
        "/caruso.v1.Monitor/Watch",
        Some(&[Role::Supervisor, Role::Admin]),
    ),
    (
        "/caruso.v1.Campaigns/Start",
        Some(&[Role::Supervisor, Role::Admin]),
    ),
    ("/caruso.v1.Plugin/CallIncoming", Some(&[Role::Admin])),
    ("/caruso.v1.Unknown/Method", Some(&[Role::Admin])),
    ("/other.pkg.Service/Method", Some(&[Role::Admin])),
    ("/caruso.v1.Voicemail", Some(&[Role::Admin])),
    ("/", Some(&[Role::Admin])),
];

const ROLES: [Role; 4] = [Role::Agent, Role::Supervisor, Role::Integrator, Role::Admin];

#[test]
fn every_role_against_every_path_follows_the_contract() {
    let tokens = table();
    for (path, allowed) in MATRIX {
        match allowed {
            None => {
                assert_eq!(access(path), Access::Open, "{path}");
                assert_eq!(authorize(&tokens, path, None), Ok(None), "{path}");
            }
            Some(allowed) => {
                for role in ROLES {
                    let h = header(&format!("Bearer {}", token_of(role)));
                    let got = authorize(&tokens, path, Some(&h));
                    if allowed.contains(&role) {
                        let p = got.unwrap_or_else(|e| panic!("{path} {role}: {e}"));
                        assert_eq!(p.map(|p| p.role), Some(role), "{path}");
                    } else {
                        match got {
                            Err(AuthError::WrongRole { needed, has, .. }) => {
                                assert_eq!(has, role);
                                assert_eq!(
                                    needed,
                                    allowed
                                        .iter()
                                        .map(|r| r.as_str())
                                        .collect::<Vec<_>>()
                                        .join(" or "),
                                    "{path}"
                                );
                            }
                            other => panic!("{path} {role}: expected WrongRole, got {other:?}"),
                        }
                    }
                }
                assert_eq!(
                    authorize(&tokens, path, None),
                    Err(AuthError::MissingToken),
                    "{path}"
                );
            }
        }
    }
}

#[test]
fn a_method_rule_wins_over_its_service_and_nothing_unnamed_is_open() {
    assert_eq!(
        access("/caruso.v1.System/GetVersion"),
        Access::Authenticated
    );
    assert_eq!(access("/caruso.v1.System/ReloadConfig"), DEFAULT_ACCESS);
    // Only health and reflection are open, and only by exact service name.
    for rule in RULES.iter().filter(|r| r.access == Access::Open) {
        assert!(
            rule.service.starts_with("grpc.health.")
                || rule.service.starts_with("grpc.reflection."),
            "{rule:?}"
        );
    }
    assert_eq!(access("/grpc.health.v1.HealthX/Check"), DEFAULT_ACCESS);
    assert_eq!(access("grpc.health.v1.Health/Check"), DEFAULT_ACCESS);
}

// ----- tokens --------------------------------------------------------------------------

#[test]
fn bearer_values_are_parsed_strictly() {
    assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    for bad in [
        "Basic dC1hbGljZQ==",
        "Bearer",
        "Bearer   ",
        "Token abc",
        "abc",
    ] {
        assert_eq!(
            bearer_token(Some(&header(bad))),
            Err(AuthError::MalformedToken),
            "{bad:?}"
        );
    }
    let opaque = http::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("opaque value");
    assert_eq!(bearer_token(Some(&opaque)), Err(AuthError::MalformedToken));
    assert_eq!(bearer_token(Some(&header("Bearer abc"))), Ok("abc"));
    assert_eq!(bearer_token(Some(&header("bearer  abc "))), Ok("abc"));
    assert_eq!(bearer_token(Some(&header("BEARER abc"))), Ok("abc"));
}

#[test]
fn tokens_resolve_to_their_principal_and_nothing_else() {
    let t = table();
    assert_eq!(t.len(), 4);
    let alice = t.resolve("alice-secret").expect("alice");
    assert_eq!(alice.role, Role::Agent);
    assert_eq!(alice.agent.as_deref(), Some("alice"));
    assert_eq!(t.resolve(SECRET).expect("admin").name, "root");
    for unknown in ["", "alice-secre", "alice-secrett", "ALICE-SECRET", "sup "] {
        assert!(t.resolve(unknown).is_none(), "{unknown:?}");
    }
    assert!(TokenTable::new().resolve("sup").is_none());
    // Debug output shows who, never the secrets.
    let dbg = format!("{t:?}");
    assert!(dbg.contains("root") && !dbg.contains(SECRET), "{dbg}");
}

#[test]
fn refusals_name_the_roles_needed_and_never_the_token() {
    let t = table();
    let h = header(&format!("Bearer {SECRET}"));
    let e = authorize(&t, "/caruso.v1.Agent/LogIn", Some(&h)).expect_err("admin is no agent");
    let s = super::super::ApiError::from(e).into_status();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("needs role agent"), "{}", s.message());
    assert!(s.message().contains("has role admin"), "{}", s.message());
    assert!(!s.message().contains(SECRET));

    let h = header("Bearer not-a-token-we-know");
    let e = authorize(&t, "/caruso.v1.System/GetStatus", Some(&h)).expect_err("unknown");
    assert_eq!(e, AuthError::UnknownToken);
    let s = super::super::ApiError::from(e).into_status();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert!(!s.message().contains("not-a-token"), "{}", s.message());

    for e in [AuthError::MissingToken, AuthError::MalformedToken] {
        assert!(e.is_authentication_failure());
        assert_eq!(
            super::super::ApiError::from(e).into_status().code(),
            Code::Unauthenticated
        );
    }
}

impl super::super::ApiError {
    fn into_status(self) -> tonic::Status {
        self.into()
    }
}

#[test]
fn config_tokens_and_agents_make_the_table() {
    let text = r#"
[api]
[[api.tokens]]
name = "wallboard"
token = "supervisor-secret"
role = "supervisor"
[[api.tokens]]
name = "ops"
token = "admin-secret"
role = "admin"
[api.rate_limit]
max_failures = 3
window_s = 5
[acd]
[[acd.queues]]
name = "sales"
skills = { sales = 2 }
[[acd.agents]]
id = "alice"
token = "alice-secret"
skills = { sales = 3 }
phone = { user = "alice", password = "p" }
"#;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let c = crate::config::Config::from_toml(text, "t.toml", &dir).expect("valid config");
    let p = AuthPolicy::from_config(&c);
    assert_eq!(p.tokens.len(), 3);
    assert_eq!(p.rate_limit.max_failures, 3);
    assert_eq!(p.rate_limit.window, Duration::from_secs(5));
    let w = p.tokens.resolve("supervisor-secret").expect("supervisor");
    assert_eq!((w.name.as_str(), w.role), ("wallboard", Role::Supervisor));
    let a = p.tokens.resolve("alice-secret").expect("agent");
    assert_eq!((a.role, a.agent.as_deref()), (Role::Agent, Some("alice")));
    assert!(p.tokens.resolve("integrator-secret").is_none());
}

// ----- the limiter (simulated clock) -----------------------------------------------

fn limit(max: u32, window_s: u64, peers: usize) -> RateLimit {
    RateLimit {
        max_failures: max,
        window: Duration::from_secs(window_s),
        max_peers: peers,
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

#[test]
fn the_nth_failure_in_the_window_blocks_until_the_window_passes() {
    let t0 = Instant::now();
    let l = limit(3, 60, 16);
    let mut lim = FailureLimiter::new();
    let peer = ip(1);
    assert_eq!(lim.handle_failure(t0, peer, &l), FailureOutcome::Counted(1));
    assert_eq!(lim.check(t0, peer, &l), Ok(()));
    let t = t0 + Duration::from_secs(10);
    assert_eq!(lim.handle_failure(t, peer, &l), FailureOutcome::Counted(2));
    assert_eq!(lim.check(t, peer, &l), Ok(()));
    let t = t0 + Duration::from_secs(20);
    assert_eq!(
        lim.handle_failure(t, peer, &l),
        FailureOutcome::Blocked(Duration::from_secs(40))
    );
    assert_eq!(lim.check(t, peer, &l), Err(Duration::from_secs(40)));
    // Another peer is not affected.
    assert_eq!(lim.check(t, ip(2), &l), Ok(()));
    let t = t0 + Duration::from_millis(59_500);
    assert_eq!(lim.check(t, peer, &l), Err(Duration::from_millis(500)));
    // The window has passed: allowed again, and counting starts over.
    let t = t0 + Duration::from_secs(60);
    assert_eq!(lim.check(t, peer, &l), Ok(()));
    assert_eq!(lim.handle_failure(t, peer, &l), FailureOutcome::Counted(1));
    assert_eq!(lim.check(t, peer, &l), Ok(()));
}

#[test]
fn failures_spread_wider_than_the_window_never_block() {
    let t0 = Instant::now();
    let l = limit(3, 10, 16);
    let mut lim = FailureLimiter::new();
    for i in 0..30u64 {
        let t = t0 + Duration::from_secs(i * 6);
        lim.handle_failure(t, ip(1), &l);
        assert_eq!(lim.check(t, ip(1), &l), Ok(()), "failure {i}");
    }
}

#[test]
fn tracked_peers_are_bounded_evicting_expired_then_oldest() {
    let t0 = Instant::now();
    let l = limit(2, 60, 4);
    let mut lim = FailureLimiter::new();
    for i in 0..4u8 {
        lim.handle_failure(t0 + Duration::from_secs(u64::from(i)), ip(i), &l);
    }
    assert_eq!(lim.tracked(), 4);
    // Full: a new peer evicts the oldest window (ip 0).
    lim.handle_failure(t0 + Duration::from_secs(10), ip(9), &l);
    assert_eq!(lim.tracked(), 4);
    assert_eq!(
        lim.handle_failure(t0 + Duration::from_secs(11), ip(1), &l),
        FailureOutcome::Blocked(Duration::from_secs(50)),
        "ip 1 kept its count"
    );
    assert_eq!(
        lim.handle_failure(t0 + Duration::from_secs(11), ip(0), &l),
        FailureOutcome::Counted(1),
        "ip 0 was forgotten (after evicting ip 2)"
    );
    assert_eq!(lim.tracked(), 4);
    // Expired entries go first, and only they.
    let late = t0 + Duration::from_secs(65);
    lim.handle_failure(late, ip(20), &l);
    assert!(lim.tracked() <= 4);
    lim.handle_timeout(late, &l);
    // ip 9 (t=10), ip 1 (t=1 window, expired), ip 0 (t=11), ip 20 (t=65): 1 expired.
    assert_eq!(lim.tracked(), 3);
    // Thousands of addresses never exceed the cap.
    for i in 0..5000u32 {
        let a = IpAddr::from(i.to_be_bytes());
        lim.handle_failure(late, a, &l);
        assert!(lim.tracked() <= 4);
    }
}

// ----- the layer, around a stub service ------------------------------------------

/// What the stub saw: each path with the principal it came with.
type Seen = Arc<Mutex<Vec<(String, Option<Principal>)>>>;

/// A stub inner service: answers OK and records the principal it was given.
#[derive(Clone, Default)]
struct Stub {
    seen: Seen,
}

impl Service<http::Request<()>> for Stub {
    type Response = http::Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        let p = req
            .extensions()
            .get::<Arc<Principal>>()
            .map(|p| (**p).clone());
        self.seen
            .lock()
            .unwrap()
            .push((req.uri().path().to_string(), p));
        std::future::ready(Ok(tonic::Status::ok("").into_http()))
    }
}

struct Harness {
    policy: watch::Sender<Arc<AuthPolicy>>,
    svc: AuthService<Stub>,
    stub: Stub,
}

fn harness(rate_limit: RateLimit) -> Harness {
    let (policy, rx) = watch::channel(Arc::new(AuthPolicy {
        tokens: table(),
        rate_limit,
    }));
    let stub = Stub::default();
    let svc = tower_layer::Layer::layer(&AuthLayer::new(rx), stub.clone());
    Harness { policy, svc, stub }
}

/// Sends a request for `path` from `peer` with `authorization` (if any); the gRPC code
/// of the answer and its headers.
async fn send(
    h: &mut Harness,
    peer: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> (Code, http::HeaderMap) {
    let mut req = http::Request::builder().uri(path);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let mut req = req.body(()).expect("request");
    req.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(peer),
    });
    std::future::poll_fn(|cx| h.svc.poll_ready(cx))
        .await
        .expect("ready");
    let resp = h.svc.call(req).await.expect("infallible");
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
        .expect("grpc-status header");
    (code, resp.headers().clone())
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, last], 40_000))
}

#[tokio::test]
async fn the_layer_passes_the_principal_and_refuses_with_the_right_codes() {
    // Many requests without a token below: a limit that they do not reach.
    let mut h = harness(limit(1000, 60, 16));
    let me = peer(1);
    let bearer = |r: Role| format!("Bearer {}", token_of(r));
    // Every service of the contract, each role: OK (reached the stub) or PERMISSION_DENIED.
    for (path, allowed) in MATRIX {
        for role in ROLES {
            let (code, _) = send(&mut h, me, path, Some(&bearer(role))).await;
            let want = match allowed {
                Some(a) if !a.contains(&role) => Code::PermissionDenied,
                _ => Code::Ok,
            };
            assert_eq!(code, want, "{path} as {role}");
        }
        let (code, _) = send(&mut h, me, path, None).await;
        let want = if allowed.is_none() {
            Code::Ok
        } else {
            Code::Unauthenticated
        };
        assert_eq!(code, want, "{path} without a token");
    }
    let seen = h.stub.seen.lock().unwrap().clone();
    let (_, p) = seen
        .iter()
        .find(|(path, _)| path == "/caruso.v1.Agent/LogIn")
        .expect("the agent reached the Agent service");
    let p = p.clone().expect("principal in the extensions");
    assert_eq!((p.role, p.agent.as_deref()), (Role::Agent, Some("alice")));
    let (_, p) = seen
        .iter()
        .find(|(path, _)| path == "/grpc.health.v1.Health/Check")
        .expect("health");
    assert!(p.is_none(), "open paths carry no principal");
}

#[tokio::test]
async fn failed_attempts_block_the_peer_then_the_window_passes() {
    let mut h = harness(limit(3, 1, 16));
    let (bad, good) = (peer(7), peer(8));
    for _ in 0..3 {
        let (code, _) = send(
            &mut h,
            bad,
            "/caruso.v1.System/GetStatus",
            Some("Bearer nope"),
        )
        .await;
        assert_eq!(code, Code::Unauthenticated);
    }
    // Blocked now, even with a valid token; health stays open; other peers unaffected.
    let (code, headers) = send(
        &mut h,
        bad,
        "/caruso.v1.System/GetStatus",
        Some(&format!("Bearer {SECRET}")),
    )
    .await;
    assert_eq!(code, Code::ResourceExhausted);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let pushback: u64 = headers
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("pushback");
    assert!((1..=1000).contains(&pushback), "{pushback}");
    let msg = headers.get("grpc-message").expect("message");
    assert!(!msg.to_str().unwrap_or("").contains(SECRET));
    let (code, _) = send(&mut h, bad, "/grpc.health.v1.Health/Check", None).await;
    assert_eq!(code, Code::Ok);
    let (code, _) = send(
        &mut h,
        good,
        "/caruso.v1.System/GetStatus",
        Some("Bearer sup"),
    )
    .await;
    assert_eq!(code, Code::Ok);
    // Wrong roles are denied but not counted: they do not block.
    for _ in 0..5 {
        let (code, _) = send(&mut h, good, "/caruso.v1.Agent/LogIn", Some("Bearer sup")).await;
        assert_eq!(code, Code::PermissionDenied);
    }
    let (code, _) = send(
        &mut h,
        good,
        "/caruso.v1.System/GetStatus",
        Some("Bearer sup"),
    )
    .await;
    assert_eq!(code, Code::Ok);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, _) = send(
        &mut h,
        bad,
        "/caruso.v1.System/GetStatus",
        Some("Bearer sup"),
    )
    .await;
    assert_eq!(code, Code::Ok, "the window has passed");
}

#[tokio::test]
async fn a_new_policy_applies_to_the_next_request() {
    let mut h = harness(RateLimit::default());
    let me = peer(3);
    let (code, _) = send(
        &mut h,
        me,
        "/caruso.v1.System/GetStatus",
        Some("Bearer sup"),
    )
    .await;
    assert_eq!(code, Code::Ok);
    let mut tokens = TokenTable::new();
    tokens.insert(
        "rotated",
        Principal {
            name: "wallboard".into(),
            role: Role::Supervisor,
            agent: None,
        },
    );
    h.policy.send_replace(Arc::new(AuthPolicy {
        tokens,
        rate_limit: RateLimit::default(),
    }));
    let (code, _) = send(
        &mut h,
        me,
        "/caruso.v1.System/GetStatus",
        Some("Bearer sup"),
    )
    .await;
    assert_eq!(code, Code::Unauthenticated, "the old token is gone");
    let (code, _) = send(
        &mut h,
        me,
        "/caruso.v1.Monitor/Watch",
        Some("Bearer rotated"),
    )
    .await;
    assert_eq!(code, Code::Ok);
}
