//! Unit tests of the string parsers and the serialiser.

use super::*;

#[test]
fn header_names_are_case_insensitive_and_compact_forms_expand() {
    assert_eq!(HeaderName::from_wire("via"), HeaderName::Via);
    assert_eq!(HeaderName::from_wire("CALL-id"), HeaderName::CallId);
    assert_eq!(HeaderName::from_wire("cseq"), HeaderName::CSeq);
    let compact = [
        ("v", HeaderName::Via),
        ("i", HeaderName::CallId),
        ("F", HeaderName::From),
        ("t", HeaderName::To),
        ("m", HeaderName::Contact),
        ("l", HeaderName::ContentLength),
        ("c", HeaderName::ContentType),
        ("k", HeaderName::Supported),
        ("s", HeaderName::Subject),
        ("e", HeaderName::ContentEncoding),
        ("o", HeaderName::Event),
        ("r", HeaderName::ReferTo),
        ("u", HeaderName::Other("Allow-Events".into())),
    ];
    for (wire, name) in compact {
        assert_eq!(HeaderName::from_wire(wire), name, "{wire}");
    }
    assert_eq!(
        HeaderName::from_wire("X-Custom"),
        HeaderName::Other("X-Custom".into())
    );
    assert_eq!(HeaderName::from_wire("x"), HeaderName::Other("x".into()));
}

#[test]
fn other_header_names_compare_case_insensitively() {
    use std::collections::HashSet;
    let a = HeaderName::from_wire("X-Caruso-Queue");
    let b = HeaderName::Other("x-caruso-QUEUE".into());
    assert_eq!(a, b);
    assert_ne!(a, HeaderName::Other("X-Caruso-Queues".into()));
    assert_ne!(HeaderName::Via, HeaderName::To);
    let set: HashSet<_> = [a, b].into_iter().collect();
    assert_eq!(set.len(), 1);
    let mut h = Headers::default();
    h.push(HeaderName::from_wire("X-Caruso-Queue"), "sales");
    assert_eq!(
        h.get(&HeaderName::Other("x-caruso-queue".into())),
        Some("sales")
    );
}

#[test]
fn sip_uri_parts() {
    let u =
        Uri::parse("sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi&x=y").unwrap();
    assert_eq!(u.scheme, "sip");
    assert_eq!(u.user.as_deref(), Some("alice:secret"));
    assert_eq!(u.user_name(), Some("alice"));
    assert_eq!(u.host, "Example.com");
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
    assert_eq!(u.param("lr"), Some(None));
    assert_eq!(u.headers.as_deref(), Some("subject=hi&x=y"));
    assert_eq!(
        u.to_string(),
        "sip:alice:secret@Example.com:5070;transport=tcp;lr?subject=hi&x=y"
    );
}

#[test]
fn sip_uri_ipv6_and_escapes() {
    let u = Uri::parse("SIPS:[2001:db8::10]:5061").unwrap();
    assert_eq!(u.scheme, "sips");
    assert_eq!(u.host, "[2001:db8::10]");
    assert_eq!(u.port, Some(5061));
    let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
    assert_eq!(u.port, None);
    let u = Uri::parse("sip:user@[2001:db8:::192.0.2.1]").unwrap();
    assert_eq!(u.host, "[2001:db8:::192.0.2.1]");
    let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
    assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"));
    let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(u.host, "example.com");
    assert!(u.params.is_empty());
}

#[test]
fn other_schemes_are_opaque() {
    let u = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
    assert_eq!(u.scheme, "tel");
    assert_eq!(u.host, "+1-201-555-0123;phone-context=x");
    assert_eq!(u.to_string(), "tel:+1-201-555-0123;phone-context=x");
    let u = Uri::parse("nobodyknowsthisscheme:totallyopaquecontent").unwrap();
    assert_eq!(u.scheme, "nobodyknowsthisscheme");
}

