//! Config reload (SIGHUP and `caruso.v1.System/ReloadConfig` through `caruso-agent`, a
//! separate gRPC client process): a bad config is refused with file and key and the
//! running one stays; a good one applies to new calls; a call already in a flow finishes
//! on the version it started with. What a call ran is read from
//! `caruso_ivr_nodes_entered_total{flow,node}`.

use std::process::Command;
use std::time::Duration;

use caruso_e2e::*;

/// Number 100 enters flow `f`: a play node `<tag>-play` (the 2.5 s welcome prompt), then
/// a hangup node `<tag>-bye`. Node names differ per version, so the metrics tell which
/// version a call walked.
fn flow(tag: &str) -> String {
    let prompts = workspace_root().join("config/prompts");
    format!(
        "\n[ivr]\nprompt_dir = \"{}\"\n\n[[numbers]]\nnumber = \"100\"\nflow = \"f\"\n\n\
         [flows.f]\nstart = \"{tag}-play\"\n\
         [flows.f.nodes.{tag}-play]\ntype = \"play\"\nprompts = [\"welcome\"]\nnext = \"{tag}-bye\"\n\
         [flows.f.nodes.{tag}-bye]\ntype = \"hangup\"\nprompts = [\"goodbye\"]\n",
        prompts.display()
    )
}

fn entered(server: &Server, node: &str) -> f64 {
    metric_sum(
        &server.metrics(),
        "caruso_ivr_nodes_entered_total",
        &["flow=\"f\"", &format!("node=\"{node}\"")],
    )
    .unwrap_or(0.0)
}

fn reloads(server: &Server, result: &str) -> f64 {
    metric_sum(
        &server.metrics(),
        "caruso_config_reloads_total",
        &[&format!("result=\"{result}\"")],
    )
    .unwrap_or(0.0)
}

/// Waits (up to 10 s) until the metric reaches 1.
fn wait_for(server: &Server, name: &str, labels: &[&str]) {
    let v = wait_metric(server, name, labels, Duration::from_secs(10), |v| v >= 1.0);
    assert_eq!(v, Some(1.0), "{name}{labels:?}\n{}", server.log_tail(30));
}

fn write_config(server: &Server, extra: String) {
    let mut cfg = server.config.clone();
    cfg.extra = extra;
    std::fs::write(server.config_path(), cfg.to_toml(server.dir())).expect("rewrite config");
}

/// One call to 100 that the server ends (play, then hangup node).
fn call(server: &Server, port: u16) -> SippResult {
    let sink = RtpSink::bind(port, Duration::from_secs(20));
    let res = Sipp::new(server, "uac_prompt_rtp.xml")
        .key("rtp_port", sink.port())
        .timeout(Duration::from_secs(20))
        .run();
    drop(sink.finish());
    res
}

fn agent_reload(server: &Server) -> std::process::Output {
    Command::new(agent_binary())
        .args(["--server", &server.grpc_url(), "--token", ADMIN_TOKEN])
        .arg("reload-config")
        .output()
        .expect("run caruso-agent")
}

#[test]
fn bad_reloads_keep_the_running_config_and_good_ones_apply_to_new_calls() {
    let ports = Ports::block(40);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = flow("v1");
    let server = Server::start(cfg);

    // SIGHUP with a flow naming a node that does not exist: refused, v1 stays.
    write_config(
        &server,
        flow("v2").replace("next = \"v2-bye\"", "next = \"nowhere\""),
    );
    server.signal("HUP");
    wait_for(
        &server,
        "caruso_config_reloads_total",
        &["result=\"refused\""],
    );
    let log = server.log_tail(40);
    assert!(
        log.contains("flows.f.nodes.v2-play.next") && log.contains("running config stays"),
        "the refusal names the key and says the running config stays:\n{log}"
    );
    let res = call(&server, ports.peer(10));
    assert!(res.all_succeeded(1), "{res}");
    assert_eq!(entered(&server, "v1-bye"), 1.0, "still on v1");

    // The same bad config through gRPC: the client exits non-zero with the reason.
    let out = agent_reload(&server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused reload is an error");
    assert!(stderr.contains("flows.f.nodes.v2-play.next"), "{stderr}");
    assert_eq!(reloads(&server, "refused"), 2.0);

    // A setting that needs a restart: refused, naming it.
    let mut moved = server.config.clone();
    moved.extra = flow("v2");
    let text = moved
        .to_toml(server.dir())
        .replace(&format!(":{}\"", ports.grpc()), ":1\"");
    std::fs::write(server.config_path(), text).expect("rewrite config");
    let out = agent_reload(&server);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api.grpc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A good config through gRPC: applied; the next call walks v2.
    write_config(&server, flow("v2"));
    let out = agent_reload(&server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("generation: 2"), "{stdout}");
    let res = call(&server, ports.peer(12));
    assert!(res.all_succeeded(1), "{res}");
    assert_eq!(entered(&server, "v2-bye"), 1.0, "new calls use v2");
    assert_eq!(entered(&server, "v1-bye"), 1.0, "v1 was not walked again");
    let mut server = server;
    assert!(server.is_alive(), "the server survived every reload");
}

#[test]
fn a_call_in_a_flow_finishes_on_the_version_it_started_with() {
    let ports = Ports::block(40);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = flow("v1");
    let server = Server::start(cfg);
    std::thread::scope(|s| {
        let running = s.spawn(|| call(&server, ports.peer(10)));
        // The call is in v1-play (a 2.5 s prompt) when the reload lands.
        wait_for(
            &server,
            "caruso_ivr_nodes_entered_total",
            &["node=\"v1-play\""],
        );
        write_config(&server, flow("v2"));
        server.signal("HUP");
        wait_for(
            &server,
            "caruso_config_reloads_total",
            &["result=\"applied\""],
        );
        let res = running.join().expect("call thread");
        assert!(res.all_succeeded(1), "{res}");
    });
    assert_eq!(
        entered(&server, "v1-bye"),
        1.0,
        "the call that started on v1 ended through v1's hangup node"
    );
    assert_eq!(entered(&server, "v2-play"), 0.0);
    let res = call(&server, ports.peer(12));
    assert!(res.all_succeeded(1), "{res}");
    assert_eq!(entered(&server, "v2-bye"), 1.0, "a new call walks v2");
}
