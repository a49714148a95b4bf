//! SIP transports (RFC 3261 §18): UDP and TCP sockets, parsing, and the way back to a peer.
//!
//! Receive side: one task per UDP socket and one reader task per TCP connection parse what
//! arrives and hand each message, with the [`Link`] to answer on, to the endpoint through a
//! bounded channel. They never wait on a call: when the endpoint's queue is full the
//! message is dropped and counted (UDP peers retransmit).
//!
//! Send side: [`Link::send`] writes to a UDP socket or a TCP connection's writer task,
//! after checking the destination against the allow-list (`network.allow`).
//!
//! A request that cannot be parsed is answered `400` (or `505` for a wrong version) with
//! the parse error as reason phrase, built leniently from the raw header lines; a
//! malformed response is dropped.

use crate::config::AllowList;
use crate::metrics as m;
use crate::sip::message::{
    error_response, parse_datagram, parse_frame, Framer, HeaderName, ParseError, SipMessage,
    TransportKind,
};
use crate::sip::transaction::Peer;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A listen socket could not be bound.
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        /// UDP or TCP.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The destination is not in `network.allow`.
    #[error("destination {0} is outside network.allow")]
    Denied(SocketAddr),
    /// The TCP connection is gone.
    #[error("TCP connection to {0} is closed")]
    Closed(SocketAddr),
    /// The OS refused to send.
    #[error("send to {addr} failed: {source}")]
    Io {
        /// Destination.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The way back to a peer: the UDP socket a message came in on, or its TCP connection.
#[derive(Debug, Clone)]
pub enum Link {
    /// A shared UDP socket.
    Udp(Arc<UdpSocket>),
    /// The writer of one TCP connection.
    Tcp(mpsc::Sender<Bytes>),
}

impl Link {
    /// Sends wire bytes to `to`, if the allow-list permits.
    pub async fn send(
        &self,
        allow: &AllowList,
        to: SocketAddr,
        data: Bytes,
    ) -> Result<(), TransportError> {
        if !allow.permits(to.ip()) {
            metrics::counter!(m::DESTINATION_DENIED, "kind" => "sip").increment(1);
            warn!(dest = %to, "not sending SIP: destination outside network.allow");
            return Err(TransportError::Denied(to));
        }
        match self {
            Link::Udp(sock) => sock
                .send_to(&data, to)
                .await
                .map(|_| ())
                .map_err(|source| TransportError::Io { addr: to, source }),
            Link::Tcp(tx) => tx.try_send(data).map_err(|_| TransportError::Closed(to)),
        }
    }

    /// The transport kind of this link.
    pub fn kind(&self) -> TransportKind {
        match self {
            Link::Udp(_) => TransportKind::Udp,
            Link::Tcp(_) => TransportKind::Tcp,
        }
    }
}

/// A parsed message as it reaches the endpoint.
#[derive(Debug)]
pub struct Inbound {
    /// The message.
    pub message: SipMessage,
    /// Who sent it and on which transport.
    pub from: Peer,
    /// How to answer.
    pub link: Link,
}

/// Settings shared by the transport tasks.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Largest message accepted.
    pub max_message_size: usize,
    /// Destination allow-list.
    pub allow: AllowList,
    /// `Server` header for the 400s the transport writes itself.
    pub server_header: String,
}

/// Binds the UDP socket and spawns its receive loop.
pub async fn start_udp(
    addr: SocketAddr,
    settings: TransportSettings,
    to_endpoint: mpsc::Sender<Inbound>,
) -> Result<Arc<UdpSocket>, TransportError> {
    let sock = bind_udp(addr).map_err(|source| TransportError::Bind {
        transport: "UDP",
        addr,
        source,
    })?;
    let sock = Arc::new(sock);
    info!(%addr, "SIP UDP listening");
    let s = sock.clone();
    tokio::spawn(async move { udp_loop(s, settings, to_endpoint).await });
    Ok(sock)
}

