//! RFC 4475 and RFC 5118 torture messages through [`parse_datagram`].
//!
//! The table [`CASES`] holds every file of `shared/corpus/sip-torture/{rfc4475,rfc5118}`
//! with the parse-level outcome its RFC section asks for. What the layer above must then
//! do, for the integrator's end-to-end torture test (UDP and TCP alike):
//!
//! | file | RFC 4475 § | parse | the layer above answers |
//! |---|---|---|---|
//! | wsinv, intmeth, esc01, escnull, esc02, lwsdisp, longreq, semiuri, transports, mpart01 | 3.1.1 | Ok | normally (INVITE: 4xx/2xx from the call logic; OPTIONS: 200; REGISTER: registrar) |
//! | dblreq | 3.1.1.8 | Ok, first REGISTER only | normally; the trailing INVITE is ignored |
//! | unreason, noreason | 3.1.1.12-13 | Ok (response) | matched to its client transaction, or dropped as stray |
//! | badinv01, quotbal, ltgtruri, lwsruri, lwsstart, trws, escruri, regbadct, badaspec, baddn, mismatch01, mismatch02, scalar02, ncl | 3.1.2 | Err | `400 Bad Request` (reason = the `ParseError` text), via [`error_response`] |
//! | clerr | 3.1.2.2 | Err(ContentLength) | `400` over UDP; on TCP the stream waits for more bytes (no answer until the peer sends them or closes) |
//! | badvers | 3.1.2.15 | Err(Version) | `505 Version Not Supported` |
//! | scalarlg, bigcode | 3.1.2.4, 3.1.2.18 | Err | responses: dropped, no answer |
//! | baddate | 3.1.2.11 | Ok | normally: the Date header is ignored |
//! | badbranch | 3.2.1 | Ok | `400`, or match RFC 2543-style (branch is only the magic cookie) |
//! | insuf | 3.3.1 | Err(MissingHeader) | `400` |
//! | unkscm, novelsc | 3.3.2-3 | Ok | `416 Unsupported URI Scheme` |
//! | unksm2 | 3.3.4 | Ok | REGISTER with `isbn:` To, `http:` From, `name:` Contact: the registrar refuses it (`416`/`400`); the parser must accept it |
//! | bext01 | 3.3.5 | Ok | `420 Bad Extension` with `Unsupported: nothingSupportsThis, nothingSupportsThisEither` (a UAS ignores Proxy-Require) |
//! | invut | 3.3.6 | Ok | `415 Unsupported Media Type` with `Accept: application/sdp` |
//! | regaut01 | 3.3.7 | Ok | registrar: `401` challenge (unknown auth scheme) |
//! | multi01, mcl01 | 3.3.8-9 | Err | `400` |
//! | bcast | 3.3.10 | Ok (response) | dropped (broadcast sent-by) |
//! | zeromf | 3.3.11 | Ok | UAS: answered normally (a proxy would `483 Too Many Hops`) |
//! | cparam01, cparam02, regescrt | 3.3.12-14 | Ok | registrar: contact parameters / escaped header kept as sent |
//! | sdp01 | 3.3.15 | Ok | `406 Not Acceptable` (Accept excludes application/sdp) |
//! | inv2543 | 3.4.1 | Ok | normally, RFC 2543 transaction matching (no branch cookie) |
//! | rfc5118 ipv6-bad | RFC 5118 §4.3 | Err(BadUri) | `400` |
//! | every other rfc5118 file | RFC 5118 §4 | Ok | normally (ipv6-bug-abnf-3-colons: tolerated per §4.10) |

use super::*;

