//! gRPC API hygiene against the running binary: bearer tokens with roles, the contract's
//! service → roles table, `UNAUTHENTICATED` vs `PERMISSION_DENIED`, health and
//! reflection without a token, failed attempts rate-limited and logged, tokens replaced
//! on reload, and TLS (`[api.tls]`) with `caruso-agent --ca`.
//!
//! The clients are tonic (a generic client of any path, the reflection and health
//! clients) and `caruso-agent`, each outside the server's process.

use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use caruso_e2e::*;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const ALICE: &str = "alice-secret";
const BOB: &str = "bob-secret";

/// Voicemail (mailbox 200) and an ACD with agents alice and bob, beside the harness's
/// supervisor, integrator and admin tokens.
fn full_config(ports: Ports) -> ServerConfig {
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        "\n[ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [voicemail]\n[[voicemail.mailboxes]]\nnumber = \"200\"\nowner = \"Alice Example\"\npin = \"1234\"\n\n\
         [acd]\n[[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n\n\
         [[acd.agents]]\nid = \"alice\"\ntoken = \"{ALICE}\"\nskills = {{ sales = 1 }}\n\
         phone = {{ uri = \"sip:alice@127.0.0.1:{pa}\" }}\n\n\
         [[acd.agents]]\nid = \"bob\"\ntoken = \"{BOB}\"\nskills = {{ sales = 1 }}\n\
         phone = {{ uri = \"sip:bob@127.0.0.1:{pb}\" }}\n",
        prompts = prompts_dir().display(),
        pa = ports.peer(1),
        pb = ports.peer(2),
    );
    cfg
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(url: String) -> Channel {
    Endpoint::from_shared(url)
        .expect("url")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to caruso's gRPC port")
}

/// Calls `path` with an empty request message (every field default) and `authorization`
/// set to `value` (if any); the status (`Ok` as `Code::Ok`).
async fn call_raw(channel: &Channel, path: &str, value: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    let mut req = tonic::Request::new(());
    req.set_timeout(Duration::from_secs(5));
    if let Some(v) = value {
        req.metadata_mut()
            .insert("authorization", v.parse().expect("metadata value"));
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::from_str(path).expect("path");
    match grpc.unary(req, path, codec).await {
        Ok(_) => Status::ok(""),
        Err(s) => s,
    }
}

async fn call(channel: &Channel, path: &str, token: Option<&str>) -> Status {
    let value = token.map(|t| format!("Bearer {t}"));
    call_raw(channel, path, value.as_deref()).await
}

/// The brief's contract, one unary method per service: path, the tokens allowed, and
/// the exact code an allowed empty request gets where the service exists on this
/// server (`None`: anything but UNAUTHENTICATED / PERMISSION_DENIED, for services that
/// other parts of caruso provide).
fn contract() -> Vec<(&'static str, Vec<&'static str>, Option<Code>)> {
    let any = vec![ALICE, SUPERVISOR_TOKEN, INTEGRATOR_TOKEN, ADMIN_TOKEN];
    vec![
        ("/caruso.v1.System/GetVersion", any.clone(), Some(Code::Ok)),
        ("/caruso.v1.System/GetStatus", any, Some(Code::Ok)),
        (
            "/caruso.v1.System/ReloadConfig",
            vec![ADMIN_TOKEN],
            Some(Code::Ok),
        ),
        ("/caruso.v1.Agent/GetStatus", vec![ALICE], Some(Code::Ok)),
        (
            "/caruso.v1.Voicemail/GetMailbox",
            vec![INTEGRATOR_TOKEN, ADMIN_TOKEN],
            Some(Code::InvalidArgument),
        ),
        (
            "/caruso.v1.Registry/Lookup",
            vec![INTEGRATOR_TOKEN, ADMIN_TOKEN],
            None,
        ),
        (
            "/caruso.v1.Monitor/Snapshot",
            vec![SUPERVISOR_TOKEN, ADMIN_TOKEN],
            None,
        ),
        (
            "/caruso.v1.Campaigns/ListCampaigns",
            vec![SUPERVISOR_TOKEN, ADMIN_TOKEN],
            None,
        ),
        ("/caruso.v1.NotAService/Anything", vec![ADMIN_TOKEN], None),
    ]
}

#[test]
fn each_role_against_each_service_gets_the_contracts_code() {
    let server = Server::start(full_config(Ports::block(40)));
    runtime().block_on(async {
        let ch = connect(server.grpc_url()).await;
        for (path, allowed, code) in contract() {
            for token in [ALICE, SUPERVISOR_TOKEN, INTEGRATOR_TOKEN, ADMIN_TOKEN] {
                let s = call(&ch, path, Some(token)).await;
                if allowed.contains(&token) {
                    match code {
                        Some(c) => assert_eq!(s.code(), c, "{path} with {token}: {s:?}"),
                        None => assert!(
                            !matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied),
                            "{path} with {token}: {s:?}"
                        ),
                    }
                } else {
                    assert_eq!(
                        s.code(),
                        Code::PermissionDenied,
                        "{path} with {token}: {s:?}"
                    );
                    assert!(s.message().contains("needs role"), "{s:?}");
                    assert!(!s.message().contains(token), "the token is echoed: {s:?}");
                }
            }
            let s = call(&ch, path, None).await;
            assert_eq!(s.code(), Code::Unauthenticated, "{path} without a token");
        }
    });
}