/// Receive buffer asked for on the SIP UDP socket: bursts of requests must wait in the
/// kernel, not be dropped, while the runtime is busy (the kernel caps it at
/// `net.core.rmem_max`).
const SIP_UDP_RCVBUF: usize = 4 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = sock.set_recv_buffer_size(SIP_UDP_RCVBUF) {
        warn!(error = %e, "cannot enlarge the SIP UDP receive buffer");
    }
    let _ = sock.set_send_buffer_size(SIP_UDP_RCVBUF);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

async fn udp_loop(
    sock: Arc<UdpSocket>,
    settings: TransportSettings,
    to_endpoint: mpsc::Sender<Inbound>,
) {
    // One datagram larger than the limit is truncated by the OS read; we detect it below.
    let mut buf = vec![0u8; settings.max_message_size + 1];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable shows up as ConnectionReset on some systems.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            continue; // keep-alive
        }
        let peer = Peer {
            addr: from,
            transport: TransportKind::Udp,
        };
        let result = if n > settings.max_message_size {
            Err(ParseError::TooLarge(n))
        } else {
            parse_datagram(data)
        };
        match result {
            Ok(message) => {
                let inbound = Inbound {
                    message,
                    from: peer,
                    link: Link::Udp(sock.clone()),
                };
                if to_endpoint.try_send(inbound).is_err() {
                    metrics::counter!(m::SIP_DROPPED_OVERLOAD).increment(1);
                    warn!(%from, "endpoint queue full: SIP message dropped");
                }
            }
            Err(err) => {
                metrics::counter!(m::SIP_PARSE_ERRORS, "transport" => "udp").increment(1);
                debug!(%from, error = %err, "malformed SIP datagram");
                if let Some(resp) = reject_malformed(data, &err, &settings.server_header) {
                    let _ = Link::Udp(sock.clone())
                        .send(&settings.allow, from, resp.into())
                        .await;
                }
            }
        }
    }
}

/// Binds the TCP listener and spawns its accept loop.
pub async fn start_tcp(
    addr: SocketAddr,
    settings: TransportSettings,
    to_endpoint: mpsc::Sender<Inbound>,
) -> Result<(), TransportError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TransportError::Bind {
            transport: "TCP",
            addr,
            source,
        })?;
    info!(%addr, "SIP TCP listening");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(tcp_connection(
                        stream,
                        from,
                        settings.clone(),
                        to_endpoint.clone(),
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(())
}

/// How long a TCP connection may stay silent before it is closed.
const TCP_IDLE: Duration = Duration::from_secs(300);

async fn tcp_connection(
    stream: TcpStream,
    from: SocketAddr,
    settings: TransportSettings,
    to_endpoint: mpsc::Sender<Inbound>,
) {
    debug!(%from, "TCP connection accepted");
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let peer = Peer {
        addr: from,
        transport: TransportKind::Tcp,
    };
    let mut framer = Framer::with_max_size(settings.max_message_size);
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = match tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(%from, error = %e, "TCP read error");
                break;
            }
        };
        framer.push(&buf[..n]);
        while let Some(frame) = framer.next_frame() {
            let frame = match frame {
                Ok(f) => f,
                Err(err) => {
                    // The stream cannot be framed any more: answer the offending message
                    // (from its own bytes) and close.
                    metrics::counter!(m::SIP_PARSE_ERRORS, "transport" => "tcp").increment(1);
                    warn!(%from, error = %err, "unframeable SIP on TCP: closing the connection");
                    if let Some(resp) =
                        reject_malformed(framer.unframed(), &err, &settings.server_header)
                    {
                        let _ = Link::Tcp(tx.clone())
                            .send(&settings.allow, from, resp.into())
                            .await;
                    }
                    break 'conn;
                }
            };
            match parse_frame(&frame) {
                Ok(message) => {
                    let inbound = Inbound {
                        message,
                        from: peer,
                        link: Link::Tcp(tx.clone()),
                    };
                    if to_endpoint.send(inbound).await.is_err() {
                        break 'conn;
                    }
                }
                Err(err) => {
                    // One well-framed but malformed message: answer it, keep the connection.
                    metrics::counter!(m::SIP_PARSE_ERRORS, "transport" => "tcp").increment(1);
                    debug!(%from, error = %err, "malformed SIP message on TCP");
                    if let Some(resp) = reject_malformed(&frame, &err, &settings.server_header) {
                        let _ = Link::Tcp(tx.clone())
                            .send(&settings.allow, from, resp.into())
                            .await;
                    }
                }
            }
        }
    }
    drop(tx);
    // Let queued responses drain before the writer closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    debug!(%from, "TCP connection closed");
}

