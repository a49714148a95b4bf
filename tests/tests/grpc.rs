//! The gRPC API seen from outside: `caruso-agent` (a separate process) asks the running
//! server for its version and status (with the supervisor's token; any role may); the
//! metrics endpoint answers Prometheus text.

use std::process::Command;
use std::time::Duration;

use caruso_e2e::*;

fn agent(server: &Server, cmd: &str) -> (bool, String, String) {
    let out = Command::new(agent_binary())
        .args(["--server", &server.grpc_url(), "--timeout", "5"])
        .args(["--token", SUPERVISOR_TOKEN, cmd])
        .output()
        .expect("run caruso-agent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn grpc_system_version() {
    let server = Server::start(ServerConfig::new(Ports::block(40)).number("100", 1.0, 0));
    let (ok, out, err) = agent(&server, "version");
    assert!(ok, "caruso-agent version failed: {err}");
    assert!(
        out.starts_with(&format!("caruso {}", env!("CARGO_PKG_VERSION"))),
        "unexpected version output: {out:?}"
    );
}

#[test]
fn grpc_system_status() {
    let server = Server::start(ServerConfig::new(Ports::block(40)).number("100", 1.0, 0));
    // Give uptime a chance to be non-zero.
    std::thread::sleep(Duration::from_millis(1100));
    let (ok, out, err) = agent(&server, "status");
    assert!(ok, "caruso-agent status failed: {err}");
    assert!(out.contains("health: SERVING"), "{out}");
    assert!(out.contains("active_calls: 0"), "{out}");
    let uptime: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("uptime_seconds: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("uptime line");
    assert!(uptime >= 1, "uptime {uptime}");
}

#[test]
fn agent_reports_unreachable_server() {
    require_isolated_network();
    let ports = Ports::block(40);
    let out = Command::new(agent_binary())
        .args([
            "--server",
            &format!("http://127.0.0.1:{}", ports.grpc()),
            "--timeout",
            "2",
            "--token",
            SUPERVISOR_TOKEN,
            "version",
        ])
        .output()
        .expect("run caruso-agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the caruso server"), "{err}");
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let server = Server::start(ServerConfig::new(Ports::block(40)).number("100", 1.0, 0));
    // One OPTIONS so that at least one request counter exists.
    let req = options_request(server.config.ports.sip(), "metrics-1", "127.0.0.1:9");
    assert!(udp_exchange(server.sip_addr(), req.as_bytes(), 2000).is_some());
    let m = server.metrics();
    let options = metric_sum(
        &m,
        "caruso_sip_requests_received_total",
        &["method=\"OPTIONS\""],
    );
    assert!(
        options.is_some_and(|n| n >= 1.0),
        "no OPTIONS counted:\n{m}"
    );
}

#[test]
fn sigterm_stops_the_server_within_bound() {
    let mut server = Server::start(ServerConfig::new(Ports::block(40)).number("100", 1.0, 0));
    let status = server.terminate(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "caruso did not exit within 10 s of SIGTERM"
    );
}

fn status_field(out: &str, key: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn grpc_status_counts_active_calls() {
    let ports = Ports::block(60);
    let server = Server::start(ServerConfig::new(ports).number("100", 4.0, 0));
    let sink = RtpSink::bind(ports.peer(14), Duration::from_secs(30));
    let sipp = Sipp::new(&server, "uac_prompt_rtp.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(25));
    let call = std::thread::spawn(move || sipp.run());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.packets().len() < 25 {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never got media"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The stats snapshot is refreshed periodically: allow it one refresh.
    std::thread::sleep(Duration::from_millis(600));
    let (ok, during, err) = agent(&server, "status");
    assert!(ok, "{err}");
    assert_eq!(status_field(&during, "active_calls"), Some(1), "{during}");
    assert_eq!(status_field(&during, "sip_dialogs"), Some(1), "{during}");
    // The INVITE server transaction lives on after the 2xx (RFC 6026 Accepted, 64*T1).
    assert!(
        status_field(&during, "sip_transactions").is_some_and(|n| n >= 1),
        "a call in progress has live SIP transactions:\n{during}"
    );
    let res = call.join().expect("sipp thread");
    assert!(res.all_succeeded(1), "{res}");
    // Once the server's BYE is answered the call is over.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (ok, after, err) = agent(&server, "status");
        assert!(ok, "{err}");
        if status_field(&after, "active_calls") == Some(0)
            && status_field(&after, "sip_dialogs") == Some(0)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GetStatus still counts the call 3 s after it ended:\n{after}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
