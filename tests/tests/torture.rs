//! RFC 4475 and RFC 5118 torture messages, sent byte for byte over UDP and over TCP.
//!
//! The server must survive every one, answer each as its RFC section says (the table
//! below, one row per file, with the section it comes from), drop the malformed or stray
//! responses, and then still serve a normal call.
//!
//! UDP answers go to the top Via's sent-by port on 127.0.0.1 (RFC 3261 §18.2.2: the
//! `received` address, the sent-by port or 5060), so the test binds every such port.
//! Valid requests for users the server does not know get 404; REGISTER (no registrar in
//! this issue) gets 405 or 501.

use std::collections::BTreeSet;
use std::fs;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use caruso_e2e::*;

/// What the server must do with one message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A final response with one of these codes.
    Codes(&'static [u16]),
    /// No answer at all (responses, and UDP datagrams the RFC says to discard).
    Nothing,
    /// One of these codes, or nothing (e.g. an unrecoverable TCP framing error on which
    /// the server may just close the connection).
    CodesOrNothing(&'static [u16]),
}

use Expect::*;

const REGISTER: &[u16] = &[405, 501];
const INVITE_UNKNOWN_USER: &[u16] = &[404, 480, 484, 604];
const OPTIONS_OK: &[u16] = &[200, 404];

/// One row: file, expectation over UDP, expectation over TCP, RFC section.
struct Row {
    file: &'static str,
    udp: Expect,
    tcp: Expect,
    rfc: &'static str,
}

const fn row(file: &'static str, both: Expect, rfc: &'static str) -> Row {
    Row {
        file,
        udp: both,
        tcp: both,
        rfc,
    }
}

fn table() -> Vec<Row> {
    vec![
        // 3.1.1 valid messages: parsed and answered normally.
        // Its To carries a tag: an in-dialog request for a dialog that does not exist
        // (RFC 3261 §12.2.2).
        row("rfc4475/wsinv.dat", Codes(&[481]), "4475 3.1.1.1 valid"),
        row(
            "rfc4475/intmeth.dat",
            Codes(&[501]),
            "4475 3.1.1.2 unknown method",
        ),
        row(
            "rfc4475/esc01.dat",
            Codes(INVITE_UNKNOWN_USER),
            "4475 3.1.1.3 valid",
        ),
        row(
            "rfc4475/escnull.dat",
            Codes(REGISTER),
            "4475 3.1.1.4 valid REGISTER",
        ),
        row(
            "rfc4475/esc02.dat",
            Codes(&[501]),
            "4475 3.1.1.5 unknown method",
        ),
        row(
            "rfc4475/lwsdisp.dat",
            Codes(OPTIONS_OK),
            "4475 3.1.1.6 valid",
        ),
        row(
            "rfc4475/longreq.dat",
            Codes(INVITE_UNKNOWN_USER),
            "4475 3.1.1.7 valid",
        ),
        // Over UDP the INVITE after the REGISTER in the datagram is discarded (checked
        // separately); over TCP it is a second message.
        row("rfc4475/dblreq.dat", Codes(REGISTER), "4475 3.1.1.8"),
        row(
            "rfc4475/semiuri.dat",
            Codes(OPTIONS_OK),
            "4475 3.1.1.9 valid",
        ),
        row(
            "rfc4475/transports.dat",
            Codes(OPTIONS_OK),
            "4475 3.1.1.10 valid",
        ),
        row(
            "rfc4475/mpart01.dat",
            Codes(&[405, 501, 404, 415]),
            "4475 3.1.1.11 valid",
        ),
        row("rfc4475/unreason.dat", Nothing, "4475 3.1.1.12 response"),
        row("rfc4475/noreason.dat", Nothing, "4475 3.1.1.13 response"),
        // 3.1.2 invalid messages.
        row("rfc4475/badinv01.dat", Codes(&[400]), "4475 3.1.2.1"),
        Row {
            file: "rfc4475/clerr.dat",
            udp: Codes(&[400]),
            // Over TCP the server waits for the rest of the body.
            tcp: CodesOrNothing(&[400]),
            rfc: "4475 3.1.2.2",
        },
        Row {
            file: "rfc4475/ncl.dat",
            udp: Codes(&[400]),
            tcp: CodesOrNothing(&[400]),
            rfc: "4475 3.1.2.3",
        },
        row("rfc4475/scalar02.dat", Codes(&[400]), "4475 3.1.2.4"),
        row("rfc4475/scalarlg.dat", Nothing, "4475 3.1.2.5 response"),
        row("rfc4475/quotbal.dat", Codes(&[400]), "4475 3.1.2.6"),
        row("rfc4475/ltgtruri.dat", Codes(&[400]), "4475 3.1.2.7"),
        row("rfc4475/lwsruri.dat", Codes(&[400]), "4475 3.1.2.8"),
        row("rfc4475/lwsstart.dat", Codes(&[400]), "4475 3.1.2.9"),
        row("rfc4475/trws.dat", Codes(&[400]), "4475 3.1.2.10"),
        row(
            "rfc4475/escruri.dat",
            Codes(&[400, 404]),
            "4475 3.1.2.11 (400 SHOULD)",
        ),
        row(
            "rfc4475/baddate.dat",
            Codes(&[400, 404]),
            "4475 3.1.2.12 (may ignore Date)",
        ),
        row(
            "rfc4475/regbadct.dat",
            Codes(&[400, 405, 501]),
            "4475 3.1.2.13",
        ),
        row(
            "rfc4475/badaspec.dat",
            Codes(&[400, 200, 404]),
            "4475 3.1.2.14 (400 reasonable)",
        ),
        row(
            "rfc4475/baddn.dat",
            Codes(&[400, 200, 404]),
            "4475 3.1.2.15 (400 reasonable)",
        ),
        row("rfc4475/badvers.dat", Codes(&[505]), "4475 3.1.2.16"),
        row("rfc4475/mismatch01.dat", Codes(&[400]), "4475 3.1.2.17"),
        row(
            "rfc4475/mismatch02.dat",
            Codes(&[501, 400]),
            "4475 3.1.2.18",
        ),
        row("rfc4475/bigcode.dat", Nothing, "4475 3.1.2.19 response"),
        // 3.2 transaction layer.
        row(
            "rfc4475/badbranch.dat",
            Codes(&[200, 404, 400]),
            "4475 3.2.1 (2543 transaction)",
        ),
        // 3.3 application layer.
        row("rfc4475/insuf.dat", Codes(&[400]), "4475 3.3.1"),
        row("rfc4475/unkscm.dat", Codes(&[416]), "4475 3.3.2"),
        row("rfc4475/novelsc.dat", Codes(&[416, 404]), "4475 3.3.3"),
        row(
            "rfc4475/unksm2.dat",
            Codes(&[400, 416, 405, 501]),
            "4475 3.3.4",
        ),
        row("rfc4475/bext01.dat", Codes(&[420]), "4475 3.3.5"),
        row("rfc4475/invut.dat", Codes(&[415, 404]), "4475 3.3.6"),
        row(
            "rfc4475/regaut01.dat",
            Codes(&[401, 405, 501]),
            "4475 3.3.7",
        ),
        row("rfc4475/multi01.dat", Codes(&[400]), "4475 3.3.8"),
        Row {
            file: "rfc4475/mcl01.dat",
            udp: Codes(&[400]),
            tcp: CodesOrNothing(&[400]),
            rfc: "4475 3.3.9",
        },
        row("rfc4475/bcast.dat", Nothing, "4475 3.3.10 response"),
        row(
            "rfc4475/zeromf.dat",
            Codes(&[200, 483]),
            "4475 3.3.11 (UAS may process)",
        ),
        row("rfc4475/cparam01.dat", Codes(REGISTER), "4475 3.3.12"),
        row("rfc4475/cparam02.dat", Codes(REGISTER), "4475 3.3.13"),
        row("rfc4475/regescrt.dat", Codes(REGISTER), "4475 3.3.14"),
        row(
            "rfc4475/sdp01.dat",
            Codes(&[406, 415, 404, 488]),
            "4475 3.3.15",
        ),
        // 3.4 backward compatibility.
        Row {
            file: "rfc4475/inv2543.dat",
            udp: Codes(INVITE_UNKNOWN_USER),
            // It has no Content-Length, which a stream transport requires (RFC 3261 §20.14).
            tcp: Codes(&[400, 404, 480, 484, 604]),
            rfc: "4475 3.4.1 (RFC 2543)",
        },
        // RFC 5118 (IPv6 in SIP), carried over IPv4 loopback.
        row(
            "rfc5118/ipv6-good",
            Codes(REGISTER),
            "5118 valid IPv6 REGISTER",
        ),
        row(
            "rfc5118/ipv6-bad",
            Codes(&[400]),
            "5118 IPv6 R-URI without []",
        ),
        row("rfc5118/port-ambiguous", Codes(REGISTER), "5118 port in []"),
        row(
            "rfc5118/port-unambiguous",
            Codes(REGISTER),
            "5118 port after []",
        ),
        row(
            "rfc5118/via-received-param-with-delim",
            Codes(&[481, 400]),
            "5118 received=[v6] (BYE, no dialog)",
        ),
        row(
            "rfc5118/via-received-param-no-delim",
            Codes(&[200, 404, 400]),
            "5118 received=v6",
        ),
        row(
            "rfc5118/mult-ip-in-header",
            Codes(&[481]),
            "5118 BYE, no dialog",
        ),
        row(
            "rfc5118/ipv4-mapped-ipv6",
            Codes(INVITE_UNKNOWN_USER),
            "5118 v4-mapped",
        ),
        row(
            "rfc5118/ipv6-in-sdp",
            Codes(&[404, 488]),
            "5118 IPv6 in SDP",
        ),
        row(
            "rfc5118/mult-ip-in-sdp",
            Codes(&[404, 488]),
            "5118 v4+v6 in SDP",
        ),
        row(
            "rfc5118/ipv6-correct-abnf-2-colons",
            Codes(&[200, 404]),
            "5118 ABNF 2 colons",
        ),
        row(
            "rfc5118/ipv6-bug-abnf-3-colons",
            Codes(&[200, 404, 400]),
            "5118 ABNF bug 3 colons",
        ),
    ]
}

/// Value of the first header among `names` (long and compact forms), case-insensitive,
/// in the head of `msg`, with folded lines (RFC 3261 §7.3.1) joined.
fn header_any(msg: &str, names: &[&str]) -> Option<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    let mut lines: Vec<String> = Vec::new();
    for l in head.split("\r\n").skip(1) {
        match lines.last_mut() {
            Some(prev) if l.starts_with([' ', '\t']) => {
                prev.push(' ');
                prev.push_str(l.trim());
            }
            _ => lines.push(l.to_owned()),
        }
    }
    lines.into_iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        names
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x))
            .then(|| v.trim().to_owned())
    })
}

