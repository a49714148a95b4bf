//! Voicemail seen from the outside: a caller leaves a message of known audio (SIPp pcap),
//! the stored WAV has the expected length and samples (fetched over gRPC by the Python
//! `grpcio` client `tests/python/vm_client.py`, not the server's code), a subscribed
//! SIPp endpoint gets the message-summary NOTIFY, a second call logs in with the PIN and
//! deletes it, three wrong PINs end the call, and a recording survives `kill -9`.
//!
//! Each test runs its own server with mailbox 200 (PIN 1234, a short recorded greeting)
//! and a flow per number: 300 leaves a message in 200, 301 is voicemail retrieval that
//! asks for the mailbox, 302 is retrieval of mailbox 200 (PIN only).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use caruso_e2e::audio::*;
use caruso_e2e::json::Json;
use caruso_e2e::*;

/// Length of the mailbox's greeting (a marker burst, so the deposit starts quickly).
const GREETING_SECS: f32 = 0.5;

/// Config for the voicemail tests; `prompt_dir` holds the prompts and the greeting.
fn vm_toml(prompt_dir: &Path) -> String {
    let dir = prompt_dir.display();
    format!(
        r#"
[ivr]
prompt_dir = "{dir}"

[[numbers]]
number = "300"
flow = "deposit"

[[numbers]]
number = "301"
flow = "retrieve"

[[numbers]]
number = "302"
flow = "retrieve200"

[flows.deposit]
start = "mb"
[flows.deposit.nodes.mb]
type = "mailbox"
mailbox = "200"

[flows.retrieve]
start = "vm"
[flows.retrieve.nodes.vm]
type = "voicemail"

[flows.retrieve200]
start = "vm"
[flows.retrieve200.nodes.vm]
type = "voicemail"
mailbox = "200"

[voicemail]
[[voicemail.mailboxes]]
number = "200"
owner = "Alice Example"
pin = "1234"
greeting_unavailable = "{dir}/e2e-greeting.wav"
max_message_s = 60
min_message_s = 1
silence_s = 5
"#
    )
}

/// A server for the voicemail tests and the prompt directory it uses.
fn vm_server(ports: Ports) -> (Server, TempDir) {
    let greeting = marker_audio(42, GREETING_SECS);
    let prompts = prompt_dir_with(&[("e2e-greeting", &greeting)]);
    let mut cfg = ServerConfig::new(ports);
    cfg.extra = vm_toml(prompts.path());
    (Server::start(cfg), prompts)
}

/// The known audio of `vm_known_3s.pcap` as the server receives it (µ-law decoded):
/// 40 ms of silence, then 3.00 s of the sweep / two-tone pattern.
fn known_audio() -> Vec<i16> {
    pcap_pcmu_samples(&test_pcap("vm_known_3s.pcap"))
}

/// Lists mailbox 200 (optionally one folder) over gRPC.
fn list(server: &Server, folder: Option<&str>) -> Vec<Json> {
    let mut args = vec!["list", "200"];
    args.extend(folder);
    let v = vm_client(server, &args).unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(40)));
    v["messages"]
        .as_array()
        .map(<[Json]>::to_vec)
        .unwrap_or_default()
}

