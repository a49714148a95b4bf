//! IVR flows seen from the caller's side: a two-level menu walked with RFC 4733 digits
//! (SIPp pcap play), with SIP INFO digits, with in-band tones, with every digit sent two
//! ways; the no-input path and the invalid-digit path.
//!
//! Every test runs its own server with a small flow (short timeouts) whose prompts are
//! recognisable noise bursts (`audio::marker_audio`). The test verifies what the server
//! does next: which prompts it plays, in which order (found in the server's RTP, captured
//! by tcpdump at SIPp's media port and decoded from G.711), when it hangs up, and the
//! metrics `caruso_ivr_nodes_entered_total{flow,node}` and
//! `caruso_dtmf_digits_total{source}`.

use std::time::Duration;

use caruso_e2e::audio::*;
use caruso_e2e::*;

/// The test flow's prompts: name, seed of its marker audio.
const PROMPTS: &[(&str, u32)] = &[
    ("e2e-top", 1),
    ("e2e-sub", 2),
    ("e2e-sales", 3),
    ("e2e-billing", 4),
    ("e2e-support", 5),
    ("e2e-invalid", 6),
    ("e2e-noinput", 7),
    ("e2e-bye", 8),
];

/// Length of each marker prompt.
const PROMPT_SECS: f32 = 0.6;

/// The flow on number 100 (the number SIPp dials):
///
/// ```text
/// top (menu): 1 -> sub, 2 -> support; fallback bye
///   sub (menu): 7 -> sales, 2 -> billing; fallback bye
///     sales, billing, support, bye: hangup nodes that play their prompt first
/// ```
///
/// Menus: no-input timeout 2 s, 2 failures or 2 timeouts go to the fallback.
fn flow_toml(prompt_dir: &std::path::Path) -> String {
    let menu = |name: &str, prompt: &str, options: &str| {
        format!(
            "\n[flows.e2e.nodes.{name}]\ntype = \"menu\"\nprompts = [\"{prompt}\"]\n\
             options = {{ {options} }}\nfallback = \"bye\"\ntimeout_s = 2\n\
             inter_digit_timeout_s = 1\nmax_failures = 2\nmax_timeouts = 2\n\
             invalid_prompts = [\"e2e-invalid\"]\ntimeout_prompts = [\"e2e-noinput\"]\n"
        )
    };
    let hangup = |name: &str, prompt: &str| {
        format!("\n[flows.e2e.nodes.{name}]\ntype = \"hangup\"\nprompts = [\"{prompt}\"]\n")
    };
    let mut s = format!(
        "\n[ivr]\nprompt_dir = \"{}\"\n\n[[numbers]]\nnumber = \"100\"\nflow = \"e2e\"\n\n\
         [flows.e2e]\nstart = \"top\"\n",
        prompt_dir.display()
    );
    s += &menu("top", "e2e-top", "\"1\" = \"sub\", \"2\" = \"support\"");
    s += &menu("sub", "e2e-sub", "\"7\" = \"sales\", \"2\" = \"billing\"");
    s += &hangup("sales", "e2e-sales");
    s += &hangup("billing", "e2e-billing");
    s += &hangup("support", "e2e-support");
    s += &hangup("bye", "e2e-bye");
    s
}

fn marker(name: &str) -> Vec<i16> {
    let seed = PROMPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("known prompt");
    marker_audio(seed, PROMPT_SECS)
}

/// What one call through the test flow showed.
struct Outcome {
    res: SippResult,
    /// The marker prompts the caller heard, in order.
    heard: Vec<&'static str>,
    metrics: String,
    packets: usize,
}

impl Outcome {
    fn entered(&self, node: &str) -> f64 {
        metric_sum(
            &self.metrics,
            "caruso_ivr_nodes_entered_total",
            &["flow=\"e2e\"", &format!("node=\"{node}\"")],
        )
        .unwrap_or(0.0)
    }