/// What identifies a request's transaction and its answers.
#[derive(Debug, Default)]
struct Ident {
    call_id: Option<String>,
    /// CSeq with whitespace collapsed (`8 INVITE`).
    cseq: Option<String>,
    /// CSeq method.
    method: Option<String>,
    /// Top Via branch.
    branch: Option<String>,
    /// Top Via sent-by, lower case, no whitespace.
    sent_by: Option<String>,
}

impl Ident {
    fn of(msg: &str) -> Ident {
        // `0009 INVITE` and `9 INVITE` are the same CSeq.
        let cseq = header_any(msg, &["CSeq"]).map(|c| {
            let mut parts = c.split_whitespace();
            let num = parts.next().unwrap_or("");
            let num = num.parse::<u64>().map_or(num.to_owned(), |n| n.to_string());
            format!("{num} {}", parts.next().unwrap_or("").to_ascii_uppercase())
        });
        let method = cseq
            .as_deref()
            .and_then(|c| c.split(' ').nth(1))
            .map(str::to_owned);
        let via = header_any(msg, &["Via", "v"]).unwrap_or_default();
        let first_via = via.split(',').next().unwrap_or("");
        let mut params = first_via.split(';');
        // `SIP / 2.0 / UDP host:port` (LWS allowed around the slashes and the colon).
        let sent_by = params
            .next()
            .unwrap_or("")
            .splitn(3, '/')
            .nth(2)
            .map(|t| {
                t.split_whitespace()
                    .skip(1)
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            .filter(|h| !h.is_empty());
        let branch = params
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("branch")
                    .then(|| v.trim().to_owned())
            })
            .next();
        Ident {
            call_id: header_any(msg, &["Call-ID", "i"]),
            cseq,
            method,
            branch,
            sent_by,
        }
    }