#[test]
fn bad_uris_are_rejected() {
    for bad in [
        "",
        "sip:",
        "sip:@host",
        "<sip:a@b>",
        "sip:a b@host",
        "sip:host:99999",
        "sip:host:",
        "sip:2001:db8::10",
        "sip:[2001:db8::10",
        "sip:[not-v6]",
        "sip:user@host;",
        "sip:a%zz@host",
        "1sip:host",
        "sip:host?",
        "tel:",
    ] {
        assert!(
            matches!(Uri::parse(bad), Err(ParseError::BadUri(_))),
            "{bad:?} parsed"
        );
    }
}

#[test]
fn name_addr_forms() {
    let na =
        NameAddr::parse(r#" "J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#).unwrap();
    assert_eq!(na.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(na.uri.host, "example.com");
    assert_eq!(na.tag(), Some("98asjd8"));
    // Round trip through Display keeps the display name.
    let again = NameAddr::parse(&na.to_string()).unwrap();
    assert_eq!(again, na);

    let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
    assert_eq!(na.display.as_deref(), Some("caller"));
    assert_eq!(na.tag(), Some("323"));

    let na =
        NameAddr::parse("Bob Smith <sip:bob@b.example;transport=tcp> ; tag = x1 ;foo").unwrap();
    assert_eq!(na.display.as_deref(), Some("Bob Smith"));
    assert_eq!(na.uri.param("transport"), Some(Some("tcp")));
    assert_eq!(na.tag(), Some("x1"));
    assert_eq!(na.params[1], ("foo".to_string(), None));

    // addr-spec: parameters belong to the header, not the URI (RFC 3261 §20).
    let na = NameAddr::parse("sip:user@example.com;tag=81x2").unwrap();
    assert_eq!(na.display, None);
    assert!(na.uri.params.is_empty());
    assert_eq!(na.tag(), Some("81x2"));
}

#[test]
fn name_addr_errors() {
    for bad in [
        "",
        "\"unterminated <sip:a@b>",
        "\"x\" sip:a@b",
        "<sip:a@b",
        "<sip:a@b>;",
        "<sip:a@b>;=x",
        "<sip:a@b> junk",
        "sip:a@b?x=y",
        "Bad\"Name <sip:a@b>",
    ] {
        assert!(NameAddr::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn name_addr_lists_respect_quotes_and_brackets() {
    let l = NameAddr::parse_list(
        r#""Doe, John" <sip:j@a.example;x=1,2>, <sip:b@b.example>;q=0.5 ,sip:c@c.example"#,
    );
    // `,` inside a URI param is not allowed unescaped, so the first element fails.
    assert!(l.is_err());
    let l = NameAddr::parse_list(
        r#""Doe, John" <sip:j@a.example>, <sip:b@b.example>;q=0.5 ,sip:c@c.example"#,
    )
    .unwrap();
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].display.as_deref(), Some("Doe, John"));
    assert_eq!(
        l[1].params,
        vec![("q".to_string(), Some("0.5".to_string()))]
    );
    assert_eq!(l[2].uri.host, "c.example");
}

#[test]
fn via_with_lws_everywhere() {
    let v = Via::parse(
        "SIP / 2.0 / UDP first.example.com: 4000;ttl=16 ;maddr=224.2.0.1 ;branch=z9hG4bKa7c6a8dlze.1",
    )
    .unwrap();
    assert_eq!(v.transport, TransportKind::Udp);
    assert_eq!(v.host, "first.example.com");
    assert_eq!(v.port, Some(4000));
    assert_eq!(v.branch.as_deref(), Some("z9hG4bKa7c6a8dlze.1"));
    assert!(v.is_rfc3261_branch());
    assert_eq!(
        v.params,
        vec![
            ("ttl".to_string(), Some("16".to_string())),
            ("maddr".to_string(), Some("224.2.0.1".to_string()))
        ]
    );
}

#[test]
fn via_ipv6_received_rport_and_lists() {
    let v = Via::parse("SIP/2.0/tcp [2001:db8::9:1]:6050;branch=z9hG4bK1;received=2001:db8::9:255;rport, SIP/2.0/UDP other").unwrap();
    assert_eq!(v.transport, TransportKind::Tcp);
    assert_eq!(v.host, "[2001:db8::9:1]");
    assert_eq!(v.port, Some(6050));
    assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
    assert_eq!(v.rport, Some(None));
    let v = Via::parse("SIP/2.0/UDP h;received=[2001:db8::9:255];rport=5060").unwrap();
    assert_eq!(v.received, Some("2001:db8::9:255".parse().unwrap()));
    assert_eq!(v.rport, Some(Some(5060)));
    // Round trip.
    assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
}

#[test]
fn via_errors() {
    for bad in [
        "",
        "SIP/3.0/UDP h",
        "SIP/2.0/SCTP h",
        "SIP/2.0/UDPh",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h:port",
        "SIP/2.0/UDP h;received=nope",
        "SIP/2.0/UDP h;rport=70000",
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h junk",
    ] {
        assert!(
            matches!(
                Via::parse(bad),
                Err(ParseError::BadHeader { name: "Via", .. })
            ),
            "{bad:?} parsed"
        );
    }
}

#[test]
fn cseq_range_and_form() {
    assert_eq!(
        CSeq::parse(" 4711   INVITE ").unwrap(),
        CSeq {
            seq: 4711,
            method: Method::Invite
        }
    );
    assert_eq!(CSeq::parse("2147483647 BYE").unwrap().seq, 2_147_483_647);
    for bad in [
        "2147483648 BYE",
        "36893488147419103232 INVITE",
        "-1 INVITE",
        "INVITE",
        "1INVITE",
        "1 ",
        "1 IN VITE",
    ] {
        assert!(CSeq::parse(bad).is_err(), "{bad:?} parsed");
    }
}

fn sample_request() -> Request {
    let mut headers = Headers::default();
    headers.push(HeaderName::Via, "SIP/2.0/UDP a.example;branch=z9hG4bK1");
    headers.push(HeaderName::Via, "SIP/2.0/UDP b.example;branch=z9hG4bK2");
    headers.push(HeaderName::MaxForwards, "70");
    headers.push(HeaderName::From, "<sip:alice@a.example>;tag=f1");
    headers.push(HeaderName::To, "sip:bob@b.example");
    headers.push(HeaderName::CallId, "abc@a.example");
    headers.push(HeaderName::CSeq, "1 INVITE");
    headers.push(HeaderName::ContentLength, "999");
    Request {
        method: Method::Invite,
        uri: Uri::parse("sip:bob@b.example").unwrap(),
        headers,
        body: Bytes::from_static(b"v=0\r\n"),
    }
}

#[test]
fn response_for_request_copies_the_rfc_headers() {
    let req = sample_request();
    let resp = Response::for_request(&req, 200, "OK", Some("t9"));
    let names: Vec<_> = resp.headers.0.iter().map(|h| h.name.clone()).collect();
    assert_eq!(
        names,
        vec![
            HeaderName::Via,
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq
        ]
    );
    assert_eq!(resp.to_header().unwrap().tag(), Some("t9"));
    assert_eq!(resp.from_header().unwrap().tag(), Some("f1"));
    assert_eq!(resp.cseq().unwrap().method, Method::Invite);
    assert!(resp.body.is_empty());
    // An existing To tag is kept, not doubled.
    let again = Response::for_request(
        &Request {
            headers: resp.headers.clone(),
            ..req.clone()
        },
        200,
        "OK",
        Some("other"),
    );
    assert_eq!(
        again.headers.get(&HeaderName::To),
        Some("sip:bob@b.example;tag=t9")
    );
    // No tag requested: To copied unchanged.
    let trying = Response::for_request(&req, 100, "Trying", None);
    assert_eq!(
        trying.headers.get(&HeaderName::To),
        Some("sip:bob@b.example")
    );
}

#[test]
fn to_bytes_writes_crlf_and_content_length_from_body() {
    let req = sample_request();
    let text = String::from_utf8(req.to_bytes()).unwrap();
    assert!(text.starts_with(
        "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
    ));
    assert!(text.ends_with("\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
    assert!(!text.contains("999"));
    let resp = Response::for_request(&req, 486, "Busy Here", None);
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn req(r: Result<SipMessage, ParseError>) -> Request {
    match r {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn datagram_body_framing_rules() {
    // Exact.
    assert_eq!(&req(parse_datagram(INVITE.as_bytes())).body[..], b"v=0\n");
    // Content-Length shorter than the datagram: truncated (RFC 3261 §18.3).
    let longer = format!("{INVITE}trailing junk");
    assert_eq!(&req(parse_datagram(longer.as_bytes())).body[..], b"v=0\n");
    // Longer than the datagram: error.
    let short = &INVITE.as_bytes()[..INVITE.len() - 2];
    assert_eq!(
        parse_datagram(short),
        Err(ParseError::ContentLength {
            declared: 4,
            actual: 2
        })
    );
    // No Content-Length on UDP: the rest of the datagram.
    let no_cl = INVITE.replace("Content-Length: 4\r\n", "");
    let r = req(parse_datagram(format!("{no_cl}abc").as_bytes()));
    assert_eq!(&r.body[..], b"v=0\nabc");
}

#[test]
fn datagram_tolerances() {
    // Leading CRLFs (RFC 3261 §7.5), bare LF line ends, lower-case version, compact and
    // spaced names.
    let text = INVITE
        .replace("\r\n", "\n")
        .replace("SIP/2.0\n", "sip/2.0\n")
        .replace("Call-ID:", "i :")
        .replace("Max-Forwards: 70\n", "");
    let r = req(parse_datagram(format!("\r\n\r\n{text}").as_bytes()));
    assert_eq!(
        r.call_id().unwrap(),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(r.headers.get(&HeaderName::MaxForwards), None);
    assert_eq!(&r.body[..], b"v=0\n");
}

#[test]
fn datagram_bytes_shares_the_buffer() {
    let data = Bytes::from_static(INVITE.as_bytes());
    let r = req(parse_datagram_bytes(data.clone()));
    let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    assert!(range.contains(&(r.body.as_ptr() as usize)));
    assert_eq!(r, req(parse_datagram(INVITE.as_bytes())));
}

#[test]
fn datagram_errors_name_the_rule() {
    let cases: &[(String, ParseError)] = &[
        (
            INVITE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
            ParseError::Version("SIP/3.0".into()),
        ),
        (
            INVITE.replace("INVITE sip", "INVITE  sip"),
            ParseError::StartLine("INVITE  sip:bob@biloxi.example.com SIP/2.0".into()),
        ),
        (
            INVITE.replace("Max-Forwards: 70", "Max-Forwards: -1"),
            ParseError::BadHeader {
                name: "Max-Forwards",
                reason: "not a non-negative integer".into(),
            },
        ),
        (
            INVITE.replace("Max-Forwards: 70", "Expires: soon"),
            ParseError::BadHeader {
                name: "Expires",
                reason: "not a non-negative integer".into(),
            },
        ),
        (
            INVITE.replace("Content-Length: 4", "Content-Length: -4"),
            ParseError::BadHeader {
                name: "Content-Length",
                reason: "not a non-negative integer".into(),
            },
        ),
        (
            INVITE.replace(
                "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
                "",
            ),
            ParseError::MissingHeader("Via"),
        ),
        (
            INVITE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", ""),
            ParseError::MissingHeader("Call-ID"),
        ),
        (
            INVITE.replace("Max-Forwards: 70", "Max-Forwards 70"),
            ParseError::HeaderLine("Max-Forwards 70".into()),
        ),
        (
            INVITE.replace(
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nBad Name: x\r\n",
            ),
            ParseError::HeaderLine("Bad Name: x".into()),
        ),
        (
            INVITE.replace(
                "sip:bob@biloxi.example.com SIP",
                "sip:bob@biloxi.example.com?x=y SIP",
            ),
            ParseError::BadUri("headers not allowed: sip:bob@biloxi.example.com?x=y".into()),
        ),
        (INVITE.replace("\r\n\r\n", "\r\n"), ParseError::Incomplete),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_datagram(text.as_bytes()).as_ref(),
            Err(want),
            "{text}"
        );
    }
    // A folded line cannot come first.
    let folded_first = INVITE.replace("SIP/2.0\r\nVia", "SIP/2.0\r\n Via");
    assert!(matches!(
        parse_datagram(folded_first.as_bytes()),
        Err(ParseError::HeaderLine(_))
    ));
    // Not UTF-8 in the header block; body bytes are free.
    let mut bad = INVITE.as_bytes().to_vec();
    bad[60] = 0xff;
    assert_eq!(parse_datagram(&bad), Err(ParseError::Utf8("header")));
    let mut body_bin = INVITE.as_bytes().to_vec();
    let n = body_bin.len();
    body_bin[n - 2] = 0xff;
    assert!(parse_datagram(&body_bin).is_ok());
    // Oversize.
    let mut huge = INVITE.as_bytes().to_vec();
    huge.resize(MAX_MESSAGE_SIZE + 1, b'x');
    assert_eq!(
        parse_datagram(&huge),
        Err(ParseError::TooLarge(MAX_MESSAGE_SIZE + 1))
    );
}

#[test]
fn error_text_never_carries_line_breaks() {
    let text = INVITE.replace("INVITE sip", "INVITE \rsip");
    let err = parse_datagram(text.as_bytes()).unwrap_err();
    assert!(!err.to_string().contains(['\r', '\n']), "{err}");
    let resp = error_response(text.as_bytes(), &err, None).unwrap();
    let wire = resp.to_bytes();
    let first_line_end = wire.iter().position(|&b| b == b'\n').unwrap();
    assert!(!wire[..first_line_end - 1].contains(&b'\r'));
}

#[test]
fn error_response_copies_routing_headers_and_tags_to() {
    let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    let err = parse_datagram(text.as_bytes()).unwrap_err();
    let resp = error_response(text.as_bytes(), &err, Some("x1")).unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.reason,
        "malformed CSeq header: method BYE does not match request method INVITE"
    );
    assert_eq!(resp.to_header().unwrap().tag(), Some("x1"));
    assert_eq!(
        resp.top_via().unwrap().branch.as_deref(),
        Some("z9hG4bK776asdhds")
    );
    assert_eq!(resp.headers.get(&HeaderName::Contact), None);
    // Responses are never answered.
    let bad_resp = b"SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h\r\n\r\n";
    let err = parse_datagram(bad_resp).unwrap_err();
    assert_eq!(error_response(bad_resp, &err, None), None);
    // A malformed ACK is dropped, never answered.
    let bad_ack = INVITE
        .replace("INVITE sip", "ACK sip")
        .replace("CSeq: 314159 INVITE", "CSeq: 314159 ACK")
        .replace("From: Alice", "From: Alice,");
    let err = parse_datagram(bad_ack.as_bytes()).unwrap_err();
    assert_eq!(error_response(bad_ack.as_bytes(), &err, None), None);
    // No Via: nowhere to send an answer.
    let no_via = b"OPTIONS sip:a@b SIP/2.0\r\nTo: sip:a@b\r\n\r\n";
    let err = parse_datagram(no_via).unwrap_err();
    assert_eq!(error_response(no_via, &err, None), None);
}

#[test]
fn framer_splits_a_stream_by_content_length() {
    let mut f = Framer::new();
    let two = format!("{INVITE}\r\n\r\n{INVITE}");
    // Byte by byte: a message appears exactly when its last body byte arrives.
    let mut got = Vec::new();
    for (i, b) in two.as_bytes().iter().enumerate() {
        f.push(std::slice::from_ref(b));
        while let Some(m) = f.next_message() {
            got.push((i, m.unwrap()));
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, INVITE.len() - 1);
    assert_eq!(got[1].0, two.len() - 1);
    assert_eq!(got[0].1, got[1].1);
    assert_eq!(f.buffered(), 0);
    // Bare LF line ends, trickled byte by byte: the resumed search still finds the end.
    let lf = INVITE.replace("\r\n", "\n");
    let mut n = 0;
    for (i, b) in lf.as_bytes().iter().enumerate() {
        f.push(std::slice::from_ref(b));
        if let Some(m) = f.next_message() {
            assert!(m.is_ok() && i == lf.len() - 1, "{i}: {m:?}");
            n += 1;
        }
    }
    assert_eq!(n, 1);
    // Keep-alive CRLFs alone give nothing.
    f.push(b"\r\n\r\n");
    assert!(f.next_message().is_none());
    assert_eq!(f.buffered(), 0);
}

#[test]
fn framer_consumes_a_bad_message_and_goes_on() {
    let mut f = Framer::new();
    let bad = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 ACK");
    f.push(format!("{bad}{INVITE}").as_bytes());
    assert!(matches!(
        f.next_message(),
        Some(Err(ParseError::BadHeader { name: "CSeq", .. }))
    ));
    assert!(!f.is_broken());
    assert!(matches!(f.next_message(), Some(Ok(SipMessage::Request(_)))));
    assert!(f.next_message().is_none());
}

#[test]
fn framer_errors_that_break_the_stream_stick() {
    let mut f = Framer::new();
    let no_cl = INVITE.replace("Content-Length: 4\r\n", "");
    f.push(no_cl.as_bytes());
    let e = Some(Err(ParseError::MissingHeader("Content-Length")));
    assert_eq!(f.next_message(), e);
    assert!(f.is_broken());
    f.push(INVITE.as_bytes());
    assert_eq!(f.next_message(), e);

    let mut f = Framer::with_max_size(100);
    f.push(&[b'a'; 101]);
    assert_eq!(f.next_message(), Some(Err(ParseError::TooLarge(101))));

    let mut f = Framer::with_max_size(400);
    f.push(
        INVITE
            .replace("Content-Length: 4", "Content-Length: 4000")
            .as_bytes(),
    );
    assert!(matches!(
        f.next_message(),
        Some(Err(ParseError::TooLarge(_)))
    ));
}

#[test]
fn framer_frames_for_error_responses() {
    let mut f = Framer::new();
    let bad = INVITE.replace("SIP/2.0\r\nVia", "SIP/2.1\r\nVia");
    f.push(bad.as_bytes());
    let frame = f.next_frame().unwrap().unwrap();
    assert_eq!(frame, bad.as_bytes());
    let err = parse_frame(&frame).unwrap_err();
    assert_eq!(error_response(&frame, &err, None).unwrap().status, 505);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const SEEDS: &[&[u8]] = &[
        INVITE.as_bytes(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        b"REGISTER sip:[2001:db8::1]:5060 SIP/2.0\r\nv: SIP / 2.0 / TCP [::1] : 5060 ;rport;received=[::1]\r\nt: \"a\\\"b\" <sip:a@b>\r\nf: sip:c@d;tag=1\r\ni: y\r\nCSeq: 2 REGISTER\r\nm: *\r\nl: 0\r\n\r\n",
    ];

    /// Parses every way the server can, checking the invariants that must hold for any
    /// input: no panic; an accepted message re-serialises to something that parses to
    /// the same message; an answer to a bad request is itself writable.
    fn exercise(data: &[u8]) {
        // Differential: where rsip accepts too, both must give the same message. Only for
        // strict CRLF input: we also accept bare LF line ends, rsip does not.
        let strict_crlf = data
            .iter()
            .enumerate()
            .all(|(i, &b)| b != b'\n' || (i > 0 && data[i - 1] == b'\r'));
        if let (true, Ok(ours), Ok(theirs)) = (
            strict_crlf,
            parse_datagram(data),
            rsip_baseline::parse_datagram_via_rsip(data),
        ) {
            assert_eq!(ours, theirs);
        }
        match parse_datagram(data) {
            Ok(m) => {
                let again = parse_datagram(&m.to_bytes()).expect("re-serialised message parses");
                let strip = |mut m: SipMessage| {
                    match &mut m {
                        SipMessage::Request(r) => r.headers.remove(&HeaderName::ContentLength),
                        SipMessage::Response(r) => r.headers.remove(&HeaderName::ContentLength),
                    }
                    m
                };
                assert_eq!(strip(m), strip(again));
            }
            Err(e) => {
                if let Some(r) = error_response(data, &e, Some("t")) {
                    let _ = r.to_bytes();
                }
            }
        }
        let mut f = Framer::with_max_size(4096);
        for chunk in data.chunks(7) {
            f.push(chunk);
            while let Some(r) = f.next_message() {
                if r.is_err() && f.is_broken() {
                    break;
                }
            }
            if f.is_broken() {
                break;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            exercise(&data);
        }

        #[test]
        fn mutated_messages_never_panic(
            seed in 0..SEEDS.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut data = SEEDS[seed].to_vec();
            for (pos, byte, op) in edits {
                let at = pos % (data.len() + 1);
                match op {
                    0 if at < data.len() => data[at] = byte,
                    1 => data.insert(at, byte),
                    _ => data.truncate(at),
                }
            }
            exercise(&data);
        }

        #[test]
        fn mutated_torture_messages_never_panic(
            idx in 0usize..61,
            edits in proptest::collection::vec((any::<usize>(), prop::sample::select(b" \t\r\n:;,<>\"@[]%=\\/0".to_vec()), 0u8..3), 1..6),
        ) {
            let mut data = crate::sip::message::torture_tests::corpus_message(idx).to_vec();
            for (pos, byte, op) in edits {
                let at = pos % (data.len() + 1);
                match op {
                    0 if at < data.len() => data[at] = byte,
                    1 => data.insert(at, byte),
                    _ => data.truncate(at),
                }
            }
            exercise(&data);
        }
    }
}

#[test]
fn every_known_header_spelling_maps_back_to_its_variant() {
    for (spelled, name) in KNOWN_HEADERS {
        assert_eq!(name.as_str(), *spelled);
        assert_eq!(&HeaderName::from_wire(spelled), name);
        assert_eq!(&HeaderName::from_wire(&spelled.to_ascii_lowercase()), name);
    }
}

#[test]
fn reason_phrase_with_line_breaks_cannot_split_the_response() {
    let mut r = Response {
        status: 400,
        reason: "bad\r\nInjected: yes".into(),
        headers: Headers::default(),
        body: Bytes::new(),
    };
    r.headers.push(HeaderName::CallId, "x");
    let wire = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        wire.starts_with("SIP/2.0 400 bad  Injected: yes\r\n"),
        "{wire}"
    );
    assert!(!wire.contains("\r\nInjected"), "{wire}");
    let second_line = wire.split("\r\n").nth(1);
    assert_eq!(second_line, Some("Call-ID: x"), "{wire}");
}

#[test]
fn control_characters_in_a_reason_phrase_are_a_parse_error() {
    let msg = b"SIP/2.0 200 OK\r:\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert!(matches!(parse_datagram(msg), Err(ParseError::StartLine(_))));
    let tab = b"SIP/2.0 200 O\tK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert!(
        parse_datagram(tab).is_ok(),
        "HTAB is allowed in a reason phrase"
    );
}