    fn digits(&self, source: Option<&str>) -> f64 {
        let label = source.map(|s| format!("source=\"{s}\""));
        let labels: Vec<&str> = label.iter().map(String::as_str).collect();
        metric_sum(&self.metrics, "caruso_dtmf_digits_total", &labels).unwrap_or(0.0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<&str> = self
            .metrics
            .lines()
            .filter(|l| l.starts_with("caruso_ivr") || l.starts_with("caruso_dtmf"))
            .collect();
        write!(
            f,
            "heard {:?} in {} RTP packets\nmetrics:\n{}\n{}",
            self.heard,
            self.packets,
            lines.join("\n"),
            self.res
        )
    }
}

/// Runs `scenario` against a fresh server with the test flow and collects what the
/// caller heard.
fn call(scenario: &str) -> Outcome {
    let ports = Ports::block(60);
    let markers: Vec<(&str, Vec<i16>)> = PROMPTS.iter().map(|(n, _)| (*n, marker(n))).collect();
    let extra: Vec<(&str, &[i16])> = markers.iter().map(|(n, s)| (*n, s.as_slice())).collect();
    let prompts = prompt_dir_with(&extra);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = flow_toml(prompts.path());
    let server = Server::start(cfg);
    let sipp = Sipp::new(&server, scenario)
        .pcaps()
        .timeout(Duration::from_secs(40));
    let capture = RtpCapture::udp_to(sipp.media_port());
    let res = sipp.run();
    std::thread::sleep(Duration::from_millis(200));
    let packets = capture.finish();
    let from_server: Vec<RtpPacket> = packets.into_iter().filter(|p| p.pt == 0).collect();
    let stream = pcmu_stream(&from_server);
    let mut found: Vec<(usize, &'static str)> = PROMPTS
        .iter()
        .flat_map(|(n, _)| find_all(&stream, &marker(n)).into_iter().map(|at| (at, *n)))
        .collect();
    found.sort();
    Outcome {
        res,
        heard: found.into_iter().map(|(_, n)| n).collect(),
        metrics: server.metrics(),
        packets: from_server.len(),
    }
}

#[test]
fn rfc4733_digits_walk_a_two_level_menu() {
    let o = call("ivr_rfc4733.xml");
    assert!(
        o.res.all_succeeded(1),
        "the leaf must hang up with BYE\n{o}"
    );
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-sub", "e2e-sales"],
        "1 then 7: top menu, second menu, the sales leaf's prompt\n{o}"
    );
    for (node, n) in [("top", 1.0), ("sub", 1.0), ("sales", 1.0), ("support", 0.0)] {
        assert_eq!(o.entered(node), n, "node {node} entries\n{o}");
    }
    assert_eq!(o.digits(Some("rfc4733")), 2.0, "two RFC 4733 digits\n{o}");
    assert_eq!(o.digits(None), 2.0, "and no other\n{o}");
}

#[test]
fn sip_info_digits_walk_a_two_level_menu() {
    let o = call("ivr_info.xml");
    assert!(o.res.all_succeeded(1), "INFOs answered 200, BYE\n{o}");
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-sub", "e2e-sales"],
        "dtmf-relay 1 then application/dtmf 7\n{o}"
    );
    assert_eq!(o.entered("sales"), 1.0, "{o}");
    assert_eq!(o.digits(Some("info")), 2.0, "two SIP INFO digits\n{o}");
}

#[test]
fn inband_tones_walk_a_two_level_menu() {
    let o = call("ivr_inband.xml");
    assert!(o.res.all_succeeded(1), "BYE from the billing leaf\n{o}");
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-sub", "e2e-billing"],
        "in-band 1 then 2 (no telephone-event in the SDP)\n{o}"
    );
    assert_eq!(o.entered("billing"), 1.0, "{o}");
    assert_eq!(
        o.digits(Some("inband")),
        2.0,
        "two in-band digits, each detected once\n{o}"
    );
}

#[test]
fn a_digit_sent_two_ways_counts_once() {
    let o = call("ivr_dtmf_twice.xml");
    assert!(o.res.all_succeeded(1), "{o}");
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-sub", "e2e-sales"],
        "a duplicate 1 would have been an invalid choice in the second menu\n{o}"
    );
    assert_eq!(o.entered("sales"), 1.0, "{o}");
    // `caruso_dtmf_digits_total{source}` counts each key press once (under the way that
    // came first); `caruso_dtmf_duplicates_total{source}` the copies dropped.
    let duplicates = metric_sum(&o.metrics, "caruso_dtmf_duplicates_total", &[]).unwrap_or(0.0);
    assert_eq!(
        (o.digits(None), duplicates),
        (2.0, 2.0),
        "1 and 7, each sent as RFC 4733 and as SIP INFO: two digits, two duplicates\n{o}"
    );
}

