//! A preview campaign end to end: alice (a registered SIPp phone, logged in and ready
//! with `caruso-agent`) watches her events with `caruso-agent agent events` and sees
//! each contact (name, number, CSV columns, the campaign's script) before any dial:
//!
//! - she skips the first contact: it is not dialed (it waits for the `retry.no_answer`
//!   delay, an hour here, so it stays pending);
//! - she accepts the second: the contact's SIPp UAS is dialed, answers and talks, and
//!   is bridged to alice's phone;
//! - she leaves the third alone: after `preview_timeout_s` (2 s) the offer counts as
//!   skipped, alice is released and that contact is not dialed; a late accept is
//!   refused with NOT_FOUND.
//!
//! The contact side's SIPp log shows one INVITE only, for the accepted number.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caruso_e2e::acd::{
    agent, campaign, caruso_agent, line_field, login_ready, register_phone, registered_agent,
    run_dir, sipp_messages, status_number,
};
use caruso_e2e::*;

const TOKEN: &str = "tok-alice";
const SCRIPT: &str = "Good morning, this is caruso calling about your plan.";

fn config(ports: Ports) -> ServerConfig {
    let trunk = ports.peer(1);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = format!(
        "\n[sip.registrar]\nalgorithms = [\"MD5\"]\n\n\
         [ivr]\nprompt_dir = \"{prompts}\"\n\n\
         [[trunks]]\nname = \"pstn\"\nhost = \"127.0.0.1:{trunk}\"\n\n\
         [[acd.queues]]\nname = \"sales\"\nskills = {{ sales = 1 }}\n\n\
         {alice}\n\
         [dialer]\ndefault_country = \"PL\"\n\n\
         [[campaigns]]\nname = \"pv\"\nmode = \"preview\"\nqueue = \"sales\"\n\
         trunk = \"pstn\"\ncaller_id = \"+48221234567\"\ndefault_country = \"PL\"\n\
         timezone = \"UTC\"\nwindow = {{ from = \"00:00\", to = \"24:00\" }}\n\
         amd = {{ enabled = false }}\npreview_timeout_s = 2\nscript = \"{SCRIPT}\"\n\
         retry = {{ no_answer = {{ delay_s = 3600, max = 2 }} }}\n",
        prompts = prompts_dir().display(),
        alice = registered_agent("alice", "sales = 1", "1001", ""),
    );
    cfg
}