#[test]
fn unauthenticated_and_permission_denied_are_told_apart_and_logged() {
    let server = Server::start(full_config(Ports::block(40)));
    runtime().block_on(async {
        let ch = connect(server.grpc_url()).await;
        let status = "/caruso.v1.System/GetStatus";
        let s = call_raw(&ch, status, None).await;
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(s.message().contains("Bearer"), "{s:?}");
        for bad in ["Basic YWRtaW46YWRtaW4=", "Bearer", "admin-secret"] {
            let s = call_raw(&ch, status, Some(bad)).await;
            assert_eq!(s.code(), Code::Unauthenticated, "{bad:?}: {s:?}");
        }
        let s = call(&ch, status, Some("wrong-token-xyz")).await;
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(!s.message().contains("wrong-token-xyz"), "{s:?}");
        // A supervisor may read the status but not reload.
        assert_eq!(
            call(&ch, status, Some(SUPERVISOR_TOKEN)).await.code(),
            Code::Ok
        );
        let s = call(
            &ch,
            "/caruso.v1.System/ReloadConfig",
            Some(SUPERVISOR_TOKEN),
        )
        .await;
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("needs role admin"), "{s:?}");
        assert!(s.message().contains("has role supervisor"), "{s:?}");
    });
    let log = server.log_tail(200);
    assert!(
        log.contains("gRPC authentication failed")
            && log.contains("127.0.0.1")
            && log.contains("caruso.v1.System/GetStatus")
            && log.contains("unknown token"),
        "each failure is logged with peer, path and reason:\n{log}"
    );
    assert!(log.contains("gRPC permission denied"), "{log}");
    for secret in ["wrong-token-xyz", SUPERVISOR_TOKEN, ADMIN_TOKEN] {
        assert!(
            !log.contains(secret),
            "the log shows a token ({secret}):\n{log}"
        );
    }
}

