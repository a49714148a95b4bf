//! The registrar (RFC 3261 §10) with digest authentication (RFC 7616, RFC 8760) against
//! the real binary: SIPp phones registering with MD5, re-registering and unregistering,
//! a wrong password refused with 403; a raw-socket phone answering the SHA-256 challenge
//! (offered before MD5), with nonce-count replay refused.
//!
//! The users are the agents' phones of the ACD config (`[[acd.agents]]` with
//! `phone = { user, password }`); the registrar's settings are `[sip.registrar]`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use caruso_e2e::*;
use sha2::{Digest, Sha256};

const USER: &str = "1001";
const PASSWORD: &str = "pw-1001";

/// A server whose agent `alice` has the phone `1001`; `md5_only` limits the challenges
/// to MD5 (SIPp 3.6 reads only the first challenge's algorithm and knows only MD5).
fn server(md5_only: bool) -> Server {
    let mut cfg = ServerConfig::new(Ports::block(40));
    if md5_only {
        cfg.extra
            .push_str("\n[sip.registrar]\nalgorithms = [\"MD5\"]\n");
    }
    cfg.extra.push_str(&format!(
        "\n[[acd.agents]]\nid = \"alice\"\ntoken = \"alice-token\"\n\
         phone = {{ user = \"{USER}\", password = \"{PASSWORD}\" }}\n"
    ));
    Server::start(cfg)
}

#[test]
fn sipp_phone_registers_with_md5_refreshes_and_unregisters_udp() {
    let s = server(true);
    let res = Sipp::new(&s, "reg_register.xml")
        .key("user", USER)
        .arg("-au")
        .arg(USER)
        .arg("-ap")
        .arg(PASSWORD)
        .run();
    assert!(res.all_succeeded(1), "{res}");
    // registered, then unregistered: no binding left
    let live = wait_metric(
        &s,
        "caruso_sip_registrations",
        &[],
        Duration::from_secs(2),
        |v| v == 0.0,
    );
    assert_eq!(live, Some(0.0), "{}", s.metrics());
}

#[test]
fn sipp_phone_registers_over_tcp() {
    let s = server(true);
    let res = Sipp::new(&s, "reg_register.xml")
        .key("user", USER)
        .arg("-au")
        .arg(USER)
        .arg("-ap")
        .arg(PASSWORD)
        .transport(Transport::Tcp)
        .run();
    assert!(res.all_succeeded(1), "{res}");
}

#[test]
fn wrong_password_is_forbidden_without_a_new_challenge() {
    let s = server(true);
    let res = Sipp::new(&s, "reg_wrong_password.xml")
        .key("user", USER)
        .arg("-au")
        .arg(USER)
        .arg("-ap")
        .arg("not-the-password")
        .run();
    assert!(res.all_succeeded(1), "{res}");
}

/// A phone on a raw UDP socket.
struct Phone {
    sock: UdpSocket,
    server: SocketAddr,
    cseq: u32,
}

impl Phone {
    fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Phone {
            sock,
            server,
            cseq: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local addr")
    }

    /// Sends a REGISTER (again every 500 ms) and returns the final answer.
    fn register(&mut self, expires: u32, authorization: Option<&str>) -> String {
        self.cseq += 1;
        let me = self.addr();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "REGISTER sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-reg-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{USER}@127.0.0.1>;tag=raw\r\n\
             To: <sip:{USER}@127.0.0.1>\r\n\
             Call-ID: raw-register@{me}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{USER}@{me}>\r\n\
             Expires: {expires}\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            server = self.server,
            cseq = self.cseq,
        );
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut next_send = Instant::now();
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            if Instant::now() >= next_send {
                self.sock
                    .send_to(req.as_bytes(), self.server)
                    .expect("send");
                next_send += Duration::from_millis(500);
            }
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if status_code(&text).is_some_and(|c| c >= 200) {
                    return text;
                }
            }
        }
        panic!("no final answer to REGISTER CSeq {}", self.cseq);
    }
}

/// Every value of the header `name`, in order.
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// The value of the auth-param `name` of a challenge.
fn param(challenge: &str, name: &str) -> String {
    let at = challenge
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {challenge}"));
    let rest = challenge[at + name.len() + 2..].trim_start_matches('"');
    rest.split(['"', ',']).next().unwrap_or("").to_string()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 `Authorization` value answering `challenge` (RFC 7616 §3.4.1, qop=auth).
fn sha256_credentials(challenge: &str, uri: &str, password: &str, nc: u32) -> String {
    let (realm, nonce, opaque) = (
        param(challenge, "realm"),
        param(challenge, "nonce"),
        param(challenge, "opaque"),
    );
    let cnonce = "e2e-cnonce";
    let nc = format!("{nc:08x}");
    let ha1 = sha256_hex(&format!("{USER}:{realm}:{password}"));
    let ha2 = sha256_hex(&format!("REGISTER:{uri}"));
    let response = sha256_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{USER}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=SHA-256, cnonce=\"{cnonce}\", qop=auth, nc={nc}, \
         opaque=\"{opaque}\""
    )
}

#[test]
fn sha256_offered_first_and_accepted_replay_refused() {
    let s = server(false);
    let mut phone = Phone::new(s.sip_addr());
    let uri = format!("sip:{}", s.sip_addr());

    let first = phone.register(600, None);
    assert_eq!(status_code(&first), Some(401), "{first}");
    let challenges = headers(&first, "WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "{first}");
    assert!(challenges[0].contains("algorithm=SHA-256"), "{first}");
    assert!(challenges[1].contains("algorithm=MD5"), "{first}");
    assert!(challenges[0].contains("qop=\"auth\""), "{first}");

    let creds = sha256_credentials(challenges[0], &uri, PASSWORD, 1);
    let ok = phone.register(600, Some(&creds));
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let contact = format!("<sip:{USER}@{}>;expires=600", phone.addr());
    assert_eq!(headers(&ok, "Contact"), vec![contact.as_str()], "{ok}");
    let live = wait_metric(
        &s,
        "caruso_sip_registrations",
        &[],
        Duration::from_secs(2),
        |v| v == 1.0,
    );
    assert_eq!(live, Some(1.0));

    // the same nonce-count again (a replayed request): challenged, not accepted
    let replay = phone.register(0, Some(&creds));
    assert_eq!(status_code(&replay), Some(401), "{replay}");
    // a wrong password: 403, no challenge
    let wrong = sha256_credentials(challenges[0], &uri, "guess", 2);
    let refused = phone.register(0, Some(&wrong));
    assert_eq!(status_code(&refused), Some(403), "{refused}");
    assert!(headers(&refused, "WWW-Authenticate").is_empty());
    assert_eq!(
        metric_sum(&s.metrics(), "caruso_sip_registrations", &[]),
        Some(1.0)
    );

    // the next count unregisters
    let bye = sha256_credentials(challenges[0], &uri, PASSWORD, 3);
    let done = phone.register(0, Some(&bye));
    assert_eq!(status_code(&done), Some(200), "{done}");
    assert!(headers(&done, "Contact").is_empty(), "{done}");
    let live = wait_metric(
        &s,
        "caruso_sip_registrations",
        &[],
        Duration::from_secs(2),
        |v| v == 0.0,
    );
    assert_eq!(live, Some(0.0));
}