    /// Whether `resp` answers the request this identifies: same Call-ID and CSeq, or
    /// (for a request the server takes as a retransmission, RFC 3261 §17.2.3) same top
    /// Via branch and sent-by and same CSeq method.
    fn answered_by(&self, resp: &Ident) -> bool {
        let by_dialog =
            self.call_id.is_some() && self.call_id == resp.call_id && self.cseq == resp.cseq;
        let by_txn = self.branch.is_some()
            && self.branch == resp.branch
            && self.sent_by == resp.sent_by
            && self.method == resp.method;
        by_dialog || by_txn
    }
}

/// The ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3), so that the
/// server stops retransmitting it.
fn ack_for(request: &str, resp: &str) -> Option<String> {
    let ruri = request.split("\r\n").next()?.split(' ').nth(1)?;
    let via_all = header_any(request, &["Via", "v"])?;
    let via = via_all.split(',').next()?;
    let cseq = header_any(resp, &["CSeq"])?;
    let num = cseq.split_whitespace().next()?;
    Some(format!(
        "ACK {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: {num} ACK\r\nContent-Length: 0\r\n\r\n",
        header_any(resp, &["From", "f"])?,
        header_any(resp, &["To", "t"])?,
        header_any(resp, &["Call-ID", "i"])?,
    ))
}