/// The parse-level outcome a file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Parses as a request.
    Req,
    /// Parses as a response.
    Resp,
    StartLine,
    Version,
    Missing(&'static str),
    BadHeader(&'static str),
    BadUri,
    ContentLength,
}

fn outcome(r: &Result<SipMessage, ParseError>) -> Expect {
    match r {
        Ok(SipMessage::Request(_)) => Expect::Req,
        Ok(SipMessage::Response(_)) => Expect::Resp,
        Err(ParseError::StartLine(_)) => Expect::StartLine,
        Err(ParseError::Version(_)) => Expect::Version,
        Err(ParseError::MissingHeader(h)) => Expect::Missing(h),
        Err(ParseError::BadHeader { name, .. }) => Expect::BadHeader(name),
        Err(ParseError::BadUri(_)) => Expect::BadUri,
        Err(ParseError::ContentLength { .. }) => Expect::ContentLength,
        Err(e) => panic!("unexpected error kind {e:?}"),
    }
}

macro_rules! corpus {
    ($dir:literal, $name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/sip-torture/",
            $dir,
            "/",
            $name
        ))
    };
}

macro_rules! cases {
    ($( $dir:literal / $name:literal => $expect:expr ),* $(,)?) => {
        &[ $( ($name, corpus!($dir, $name) as &[u8], $expect) ),* ]
    };
}

use Expect::*;

/// Every torture file with the outcome its RFC section demands.
const CASES: &[(&str, &[u8], Expect)] = cases![
    // RFC 4475 §3.1.1: valid messages.
    "rfc4475" / "wsinv.dat" => Req,
    "rfc4475" / "intmeth.dat" => Req,
    "rfc4475" / "esc01.dat" => Req,
    "rfc4475" / "escnull.dat" => Req,
    "rfc4475" / "esc02.dat" => Req,
    "rfc4475" / "lwsdisp.dat" => Req,
    "rfc4475" / "longreq.dat" => Req,
    "rfc4475" / "dblreq.dat" => Req,
    "rfc4475" / "semiuri.dat" => Req,
    "rfc4475" / "transports.dat" => Req,
    "rfc4475" / "mpart01.dat" => Req,
    "rfc4475" / "unreason.dat" => Resp,
    "rfc4475" / "noreason.dat" => Resp,
    // RFC 4475 §3.1.2: invalid messages.
    "rfc4475" / "badinv01.dat" => BadHeader("Contact"),
    "rfc4475" / "clerr.dat" => ContentLength,
    "rfc4475" / "scalar02.dat" => BadHeader("CSeq"),
    "rfc4475" / "scalarlg.dat" => BadHeader("CSeq"),
    "rfc4475" / "quotbal.dat" => BadHeader("To"),
    "rfc4475" / "ltgtruri.dat" => BadUri,
    "rfc4475" / "lwsruri.dat" => StartLine,
    "rfc4475" / "lwsstart.dat" => StartLine,
    "rfc4475" / "trws.dat" => StartLine,
    "rfc4475" / "escruri.dat" => BadUri,
    "rfc4475" / "baddate.dat" => Req,
    "rfc4475" / "regbadct.dat" => BadHeader("Contact"),
    "rfc4475" / "badaspec.dat" => BadHeader("To"),
    "rfc4475" / "baddn.dat" => BadHeader("To"),
    "rfc4475" / "badvers.dat" => Version,
    "rfc4475" / "mismatch01.dat" => BadHeader("CSeq"),
    "rfc4475" / "mismatch02.dat" => BadHeader("CSeq"),
    "rfc4475" / "bigcode.dat" => StartLine,
    "rfc4475" / "ncl.dat" => BadHeader("Content-Length"),
    // RFC 4475 §3.2: transaction layer.
    "rfc4475" / "badbranch.dat" => Req,
    // RFC 4475 §3.3: application layer (syntactically valid unless noted).
    "rfc4475" / "insuf.dat" => Missing("To"),
    "rfc4475" / "unkscm.dat" => Req,
    "rfc4475" / "novelsc.dat" => Req,
    "rfc4475" / "unksm2.dat" => Req,
    "rfc4475" / "bext01.dat" => Req,
    "rfc4475" / "invut.dat" => Req,
    "rfc4475" / "regaut01.dat" => Req,
    "rfc4475" / "multi01.dat" => BadHeader("CSeq"),
    "rfc4475" / "mcl01.dat" => BadHeader("Content-Length"),
    "rfc4475" / "bcast.dat" => Resp,
    "rfc4475" / "zeromf.dat" => Req,
    "rfc4475" / "cparam01.dat" => Req,
    "rfc4475" / "cparam02.dat" => Req,
    "rfc4475" / "regescrt.dat" => Req,
    "rfc4475" / "sdp01.dat" => Req,
    // RFC 4475 §3.4: backward compatibility.
    "rfc4475" / "inv2543.dat" => Req,
    // RFC 5118.
    "rfc5118" / "ipv6-good" => Req,
    "rfc5118" / "ipv6-bad" => BadUri,
    "rfc5118" / "port-ambiguous" => Req,
    "rfc5118" / "port-unambiguous" => Req,
    "rfc5118" / "via-received-param-with-delim" => Req,
    "rfc5118" / "via-received-param-no-delim" => Req,
    "rfc5118" / "ipv6-in-sdp" => Req,
    "rfc5118" / "mult-ip-in-header" => Req,
    "rfc5118" / "mult-ip-in-sdp" => Req,
    "rfc5118" / "ipv4-mapped-ipv6" => Req,
    "rfc5118" / "ipv6-bug-abnf-3-colons" => Req,
    "rfc5118" / "ipv6-correct-abnf-2-colons" => Req,
];