/// Waits until mailbox 200 holds `n` messages (deadline `limit`); returns them.
fn wait_messages(server: &Server, n: usize, limit: Duration) -> Vec<Json> {
    let deadline = Instant::now() + limit;
    loop {
        let msgs = list(server, None);
        if msgs.len() == n || Instant::now() >= deadline {
            return msgs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fetches a message's WAV over gRPC (streamed) into `dir` and parses it.
fn fetch(server: &Server, id: &str, dir: &Path) -> Wav {
    let out = dir.join(format!("{id}.wav"));
    let out_s = out.display().to_string();
    let v = vm_client(server, &["fetch", id, &out_s]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        v["bytes"].as_f64().unwrap_or(0.0) > 44.0,
        "fetch returned {v:?}"
    );
    read_wav(&out)
}

/// Runs the deposit scenario on number 300; returns SIPp's result.
fn deposit(server: &Server) -> SippResult {
    Sipp::new(server, "vm_deposit.xml")
        .pcaps()
        .key("dial", "300")
        .timeout(Duration::from_secs(40))
        .run()
}

/// Checks a stored message against the known audio: 8 kHz mono 16-bit, 3.02 s ± 0.1 s
/// (the 20 ms of silence the server keeps of the lead-in, the 3.00 s of known audio; the
/// first packet of a new stream is RFC 3550 probation), and every known sample present,
/// in order, exactly as µ-law decoding gives it.
fn assert_known_message(wav: &Wav, what: &str) {
    assert_eq!(
        (wav.rate, wav.channels, wav.bits),
        (8000, 1, 16),
        "{what}: 8 kHz mono 16-bit PCM"
    );
    let known = known_audio();
    let expected = (known.len() - 160) as f64 / 8000.0;
    assert!(
        (wav.secs() - expected).abs() <= 0.1,
        "{what}: stored {:.3} s, expected {expected:.3} s ± 0.1 s",
        wav.secs()
    );
    // The known part (after the 40 ms lead-in) must be in the file, sample for sample.
    let body = &known[320..];
    let at = align(&wav.samples, body, 0);
    assert!(
        at.is_some(),
        "{what}: the 3.00 s of known audio is not in the stored message ({} samples)",
        wav.samples.len()
    );
    let at = at.unwrap_or(0);
    assert!(
        at <= 800,
        "{what}: the known audio starts {at} samples in (expected within 100 ms)"
    );
}

#[test]
fn leave_a_message_notify_then_retrieve_and_delete_it() {
    let ports = Ports::block(60);
    let (server, _prompts) = vm_server(ports);
    let work = TempDir::new("vm-fetch");

    // A message-summary subscriber for mailbox 200, on its own SIPp ports.
    let mwi = Sipp::new(&server, "vm_mwi_subscribe.xml")
        .local_port(ports.peer(8))
        .key("dial", "200")
        .timeout(Duration::from_secs(45));
    let mwi = std::thread::spawn(move || mwi.run());
    std::thread::sleep(Duration::from_millis(1000));

    // 1. Deposit: greeting, beep, 3.00 s of known audio, #, then 1 = send.
    let res = deposit(&server);
    assert!(
        res.all_succeeded(1),
        "deposit call: {res}\n{}",
        server.log_tail(40)
    );
    let msgs = wait_messages(&server, 1, Duration::from_secs(5));
    assert_eq!(msgs.len(), 1, "one message in mailbox 200: {msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["folder"].as_str(), Some("new"), "{m:?}");
    assert_eq!(m["mailbox"].as_str(), Some("200"), "{m:?}");
    assert_eq!(
        m["caller_number"].as_str(),
        Some("sipp"),
        "the caller is From's user part: {m:?}"
    );
    let dur_ms = m["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (dur_ms - 3020.0).abs() <= 100.0,
        "metadata duration {dur_ms} ms, expected 3020 ± 100"
    );
    let id = m["id"].as_str().expect("message id").to_owned();
    let wav = fetch(&server, &id, work.path());
    assert_known_message(&wav, "deposited message");
    let counts = vm_client(&server, &["counts", "200"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (counts["new"].as_f64(), counts["saved"].as_f64()),
        (Some(1.0), Some(0.0)),
        "{counts:?}"
    );

    // 2. The subscriber got "no" first, then "yes" with 1 new / 0 old.
    let mwi = mwi.join().expect("mwi thread");
    assert!(
        mwi.all_succeeded(1),
        "message-summary NOTIFY (Messages-Waiting: yes, Voice-Message: 1/0)\n{mwi}"
    );

    // 3. Retrieval by phone: mailbox, PIN, 1 (new messages), 7 (delete).
    let sipp = Sipp::new(&server, "vm_retrieval.xml")
        .pcaps()
        .key("dial", "301")
        .timeout(Duration::from_secs(40));
    let capture = RtpCapture::udp_to(sipp.media_port());
    let res = sipp.run();
    let heard = pcmu_stream(&capture.finish());
    assert!(res.all_succeeded(1), "retrieval call: {res}");
    // The message played: its first second is in what the caller heard.
    let first_second = &known_audio()[320..8320];
    assert!(
        !find_all(&heard, first_second).is_empty(),
        "the caller must hear the message's audio ({} bytes of RTP)",
        heard.len()
    );
    let left = wait_messages(&server, 0, Duration::from_secs(5));
    assert!(left.is_empty(), "7 deleted the message: {left:?}");
    let counts = vm_client(&server, &["counts", "200"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (counts["new"].as_f64(), counts["saved"].as_f64()),
        (Some(0.0), Some(0.0)),
        "{counts:?}"
    );
}

#[test]
fn grpc_marks_and_deletes_a_message() {
    let (server, _prompts) = vm_server(Ports::block(60));
    let res = deposit(&server);
    assert!(res.all_succeeded(1), "deposit call: {res}");
    let msgs = wait_messages(&server, 1, Duration::from_secs(5));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let id = msgs[0]["id"].as_str().expect("id").to_owned();
    // Voicemail takes an integrator or admin token: a supervisor's is refused and
    // nothing changes.
    let err = vm_client(
        &server,
        &["--token", SUPERVISOR_TOKEN, "mark", &id, "saved"],
    )
    .expect_err("a supervisor may not file messages");
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    assert_eq!(list(&server, Some("new")).len(), 1, "still new");
    let m = vm_client(&server, &["--token", ADMIN_TOKEN, "mark", &id, "saved"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m["folder"].as_str(), Some("saved"), "{m:?}");
    let m = vm_client(&server, &["mark", &id, "saved"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m["folder"].as_str(), Some("saved"), "{m:?}");
    assert!(list(&server, Some("new")).is_empty(), "no new message left");
    assert_eq!(list(&server, Some("saved")).len(), 1, "one saved message");
    vm_client(&server, &["delete", &id]).unwrap_or_else(|e| panic!("{e}"));
    assert!(list(&server, None).is_empty(), "deleted");
    // A deleted message cannot be fetched: NOT_FOUND, exit status 1.
    let err = vm_client(&server, &["fetch", &id, "/dev/null"]).expect_err("fetch after delete");
    assert!(err.contains("NOT_FOUND"), "{err}");
}

#[test]
fn three_wrong_pins_end_the_call() {
    let (server, _prompts) = vm_server(Ports::block(60));
    let started = Instant::now();
    let res = Sipp::new(&server, "vm_login_fail.xml")
        .pcaps()
        .key("dial", "302")
        .timeout(Duration::from_secs(45))
        .run();
    assert!(
        res.all_succeeded(1),
        "the server hangs up after the third wrong PIN\n{res}"
    );
    // The third PIN is sent 11.5 s after the ACK; the BYE comes after it, not before.
    assert!(
        started.elapsed() >= Duration::from_secs(12),
        "BYE before the third PIN: {:?}",
        started.elapsed()
    );
    let msgs = list(&server, None);
    assert!(msgs.is_empty(), "nothing stored: {msgs:?}");
}

#[test]
fn recording_survives_kill_9() {
    let ports = Ports::block(60);
    let (mut server, _prompts) = vm_server(ports);
    let work = TempDir::new("vm-crash");
    let sipp = Sipp::new(&server, "vm_crash.xml")
        .pcaps()
        .key("dial", "300")
        .timeout(Duration::from_secs(30));
    // What SIPp sends from its media port: the 12 s of known audio.
    let sent = RtpCapture::udp_from(sipp.media_port());
    let call = std::thread::spawn(move || sipp.run());

    // Wait until 3 s of audio have gone to the server, then kill it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let audio: Vec<RtpPacket> = sent.packets().into_iter().filter(|p| p.pt == 0).collect();
        if let (Some(a), Some(b)) = (audio.first(), audio.last()) {
            if b.time - a.time >= 3.0 {
                break a.time;
            }
        }
        assert!(Instant::now() < deadline, "SIPp never sent its audio");
        std::thread::sleep(Duration::from_millis(50));
    };
    server.kill9();
    let killed_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let sent_secs = killed_at - first;
    eprintln!("audio sent for {sent_secs:.2} s before kill -9");

    // Restart on the same data directory: the partial recording is a message.
    server.restart();
    let msgs = wait_messages(&server, 1, Duration::from_secs(10));
    assert_eq!(
        msgs.len(),
        1,
        "the partial recording must be recovered as a message: {msgs:?}\n{}",
        server.log_tail(40)
    );
    let m = &msgs[0];
    assert_eq!(m["recovered"].as_bool(), Some(true), "{m:?}");
    let id = m["id"].as_str().expect("id").to_owned();
    let wav = fetch(&server, &id, work.path());
    assert!(
        wav.secs() >= sent_secs - 1.0,
        "kept {:.2} s of audio; {sent_secs:.2} s were sent before the kill, so at least \
         {:.2} s must survive",
        wav.secs(),
        sent_secs - 1.0
    );
    assert!(
        wav.secs() <= sent_secs + 0.5,
        "kept {:.2} s, more than was sent ({sent_secs:.2} s)",
        wav.secs()
    );
    // What survived is the known audio, sample for sample (its first second).
    let long = pcap_pcmu_samples(&test_pcap("vm_long_12s.pcap"));
    let first_second = &long[320..8320];
    assert!(
        align(&wav.samples, first_second, 0).is_some(),
        "the recovered audio is not the audio sent"
    );
    let _ = sent.finish();
    let _ = call.join();
}