/// Sent-by port of the top Via (5060 when absent).
fn top_via_port(msg: &str) -> u16 {
    let Some(via) = header_any(msg, &["Via", "v"]) else {
        return 5060;
    };
    let sent_by = via
        .split(['/'])
        .nth(2)
        .and_then(|t| t.split_whitespace().nth(1))
        .unwrap_or("");
    let sent_by = sent_by.split([';', ',']).next().unwrap_or("");
    let default = if via.to_ascii_uppercase().contains("TLS") {
        5061
    } else {
        5060
    };
    if sent_by.ends_with(']') {
        return default;
    }
    sent_by
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(default)
}

fn is_request(msg: &str) -> bool {
    !msg.starts_with("SIP/")
}

fn load(file: &str) -> (Vec<u8>, String) {
    let path = torture_dir().join(file);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (bytes, text)
}

fn check(
    file: &str,
    rfc: &str,
    expect: Expect,
    finals: &[String],
    failures: &mut Vec<String>,
) -> Option<u16> {
    let got = finals.first().and_then(|r| status_code(r));
    let ok = match (expect, got) {
        (Codes(c), Some(g)) => c.contains(&g),
        (Codes(_), None) => false,
        (Nothing, None) => true,
        (Nothing, Some(_)) => false,
        (CodesOrNothing(c), Some(g)) => c.contains(&g),
        (CodesOrNothing(_), None) => true,
    };
    if !ok {
        let first_line = finals
            .first()
            .and_then(|r| r.lines().next())
            .unwrap_or("(no answer)");
        failures.push(format!(
            "{file} [{rfc}]: expected {expect:?}, got {first_line:?}"
        ));
    }
    if let (Some(420), Some(resp)) = (got, finals.first()) {
        let unsupported = header(resp, "Unsupported").unwrap_or("");
        if !unsupported.contains("nothingSupportsThis")
            || !unsupported.contains("nothingSupportsThisEither")
        {
            failures.push(format!(
                "{file} [{rfc}]: 420 must list both Require options in Unsupported, got {unsupported:?}"
            ));
        }
    }
    got
}