fn case(name: &str) -> &'static [u8] {
    CASES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, data, _)| *data)
        .unwrap_or_else(|| panic!("no torture case {name}"))
}

fn request(name: &str) -> Request {
    match parse_datagram(case(name)) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

fn response(name: &str) -> Response {
    match parse_datagram(case(name)) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_torture_message_gives_the_outcome_its_rfc_demands() {
    let mut wrong = Vec::new();
    for (name, data, expect) in CASES {
        let got = parse_datagram(data);
        if outcome(&got) != *expect {
            wrong.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_covers_every_corpus_file() {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/sip-torture/"
    );
    let mut on_disk = 0;
    for dir in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(format!("{root}{dir}")).expect("corpus directory") {
            let name = entry.expect("dir entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                CASES.iter().any(|(n, _, _)| *n == name),
                "{dir}/{name} is not in CASES"
            );
            on_disk += 1;
        }
    }
    assert_eq!(on_disk, CASES.len());
}

#[test]
fn torture_messages_survive_tcp_framing_too() {
    // Over a stream every message with a Content-Length frames; the outcome matches
    // the datagram one except where UDP-only rules apply (no Content-Length, truncation).
    for (name, data, expect) in CASES {
        let mut framer = Framer::new();
        framer.push(data);
        let got = framer.next_message();
        let has_cl = parse_datagram(data).is_ok_and(|m| match m {
            SipMessage::Request(r) => r.headers.get(&HeaderName::ContentLength).is_some(),
            SipMessage::Response(r) => r.headers.get(&HeaderName::ContentLength).is_some(),
        });
        match (name, expect) {
            // RFC 3261 §18.3: a stream needs Content-Length to frame (inv2543 has none).
            (_, Req | Resp) if !has_cl => assert_eq!(
                got,
                Some(Err(ParseError::MissingHeader("Content-Length"))),
                "{name}"
            ),
            // Content-Length 9999 > bytes present: a stream waits for more.
            (&"clerr.dat", _) => assert!(got.is_none(), "{name}: {got:?}"),
            // Trailing INVITE after the first message is a second (incomplete) frame.
            (&"dblreq.dat", _) => assert!(matches!(got, Some(Ok(_))), "{name}: {got:?}"),
            (_, Req | Resp) => assert!(matches!(got, Some(Ok(_))), "{name}: {got:?}"),
            _ => assert!(matches!(got, Some(Err(_))), "{name}: {got:?}"),
        }
    }
}

#[test]
fn wsinv_unfolds_and_normalises() {
    let r = request("wsinv.dat");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.host, "chair-dnrc.example.com");
    assert_eq!(r.uri.param("unknownparam"), Some(None));
    // `TO :` + folded value.
    assert_eq!(
        r.headers.get(&HeaderName::To),
        Some("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    );
    assert_eq!(r.to_header().unwrap().tag(), Some("1918181833n"));
    let from = r.from_header().unwrap();
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.uri.user.as_deref(), Some("jdrosen"));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(r.headers.get(&HeaderName::MaxForwards), Some("0068"));
    assert_eq!(
        r.cseq().unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    let via = r.top_via().unwrap();
    assert_eq!(via.transport, TransportKind::Udp);
    assert_eq!(via.host, "192.0.2.2");
    assert_eq!(via.branch.as_deref(), Some("390skdjuw"));
    let vias: Vec<_> = r.headers.get_all(&HeaderName::Via).collect();
    assert_eq!(vias.len(), 2);
    let second = Via::parse(vias[1]).unwrap();
    assert_eq!(second.transport, TransportKind::Tcp);
    assert_eq!(second.host, "spindle.example.com");
    assert_eq!(r.headers.get(&HeaderName::Subject), Some(""));
    assert_eq!(
        r.headers.get(&HeaderName::Other("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get(&HeaderName::ContentLength),
        Some("150"),
        "`Content-Length   :` normalised"
    );
    assert_eq!(r.body.len(), 150);
    assert!(r.body.starts_with(b"v=0\r\n"));
}

#[test]
fn intmeth_keeps_unusual_tokens() {
    let r = request("intmeth.dat");
    assert_eq!(
        r.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(r.cseq().unwrap().method, r.method);
    assert_eq!(
        r.uri.user_name(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(r.uri.host, "example.com");
    let to = r.to_header().unwrap();
    assert_eq!(to.display.as_deref(), Some("BEL:\x07 NUL:\0 DEL:\x7f"));
    let from = r.from_header().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        r.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
}

#[test]
fn esc01_keeps_escapes_as_received() {
    let r = request("esc01.dat");
    assert_eq!(r.uri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(r.uri.host, "example.net");
    assert_eq!(r.to_header().unwrap().uri.user.as_deref(), Some("%75se%72"));
    assert_eq!(
        r.from_header().unwrap().uri.user.as_deref(),
        Some("I%20have%20spaces")
    );
    // `i:` and `C:` compact forms.
    assert_eq!(r.call_id().unwrap(), "esc01.239409asdfakjkn23onasd0-3234");
    assert_eq!(
        r.headers.get(&HeaderName::ContentType),
        Some("application/sdp")
    );
    let contact = NameAddr::parse_list(r.headers.get(&HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(contact[0].uri.param("%6C%72"), Some(None));
    assert_eq!(
        contact[0].uri.param("n%61me"),
        Some(Some("v%61lue%25%34%31"))
    );
}

#[test]
fn escnull_and_esc02_are_accepted_as_written() {
    let r = request("escnull.dat");
    assert_eq!(
        r.to_header().unwrap().uri.user.as_deref(),
        Some("null-%00-null")
    );
    assert_eq!(r.headers.get_all(&HeaderName::Contact).count(), 2);
    let r = request("esc02.dat");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    assert_eq!(r.to_header().unwrap().display.as_deref(), Some("%Z%45"));
    // `C%6Fntact` is not Contact: header names are not unescaped.
    assert_eq!(r.headers.get_all(&HeaderName::Contact).count(), 2);
    assert!(r
        .headers
        .get(&HeaderName::Other("C%6Fntact".into()))
        .is_some());
}

#[test]
fn lwsdisp_display_name_without_space() {
    let r = request("lwsdisp.dat");
    let from = r.from_header().unwrap();
    assert_eq!(from.display.as_deref(), Some("caller"));
    assert_eq!(from.uri.user.as_deref(), Some("caller"));
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq_long_values_intact() {
    let r = request("longreq.dat");
    let to = r.to_header().unwrap();
    assert!(to.display.as_deref().unwrap().contains("extremeextreme"));
    assert_eq!(to.uri.port, Some(6000));
    let call_id = r.call_id().unwrap();
    assert!(call_id.starts_with("longreq.onereallyreally") && call_id.ends_with("longcallid"));
    assert_eq!(call_id.len(), 141);
    assert_eq!(r.headers.get_all(&HeaderName::Via).count(), 34);
    assert!(r.from_header().unwrap().tag().unwrap().len() > 50);
    assert_eq!(r.body.len(), 150);
}

#[test]
fn dblreq_takes_the_first_message_only() {
    let r = request("dblreq.dat");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        r.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
}

#[test]
fn semiuri_user_part_holds_the_semicolon() {
    let r = request("semiuri.dat");
    assert_eq!(r.uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(r.uri.host, "example.com");
    assert!(r.uri.params.is_empty());
}

#[test]
fn transports_top_via_only_is_interpreted() {
    let r = request("transports.dat");
    assert_eq!(r.top_via().unwrap().transport, TransportKind::Udp);
    assert_eq!(r.headers.get_all(&HeaderName::Via).count(), 5);
}

#[test]
fn mpart01_body_kept_byte_for_byte() {
    let data = case("mpart01.dat");
    let r = request("mpart01.dat");
    assert_eq!(r.body.len(), 553);
    assert_eq!(&r.body[..], &data[data.len() - 553..]);
    assert!(r
        .headers
        .get(&HeaderName::ContentType)
        .unwrap()
        .starts_with("multipart/mixed"));
}

#[test]
fn unreason_and_noreason_reason_phrases() {
    let r = response("unreason.dat");
    assert_eq!(r.status, 200);
    assert!(r
        .reason
        .starts_with("= 2**3 * 5**2 но сто девяносто девять"));
    assert_eq!(r.body.len(), 154);
    let r = response("noreason.dat");
    assert_eq!(r.status, 100);
    assert_eq!(r.reason, "");
}

#[test]
fn rfc5118_ipv6_references() {
    let r = request("ipv6-good");
    assert_eq!(r.uri.host, "[2001:db8::10]");
    assert_eq!(r.top_via().unwrap().host, "[2001:db8::9:1]");
    let r = request("port-ambiguous");
    assert_eq!(
        (r.uri.host.as_str(), r.uri.port),
        ("[2001:db8::10:5070]", None)
    );
    let r = request("port-unambiguous");
    assert_eq!(
        (r.uri.host.as_str(), r.uri.port),
        ("[2001:db8::10]", Some(5070))
    );
    let want: IpAddr = "2001:db8::9:255".parse().unwrap();
    assert_eq!(
        request("via-received-param-no-delim")
            .top_via()
            .unwrap()
            .received,
        Some(want)
    );
    assert_eq!(
        request("via-received-param-with-delim")
            .top_via()
            .unwrap()
            .received,
        Some(want)
    );
    let r = request("mult-ip-in-header");
    let third = Via::parse(r.headers.get_all(&HeaderName::Via).nth(2).unwrap()).unwrap();
    assert_eq!(third.host, "[2001:db8::9:255]");
    assert_eq!(third.received, Some("192.0.2.200".parse().unwrap()));
    let r = request("ipv4-mapped-ipv6");
    assert_eq!(r.top_via().unwrap().port, Some(19823));
    assert_eq!(r.body.len(), 236);
}

#[test]
fn bad_requests_get_a_400_or_505_built_from_their_bytes() {
    for (name, data, expect) in CASES {
        let Err(err) = parse_datagram(data) else {
            continue;
        };
        let answer = error_response(data, &err, Some("srv1"));
        match expect {
            // Malformed responses are dropped, never answered.
            _ if data.starts_with(b"SIP/") => assert!(answer.is_none(), "{name}"),
            Version => assert_eq!(answer.expect(name).status, 505),
            _ => {
                let a = answer.unwrap_or_else(|| panic!("{name}: no answer"));
                assert_eq!(a.status, 400, "{name}");
                assert_eq!(a.reason, err.to_string());
                assert!(a.headers.get(&HeaderName::Via).is_some(), "{name}");
                // The answer itself is a well-formed response.
                let wire = a.to_bytes();
                let back = parse_datagram(&wire);
                let copied_ok = a.to_header().is_ok()
                    && a.from_header().is_ok()
                    && a.call_id().is_ok()
                    && a.cseq().is_ok()
                    && a.headers
                        .get_all(&HeaderName::Via)
                        .all(|v| Via::parse(v).is_ok());
                if copied_ok {
                    assert!(
                        matches!(back, Ok(SipMessage::Response(_))),
                        "{name}: {back:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn accepted_messages_round_trip_through_to_bytes() {
    for (name, data, _) in CASES {
        let Ok(first) = parse_datagram(data) else {
            continue;
        };
        let wire = first.to_bytes();
        let second = parse_datagram(&wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(strip_cl(first), strip_cl(second), "{name}");
    }
}

/// The message without Content-Length headers (to_bytes rewrites it at the end).
fn strip_cl(mut m: SipMessage) -> SipMessage {
    match &mut m {
        SipMessage::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        SipMessage::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    }
    m
}

/// The `i`-th corpus message (wrapping), for the mutation property tests.
pub(super) fn corpus_message(i: usize) -> &'static [u8] {
    CASES[i % CASES.len()].1
}

/// Valid messages that rsip 0.4.0 rejects (found by the differential test below): the
/// reason the server does not put rsip on its parse path.
const RSIP_REJECTS_VALID: &[(&str, &str)] = &[
    (
        "intmeth.dat",
        "extension method and unusual token characters",
    ),
    ("esc02.dat", "extension method containing %"),
    ("semiuri.dat", "';' inside the user part of the Request-URI"),
    (
        "unkscm.dat",
        "Request-URI with a non-SIP scheme (must reach the 416 logic)",
    ),
    ("ipv6-good", "IPv6 reference in the Request-URI"),
    ("port-ambiguous", "IPv6 reference in the Request-URI"),
    (
        "port-unambiguous",
        "IPv6 reference with port in the Request-URI",
    ),
    (
        "via-received-param-with-delim",
        "IPv6 reference in the Request-URI",
    ),
    (
        "via-received-param-no-delim",
        "IPv6 reference in the Request-URI",
    ),
    ("ipv6-in-sdp", "IPv6 reference in the Request-URI"),
    ("mult-ip-in-sdp", "IPv6 reference in the Request-URI"),
    (
        "ipv6-bug-abnf-3-colons",
        "IPv6 reference in the Request-URI",
    ),
    (
        "ipv6-correct-abnf-2-colons",
        "IPv6 reference in the Request-URI",
    ),
];

#[test]
fn rsip_agrees_wherever_it_accepts() {
    for (name, data, _) in CASES {
        let ours = parse_datagram(data);
        let theirs = rsip_baseline::parse_datagram_via_rsip(data);
        let known_gap = RSIP_REJECTS_VALID.iter().any(|(n, _)| n == name);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                assert!(!known_gap, "{name}: rsip accepts it now, update the list");
                assert_eq!(a, b, "{name}");
            }
            (Err(_), Err(_)) => assert!(!known_gap, "{name}"),
            (Ok(_), Err(e)) => assert!(known_gap, "{name}: new rsip rejection {e}"),
            (Err(e), Ok(_)) => panic!("{name}: rsip accepts what we reject ({e})"),
        }
    }
}