/// The answer to a request that failed to parse ([`error_response`]: `505` for a wrong
/// SIP version, `400` with the parse error as reason phrase, headers copied leniently),
/// with our `Server` header, as wire bytes. `None` for responses and ACKs (never
/// answered) and for bytes without a readable Via.
pub fn reject_malformed(raw: &[u8], err: &ParseError, server: &str) -> Option<Vec<u8>> {
    let first_word = raw
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| !b.is_ascii_whitespace())
        .copied()
        .collect::<Vec<u8>>();
    if first_word.eq_ignore_ascii_case(b"ACK") {
        return None;
    }
    let tag = format!("{:08x}", rand::random::<u32>());
    let mut resp = error_response(raw, err, Some(&tag))?;
    // The reason phrase comes from error text that may quote the peer's bytes: one line,
    // printable, bounded (no response splitting).
    resp.reason = resp
        .reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    resp.headers.push(HeaderName::Server, server);
    metrics::counter!(m::SIP_RESPONSES_SENT, "status" => resp.status.to_string(), "method" => "malformed").increment(1);
    Some(resp.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_request_gets_400_with_reason_and_copied_headers() {
        let raw = b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n";
        let err = ParseError::ContentLength {
            declared: 99,
            actual: 0,
        };
        let out = String::from_utf8(reject_malformed(raw, &err, "caruso").unwrap()).unwrap();
        assert!(
            out.starts_with("SIP/2.0 400 Content-Length 99 but 0 body bytes\r\n"),
            "{out}"
        );
        assert!(out.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"));
        assert!(out.contains("Call-ID: x\r\n"));
        assert!(out.contains("CSeq: 1 INVITE\r\n"));
        assert!(out.contains("Server: caruso\r\n"));
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn wrong_version_gets_505() {
        let raw =
            b"OPTIONS sip:t@x SIP/7.0\r\nVia: SIP/7.0/UDP h;branch=z9hG4bK2\r\nCall-ID: y\r\n\r\n";
        let out = reject_malformed(raw, &ParseError::Version("SIP/7.0".into()), "c").unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("SIP/2.0 505 "));
    }

    #[test]
    fn responses_acks_and_garbage_are_not_answered() {
        let e = ParseError::StartLine("x".into());
        assert!(reject_malformed(b"SIP/2.0 200 OK\r\nVia: a\r\n\r\n", &e, "c").is_none());
        assert!(reject_malformed(b"ACK sip:a@b SIP/2.0\r\nVia: a\r\n\r\n", &e, "c").is_none());
        assert!(reject_malformed(b"\xff\xfe\x00garbage", &e, "c").is_none());
        assert!(reject_malformed(b"", &e, "c").is_none());
    }

    #[test]
    fn control_characters_never_reach_the_reason_phrase() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\n\r\n";
        let err = ParseError::HeaderLine("bad\r\nInjected: yes".into());
        let out = String::from_utf8(reject_malformed(raw, &err, "c").unwrap()).unwrap();
        assert!(!out.contains("\r\nInjected"), "{out}");
    }
}