fn normal_call_after(server: &Server, transport: Transport) {
    let res = Sipp::new(server, "uac_load.xml")
        .transport(transport)
        .calls(2)
        .rate(2)
        .timeout(Duration::from_secs(20))
        .run();
    assert!(
        res.all_succeeded(2),
        "a normal call after the torture messages\n{res}"
    );
}

#[test]
fn torture_rfc4475_rfc5118_udp() {
    let ports = Ports::block(60);
    let mut server = Server::start(ServerConfig::new(ports).number("100", 3.0, 0));
    let rows = table();

    // Bind every port the answers can go to; send from 5060.
    let mut reply_ports = BTreeSet::from([5060u16]);
    for r in &rows {
        let (_, text) = load(r.file);
        if is_request(&text) {
            reply_ports.insert(top_via_port(&text));
        }
    }
    let socks: Vec<(u16, UdpSocket)> = reply_ports
        .iter()
        .map(|&p| {
            let s = UdpSocket::bind((LOOPBACK, p))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{p} for torture answers: {e}"));
            s.set_nonblocking(true).expect("nonblocking");
            (p, s)
        })
        .collect();
    let sender = &socks.iter().find(|(p, _)| *p == 5060).expect("5060").1;

    let mut failures = Vec::new();
    let mut report = Vec::new();
    let mut buf = vec![0u8; 65_535];
    for r in &rows {
        let (bytes, text) = load(r.file);
        sender.send_to(&bytes, server.sip_addr()).expect("send");
        let ident = Ident::of(&text);
        let mut finals: Vec<String> = Vec::new();
        let mut stray: Vec<String> = Vec::new();
        let start = Instant::now();
        let mut final_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let window = match (final_at, r.udp) {
                (Some(t), _) => now.duration_since(t) > Duration::from_millis(150),
                (None, Nothing) => now.duration_since(start) > Duration::from_millis(700),
                (None, _) => now.duration_since(start) > Duration::from_millis(2000),
            };
            if window {
                break;
            }
            let mut got_any = false;
            for (_, s) in &socks {
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    got_any = true;
                    let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mine = ident.answered_by(&Ident::of(&resp));
                    match status_code(&resp) {
                        Some(c) if c >= 200 && mine => {
                            if c >= 300 && ident.method.as_deref() == Some("INVITE") {
                                if let Some(ack) = ack_for(&text, &resp) {
                                    let _ = sender.send_to(ack.as_bytes(), server.sip_addr());
                                }
                            }
                            finals.push(resp);
                            final_at.get_or_insert(Instant::now());
                        }
                        Some(_) if mine => {}
                        _ => stray.push(resp),
                    }
                }
            }
            if !got_any {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if r.file.ends_with("dblreq.dat") {
            if let Some(inv) = finals
                .iter()
                .chain(stray.iter())
                .find(|m| header_any(m, &["CSeq"]).is_some_and(|c| c.ends_with("INVITE")))
            {
                failures.push(format!(
                    "rfc4475/dblreq.dat [4475 3.1.1.8]: the INVITE after the REGISTER in one \
                     UDP datagram must be discarded, got {:?}",
                    inv.lines().next()
                ));
            }
        }
        let got = check(r.file, r.rfc, r.udp, &finals, &mut failures);
        report.push(format!("{:<45} {:?}", r.file, got));
        assert!(
            server.is_alive(),
            "caruso died on {} over UDP\n{}",
            r.file,
            server.log_tail(40)
        );
    }
    eprintln!("UDP torture answers:\n{}", report.join("\n"));
    drop(socks);
    normal_call_after(&server, Transport::Udp);
    assert!(
        failures.is_empty(),
        "{} of {} torture messages mis-handled over UDP:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn torture_rfc4475_rfc5118_tcp() {
    let ports = Ports::block(60);
    let mut server = Server::start(ServerConfig::new(ports).number("100", 3.0, 0));
    let rows = table();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for r in &rows {
        let (bytes, text) = load(r.file);
        let ident = Ident::of(&text);
        let finals_needed = if r.file.ends_with("dblreq.dat") { 2 } else { 1 };
        let answers = tcp_exchange_until(
            server.sip_addr(),
            &bytes,
            Duration::from_millis(700),
            |got| {
                !matches!(r.tcp, Nothing | CodesOrNothing(_))
                    && got
                        .iter()
                        .filter(|a| status_code(a).is_some_and(|c| c >= 200))
                        .count()
                        >= finals_needed
            },
        )
        .unwrap_or_else(|e| panic!("TCP to caruso for {}: {e}", r.file));
        let finals: Vec<String> = answers
            .iter()
            .filter(|a| status_code(a).is_some_and(|c| c >= 200))
            .filter(|a| ident.answered_by(&Ident::of(a)))
            .cloned()
            .collect();
        if r.file.ends_with("dblreq.dat") {
            // Over TCP both messages are framed by Content-Length: two answers.
            let invite = answers.iter().find(|m| {
                header_any(m, &["CSeq"]).is_some_and(|c| c.ends_with("INVITE"))
                    && status_code(m).is_some_and(|c| c >= 200)
            });
            match invite.and_then(|m| status_code(m)) {
                Some(c) if INVITE_UNKNOWN_USER.contains(&c) => {}
                other => failures.push(format!(
                    "rfc4475/dblreq.dat [4475 3.1.1.8]: over TCP the second message (INVITE) \
                     must be answered like any INVITE, got {other:?}"
                )),
            }
        }
        let got = check(r.file, r.rfc, r.tcp, &finals, &mut failures);
        report.push(format!("{:<45} {:?}", r.file, got));
        assert!(
            server.is_alive(),
            "caruso died on {} over TCP\n{}",
            r.file,
            server.log_tail(40)
        );
    }
    eprintln!("TCP torture answers:\n{}", report.join("\n"));
    normal_call_after(&server, Transport::Tcp);
    assert!(
        failures.is_empty(),
        "{} of {} torture messages mis-handled over TCP:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn table_covers_the_whole_corpus() {
    let rows = table();
    let listed: BTreeSet<&str> = rows.iter().map(|r| r.file).collect();
    assert_eq!(listed.len(), rows.len(), "a file is listed twice");
    let dir = torture_dir();
    for sub in ["rfc4475", "rfc5118"] {
        for e in fs::read_dir(dir.join(sub)).expect("corpus dir") {
            let name = e.expect("entry").file_name();
            let name = format!("{sub}/{}", name.to_string_lossy());
            assert!(listed.contains(name.as_str()), "{name} has no expectation");
        }
    }
}

#[test]
fn helpers_find_keys_and_ports() {
    let (_, quotbal) = load("rfc4475/quotbal.dat");
    assert_eq!(top_via_port(&quotbal), 5050);
    let (_, mapped) = load("rfc5118/ipv4-mapped-ipv6");
    assert_eq!(top_via_port(&mapped), 19823);
    let (_, insuf) = load("rfc4475/insuf.dat");
    let id = Ident::of(&insuf);
    assert_eq!(id.branch.as_deref(), Some("z9hG4bKkdj.insuf"));
    assert_eq!(id.sent_by.as_deref(), Some("192.0.2.95"));
    assert_eq!(id.call_id, None);
    let (_, wsinv) = load("rfc4475/wsinv.dat");
    let id = Ident::of(&wsinv);
    assert_eq!(id.cseq.as_deref(), Some("9 INVITE"));
    assert_eq!(id.sent_by.as_deref(), Some("192.0.2.2"));
    assert_eq!(id.branch.as_deref(), Some("390skdjuw"));
    let (_, bext) = load("rfc4475/bext01.dat");
    assert_eq!(top_via_port(&bext), 5061);
    // A response with `received` added still matches its request by Via.
    let resp = "SIP/2.0 400 Bad\r\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf;received=127.0.0.1\r\nCSeq: 193942 INVITE\r\n\r\n";
    assert!(Ident::of(&insuf).answered_by(&Ident::of(resp)));
    let other = resp.replace("193942 INVITE", "1 OPTIONS");
    assert!(!Ident::of(&insuf).answered_by(&Ident::of(&other)));
}