/// Runs `caruso-agent <args>`: (success, stdout, stderr).
fn run(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = caruso_agent(server, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `caruso-agent agent --token tok-alice events --until preview` as a separate process.
struct Watch(Child);

impl Watch {
    /// Starts watching and gives the client time to subscribe.
    fn start(server: &Server, timeout_s: u32) -> Watch {
        let child = Command::new(agent_binary())
            .args(["--server", &server.grpc_url(), "agent", "--token", TOKEN])
            .args(["events", "--until", "preview", "--timeout"])
            .arg(timeout_s.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn caruso-agent events");
        std::thread::sleep(Duration::from_millis(700));
        Watch(child)
    }

    /// Waits for the preview; every line printed, the preview line last.
    fn preview(self, server: &Server) -> (Vec<String>, String) {
        let out = self.0.wait_with_output().expect("events output");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "no preview:\n{text}{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log_tail(40)
        );
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let last = lines.last().cloned().unwrap_or_default();
        assert!(last.starts_with("event=preview "), "{text}");
        (lines, last)
    }
}

/// Asserts a preview line's contact and campaign data; its attempt id.
fn check_preview(line: &str, number: &str, name: &str, plan: &str) -> String {
    assert_eq!(
        line_field(line, "campaign").as_deref(),
        Some("pv"),
        "{line}"
    );
    assert_eq!(
        line_field(line, "number").as_deref(),
        Some(number),
        "{line}"
    );
    assert_eq!(line_field(line, "name").as_deref(), Some(name), "{line}");
    assert_eq!(
        line_field(line, "col.plan").as_deref(),
        Some(plan),
        "{line}"
    );
    assert_eq!(
        line_field(line, "script").as_deref(),
        Some(SCRIPT),
        "{line}"
    );
    assert_eq!(
        line_field(line, "deadline_s").as_deref(),
        Some("2"),
        "{line}"
    );
    line_field(line, "attempt").expect("attempt")
}

fn decide(server: &Server, decision: &str, attempt: &str) -> (bool, String, String) {
    run(
        server,
        &["agent", "--token", TOKEN, "preview", decision, attempt],
    )
}

#[test]
fn a_preview_agent_sees_each_contact_skips_accepts_and_lets_one_time_out() {
    require_isolated_network();
    let ports = Ports::block(20);
    let (contact_port, phone_port) = (ports.peer(1), ports.peer(2));
    let server = Server::start(config(ports));
    let csv = server.dir().join("pv.csv");
    std::fs::write(
        &csv,
        "phone,name,plan\n601000001,Anna,gold\n601000002,Bartek,silver\n601000003,Celina,bronze\n",
    )
    .unwrap();
    let loaded = campaign(&server, &["load", "pv", csv.to_str().unwrap()]);
    assert!(loaded.contains("added: 3"), "{loaded}");

    // Alice's phone registers, then answers the bridged call on the same port; the
    // contacts' trunk is one SIPp UAS that answers one call and talks 6 s.
    register_phone(&server, phone_port, "1001", "pw-1001");
    let phone = Sipp::new(&server, "bridge_uas_answer.xml")
        .local_port(phone_port)
        .pcaps()
        .timeout(Duration::from_secs(60));
    let contact = Sipp::new(&server, "dial_contact_talk.xml")
        .local_port(contact_port)
        .pcaps()
        .timeout(Duration::from_secs(60));
    let phone_run = std::thread::spawn(move || phone.run());
    let contact_run = std::thread::spawn(move || contact.run());
    std::thread::sleep(Duration::from_millis(500));

    assert_eq!(campaign(&server, &["start", "pv"]).trim(), "state: running");
    let watch = Watch::start(&server, 20);
    login_ready(&server, TOKEN);

    // 1. Anna is shown, not dialed; alice skips her.
    let (_, line) = watch.preview(&server);
    let anna = check_preview(&line, "+48601000001", "Anna", "gold");
    std::thread::sleep(Duration::from_millis(300));
    let s = campaign(&server, &["status", "pv"]);
    assert_eq!(
        status_number(&s, "dialed"),
        0,
        "preview never dials first\n{s}"
    );
    // Only the offer's own agent decides: the supervisor has no agent.
    let (ok, _, err) = run(
        &server,
        &[
            "agent",
            "--token",
            SUPERVISOR_TOKEN,
            "preview",
            "skip",
            &anna,
        ],
    );
    assert!(!ok && err.contains("PERMISSION_DENIED"), "{err}");
    let watch = Watch::start(&server, 20);
    let (ok, out, err) = decide(&server, "skip", &anna);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("preview=skipped attempt={anna}"));
    let (ok, _, err) = decide(&server, "accept", &anna);
    assert!(!ok && err.contains("NOT_FOUND"), "decided already: {err}");

    // 2. Bartek is shown; alice accepts: he is dialed and bridged to her phone.
    let (_, line) = watch.preview(&server);
    let bartek = check_preview(&line, "+48601000002", "Bartek", "silver");
    // The third offer comes once the call is over (alice is held until then).
    let watch = Watch::start(&server, 40);
    let (ok, out, err) = decide(&server, "accept", &bartek);
    assert!(ok, "{err}\n{}", server.log_tail(30));
    assert_eq!(out.trim(), format!("preview=accepted attempt={bartek}"));
    let (lines, line) = watch.preview(&server);
    assert!(
        lines.iter().any(|l| l.starts_with("event=connected ")),
        "alice was connected to Bartek: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("event=ended ")),
        "{lines:?}"
    );
    let contact = contact_run.join().expect("contact thread");
    let phone = phone_run.join().expect("phone thread");
    let ctx = format!(
        "--- contact ---\n{contact}\n--- phone ---\n{phone}\n--- server log ---\n{}",
        server.log_tail(60)
    );
    assert!(contact.all_succeeded(1), "the contact talked\n{ctx}");
    assert!(phone.all_succeeded(1), "alice's phone was bridged\n{ctx}");

    // 3. Celina is shown and left alone: after 2 s the offer is skipped, alice is
    // released, Celina is not dialed, a late accept is refused.
    let celina = check_preview(&line, "+48601000003", "Celina", "bronze");
    let shown = Instant::now();
    let deadline = shown + Duration::from_secs(10);
    while !server
        .log_tail(200)
        .contains("preview offer timed out: skipped, agent released")
    {
        assert!(
            Instant::now() < deadline,
            "no timeout\n{}",
            server.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        shown.elapsed() >= Duration::from_millis(1500),
        "timed out after {:?}, before the 2 s deadline",
        shown.elapsed()
    );
    let (ok, _, err) = decide(&server, "accept", &celina);
    assert!(!ok && err.contains("NOT_FOUND"), "timed out: {err}");
    std::thread::sleep(Duration::from_millis(500));
    let s = campaign(&server, &["status", "pv"]);
    assert_eq!(
        status_number(&s, "dialed"),
        1,
        "only Bartek was dialed\n{s}"
    );
    assert_eq!(status_number(&s, "human"), 1, "{s}");
    assert_eq!(
        status_number(&s, "contacts_left"),
        2,
        "Anna and Celina wait\n{s}"
    );
    let status = agent(&server, TOKEN, &["status"]);
    assert!(status.contains("state=ready"), "{status}");

    // The contacts' side saw one INVITE, for Bartek.
    let dir = run_dir(&server, "dial_contact_talk.xml", contact_port);
    let invited: std::collections::BTreeSet<String> = sipp_messages(&dir)
        .into_iter()
        .filter(|m| m.received && m.is_request("INVITE"))
        .filter_map(|m| {
            let user = m.start.split("sip:").nth(1)?.split('@').next()?.to_owned();
            Some(user)
        })
        .collect();
    assert_eq!(
        invited.into_iter().collect::<Vec<_>>(),
        ["+48601000002"],
        "{ctx}"
    );
}