#[test]
fn no_input_replays_the_menu_then_falls_back() {
    let o = call("ivr_timeout.xml");
    assert!(o.res.all_succeeded(1), "the fallback hangs up\n{o}");
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-noinput", "e2e-top", "e2e-bye"],
        "timeout 1: no-input prompt and the menu again; timeout 2 (max_timeouts): fallback\n{o}"
    );
    assert_eq!(o.entered("bye"), 1.0, "{o}");
    assert_eq!(o.entered("top"), 1.0, "a replay is not a new entry\n{o}");
    // Two 2 s timeouts after the menu's prompt: at least 4 s + the prompts.
    assert!(
        o.res.elapsed >= Duration::from_millis(5500),
        "the timeouts must wait 2 s each: call took {:?}\n{o}",
        o.res.elapsed
    );
    assert_eq!(o.digits(None), 0.0, "{o}");
}

#[test]
fn invalid_digit_plays_invalid_then_the_menu_again() {
    let o = call("ivr_invalid.xml");
    assert!(o.res.all_succeeded(1), "BYE from the support leaf\n{o}");
    assert_eq!(
        o.heard,
        ["e2e-top", "e2e-invalid", "e2e-top", "e2e-support"],
        "5 is not an option: invalid prompt, menu again; then 2 -> support\n{o}"
    );
    assert_eq!(o.entered("support"), 1.0, "{o}");
    assert_eq!(o.entered("sub"), 0.0, "{o}");
}

/// The tables of the default config (`config/caruso.toml`) that define what a caller
/// meets: `[ivr]`, `[[numbers]]`, `[flows.*]`, `[voicemail]`, `[acd]`, with the prompt directory
/// made absolute (the harness writes its config elsewhere).
fn default_config_call_tables() -> String {
    let path = workspace_root().join("config").join("caruso.toml");
    let text = std::fs::read_to_string(&path).expect("read config/caruso.toml");
    let mut out = String::new();
    let mut keep = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[');
            keep = ["ivr]", "numbers]", "flows", "voicemail", "acd"]
                .iter()
                .any(|p| name.starts_with(p));
        }
        if !keep {
            continue;
        }
        if t.starts_with("prompt_dir") {
            out.push_str(&format!("prompt_dir = \"{}\"\n", prompts_dir().display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    format!("\n{out}")
}

#[test]
fn demo_flow_of_the_default_config_sends_2_to_support_and_its_exit() {
    let ports = Ports::block(60);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = default_config_call_tables();
    let server = Server::start(cfg);
    let sipp = Sipp::new(&server, "ivr_demo_support.xml")
        .pcaps()
        .timeout(Duration::from_secs(45));
    let capture = RtpCapture::udp_to(sipp.media_port());
    let res = sipp.run();
    let stream = pcmu_stream(&capture.finish());
    let names = ["welcome", "main-menu", "transfer-unavailable"];
    let mut found: Vec<(usize, &str)> = names
        .iter()
        .flat_map(|n| {
            find_all(&stream, &default_prompt(n))
                .into_iter()
                .map(move |at| (at, *n))
        })
        .collect();
    found.sort();
    let heard: Vec<&str> = found.into_iter().map(|(_, n)| n).collect();
    assert!(
        res.all_succeeded(1),
        "no support agent is logged in: the queue's exit plays transfer-unavailable, then BYE\n{res}"
    );
    assert_eq!(
        heard,
        names,
        "welcome, the main menu, then (after 2) transfer-unavailable\n{}",
        server.log_tail(30)
    );
    let exits = metric_sum(
        &server.metrics(),
        "caruso_acd_exits_total",
        &["queue=\"support\"", "reason=\"no_agents\""],
    );
    assert_eq!(
        exits,
        Some(1.0),
        "the support queue sent the caller to its exit"
    );
}