#[test]
fn health_and_reflection_need_no_token() {
    let server = Server::start(full_config(Ports::block(40)));
    runtime().block_on(async {
        let ch = connect(server.grpc_url()).await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        for service in [
            "",
            "caruso.v1.System",
            "caruso.v1.Agent",
            "caruso.v1.Voicemail",
        ] {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap_or_else(|s| panic!("health {service:?}: {s:?}"))
                .into_inner();
            assert_eq!(
                r.status(),
                tonic_health::pb::health_check_response::ServingStatus::Serving,
                "{service:?}"
            );
        }

        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let mut reflection = ServerReflectionClient::new(ch);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(tonic::codegen::tokio_stream::iter([request]))
            .await
            .expect("reflection without a token")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("reflection answer")
            .expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("expected a service list: {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in [
            "caruso.v1.System",
            "caruso.v1.Agent",
            "caruso.v1.Voicemail",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    });
}

#[test]
fn an_agent_token_acts_only_for_its_own_agent() {
    let server = Server::start(full_config(Ports::block(40)));
    let agent = |args: &[&str]| {
        Command::new(agent_binary())
            .args(["--server", &server.grpc_url(), "--timeout", "5"])
            .args(args)
            .env_remove("CARUSO_TOKEN")
            .env_remove("CARUSO_AGENT_TOKEN")
            .output()
            .expect("run caruso-agent")
    };
    for (token, id) in [(ALICE, "alice"), (BOB, "bob")] {
        let out = agent(&["agent", "--token", token, "status"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("agent={id}")), "{stdout}");
    }
    // alice logs in: only alice's state changes.
    let out = agent(&["agent", "--token", ALICE, "login"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = agent(&["agent", "--token", BOB, "status"]);
    assert!(
        String::from_utf8_lossy(&bob.stdout).contains("state=logged-out"),
        "{}",
        String::from_utf8_lossy(&bob.stdout)
    );
    // An admin token is no agent.
    let out = agent(&["agent", "--token", ADMIN_TOKEN, "status"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // System status takes any token, an agent's too.
    let out = agent(&["--token", ALICE, "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn caruso_agent_takes_the_token_from_flag_or_environment() {
    let server = Server::start(ServerConfig::new(Ports::block(40)));
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(agent_binary());
        c.args(["--server", &server.grpc_url(), "--timeout", "5"])
            .args(args)
            .env_remove("CARUSO_TOKEN");
        if let Some(t) = env {
            c.env("CARUSO_TOKEN", t);
        }
        c.output().expect("run caruso-agent")
    };
    let out = run(&["status"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token") && err.contains("CARUSO_TOKEN"),
        "{err}"
    );
    let out = run(&["status"], Some(SUPERVISOR_TOKEN));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("health: SERVING"));
    let out = run(&["--token", INTEGRATOR_TOKEN, "reload-config"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PermissionDenied") && err.contains("admin"),
        "{err}"
    );
    let out = run(&["--token", ADMIN_TOKEN, "reload-config"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("generation: 2"));
    let out = run(&["--token", "nobody", "version"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown token"));
}

#[test]
fn failed_attempts_are_rate_limited_per_peer_until_the_window_passes() {
    let mut cfg = ServerConfig::new(Ports::block(40));
    cfg.extra = "\n[api.rate_limit]\nmax_failures = 3\nwindow_s = 2\n".into();
    let server = Server::start(cfg);
    runtime().block_on(async {
        let ch = connect(server.grpc_url()).await;
        let path = "/caruso.v1.System/GetStatus";
        let started = std::time::Instant::now();
        for i in 0..3 {
            let s = call(&ch, path, Some(&format!("guess-{i}"))).await;
            assert_eq!(s.code(), Code::Unauthenticated, "attempt {i}");
        }
        // Refused now, a valid token included; health stays open.
        let s = call(&ch, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
        assert!(s.message().contains("retry after"), "{s:?}");
        let retry: u64 = s
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("retry-after metadata");
        assert!((1..=2).contains(&retry), "{retry}");
        assert!(s.metadata().get("grpc-retry-pushback-ms").is_some());
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health is never rate-limited");
        // After the window (2 s from the first failure) the peer is served again.
        let wait = Duration::from_millis(2_200).saturating_sub(started.elapsed());
        tokio::time::sleep(wait).await;
        assert_eq!(call(&ch, path, Some(ADMIN_TOKEN)).await.code(), Code::Ok);
    });
    let log = server.log_tail(100);
    assert!(
        log.contains("gRPC peer refused after too many failed authentications"),
        "{log}"
    );
}

#[test]
fn tokens_are_replaced_on_reload() {
    let ports = Ports::block(40);
    let server = Server::start(ServerConfig::new(ports));
    runtime().block_on(async {
        let ch = connect(server.grpc_url()).await;
        let path = "/caruso.v1.System/GetVersion";
        assert_eq!(
            call(&ch, path, Some(SUPERVISOR_TOKEN)).await.code(),
            Code::Ok
        );
        // The supervisor's token rotates; the admin's stays.
        let text = server
            .config
            .to_toml(server.dir())
            .replace(SUPERVISOR_TOKEN, "rotated-supervisor-secret");
        std::fs::write(server.config_path(), text).expect("rewrite config");
        let s = call(&ch, "/caruso.v1.System/ReloadConfig", Some(ADMIN_TOKEN)).await;
        assert_eq!(s.code(), Code::Ok, "{s:?}");
        assert_eq!(
            call(&ch, path, Some(SUPERVISOR_TOKEN)).await.code(),
            Code::Unauthenticated,
            "the old token no longer works"
        );
        assert_eq!(
            call(&ch, path, Some("rotated-supervisor-secret"))
                .await
                .code(),
            Code::Ok
        );
        let s = call(
            &ch,
            "/caruso.v1.Monitor/Snapshot",
            Some("rotated-supervisor-secret"),
        )
        .await;
        assert!(
            !matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied),
            "still a supervisor: {s:?}"
        );
    });
}

#[test]
fn tls_serves_caruso_agent_with_the_servers_certificate() {
    let ports = Ports::block(40);
    let dir = TempDir::new("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let cert_path = dir.path().join("caruso.crt");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(
        dir.path().join("caruso.key"),
        cert.signing_key.serialize_pem(),
    )
    .expect("write key");
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        "\n[api.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        dir.path().join("caruso.key").display()
    );
    let server = Server::start(cfg);
    let https = format!("https://127.0.0.1:{}", ports.grpc());
    let run = |args: &[&str]| {
        Command::new(agent_binary())
            .args(["--timeout", "5", "--token", SUPERVISOR_TOKEN])
            .args(args)
            .output()
            .expect("run caruso-agent")
    };
    let ca = cert_path.to_str().expect("utf-8 path");
    let out = run(&["--server", &https, "--ca", ca, "status"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(20)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("health: SERVING"));
    // Another certificate as the CA: the server's is not trusted.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let other_path = dir.path().join("other.crt");
    std::fs::write(&other_path, other.cert.pem()).expect("write other");
    let out = run(&[
        "--server",
        &https,
        "--ca",
        other_path.to_str().expect("utf-8"),
        "status",
    ]);
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );
    // Plain HTTP/2 to the TLS port gets nothing.
    let out = run(&["--server", &server.grpc_url(), "status"]);
    assert!(
        !out.status.success(),
        "plain HTTP/2 was served on the TLS port"
    );
}
