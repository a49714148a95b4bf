//! Load and loss: 200 calls at 20 calls/s over UDP and TCP with 0 failed calls, and
//! every call completing when SIPp drops 10% of the packets (`-lost 10`).

use std::time::Duration;

use caruso_e2e::*;

/// RTP ports for ~40 concurrent calls (a call holds one port pair).
const PORTS: u16 = 400;

fn load(transport: Transport) {
    let ports = Ports::block(PORTS);
    // A 5 s prompt; the caller hangs up after 1 s, so the server never sends BYE here.
    let server = Server::start(ServerConfig::new(ports).number("100", 5.0, 0));
    let res = Sipp::new(&server, "uac_load.xml")
        .transport(transport)
        .calls(200)
        .rate(20)
        .limit(100)
        .timeout(Duration::from_secs(60))
        .run();
    assert!(
        res.all_succeeded(200),
        "200 calls at 20 cps, none may fail\n{res}"
    );
    let m = server.metrics();
    let invites = metric_sum(
        &m,
        "caruso_sip_requests_received_total",
        &["method=\"INVITE\""],
    );
    assert!(
        invites.is_some_and(|n| n >= 200.0),
        "the server counts the INVITEs it got: {invites:?}"
    );
    // Every call ended: none is left active once SIPp is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let active = metric_sum(&server.metrics(), "caruso_calls_active", &[]).unwrap_or(-1.0);
        if active == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "caruso_calls_active is {active} after all calls ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn load_200_calls_20cps_udp() {
    load(Transport::Udp);
}

#[test]
fn load_200_calls_20cps_tcp() {
    load(Transport::Tcp);
}

#[test]
fn packet_loss_10_percent_calls_complete() {
    let ports = Ports::block(PORTS);
    let server = Server::start(ServerConfig::new(ports).number("100", 10.0, 0));
    let res = Sipp::new(&server, "uac_load.xml")
        .calls(30)
        .rate(5)
        .lost(10)
        .timeout(Duration::from_secs(90))
        .run();
    assert!(
        res.all_succeeded(30),
        "with 10% loss every call must still complete (retransmissions)\n{res}"
    );
}
