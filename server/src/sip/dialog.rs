//! SIP dialogs (RFC 3261 §12), sans-IO.
//!
//! A [`Dialog`] holds the state §12.1 defines (id, local/remote CSeq, URIs, remote target,
//! route set, secure flag) for one side of an INVITE dialog. Contract:
//!
//! - UAS: [`Dialog::new_uas`] from the INVITE (`Early`); [`Dialog::confirm`] when the 2xx
//!   is sent (an ACK through [`Dialog::handle_request`] also confirms it). Copy the
//!   request's Record-Route into the dialog-creating responses with [`copy_record_route`].
//! - UAC: [`Dialog::new_uac`] from the INVITE and a 101-299 response with a To tag
//!   (`Early` or `Confirmed`); later responses go through [`Dialog::handle_response`].
//! - In-dialog requests we send: [`Dialog::create_request`] (CSeq+1, Route and
//!   Request-URI per loose / strict routing, §12.2.1.1); the ACK for a 2xx:
//!   [`create_ack_for_2xx`]; where to send it: [`Dialog::next_hop`].
//! - In-dialog requests we receive: [`Dialog::handle_request`] (CSeq order, target
//!   refresh, BYE ends the dialog); an `Err` says which response to send (500, 481).
//!
//! ```text
//! let mut d = Dialog::new_uas(&invite, &new_tag(seed), &contact)?;
//! d.confirm();
//! let bye = d.create_request(Method::Bye, via, &contact);
//! ```

use crate::sip::message::{
    HeaderAccess, HeaderName, Headers, Method, NameAddr, ParseError, Request, Response, Uri, Via,
};

/// Why a dialog operation failed; each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A header a dialog needs is missing or malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The request creating a dialog has no Contact (RFC 3261 §8.1.1.8).
    #[error("dialog-creating request has no Contact")]
    MissingContact,
    /// Only 101-299 responses create dialogs, and a provisional needs a To tag (§12.1).
    #[error("response {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// The message's Call-ID / tags do not name this dialog (answer 481, §12.2.2).
    #[error("message does not belong to this dialog")]
    NotInDialog,
    /// The request's CSeq is lower than the last one seen (answer 500, §12.2.2).
    #[error("CSeq {received} is lower than the remote sequence number {remote}")]
    CSeqOutOfOrder {
        /// CSeq number of the request.
        received: u32,
        /// Highest CSeq number seen from the peer.
        remote: u32,
    },
    /// The dialog has ended; no more requests can be created or accepted in it.
    #[error("dialog is terminated")]
    Terminated,
}

/// The dialog identifier (§12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (To tag as UAS, From tag as UAC).
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent none).
    pub remote_tag: String,
}

/// Dialog states (§12: early after a provisional, confirmed after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response (or, as UAS, before the 2xx is sent).
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended by BYE, a non-2xx final to the initial INVITE, or a 481/408 (§12.2.1.2).
    Terminated,
}

/// One side of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// CSeq number of the last request we sent (0 = none yet as UAS).
    pub local_seq: u32,
    /// CSeq number of the last request the peer sent, if any.
    pub remote_seq: Option<u32>,
    /// Our address of record (From as UAC, To as UAS), without tag.
    pub local_uri: NameAddr,
    /// The peer's address of record, without tag.
    pub remote_uri: NameAddr,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route set, in the order requests use it.
    pub route_set: Vec<NameAddr>,
    /// Whether the dialog was created over `sips:`.
    pub secure: bool,
    /// Current state.
    pub state: DialogState,
}

/// A fresh tag (From / To `tag` parameter) mixed from `unique` (a counter or a number
/// drawn by the caller from a seeded RNG).
pub fn new_tag(unique: u64) -> String {
    format!(
        "{:016x}",
        crate::sip::transaction::mix64(unique ^ 0x5ca1_ab1e)
    )
}

fn without_tag(mut na: NameAddr) -> NameAddr {
    na.params.retain(|(n, _)| !n.eq_ignore_ascii_case("tag"));
    na
}

fn with_tag(na: &NameAddr, tag: &str) -> String {
    if tag.is_empty() {
        return na.to_string();
    }
    let mut s = na.to_string();
    s.push_str(";tag=");
    s.push_str(tag);
    s
}

/// All Record-Route values of a message, in order (a header line may hold several).
fn record_route(headers: &Headers) -> Result<Vec<NameAddr>, Error> {
    let mut out = Vec::new();
    for v in headers.get_all(&HeaderName::RecordRoute) {
        out.extend(NameAddr::parse_list(v)?);
    }
    Ok(out)
}

/// The first Contact URI of a message.
fn contact_uri(headers: &Headers) -> Result<Option<Uri>, Error> {
    match headers.get(&HeaderName::Contact) {
        None => Ok(None),
        Some(v) => Ok(NameAddr::parse_list(v)?.into_iter().next().map(|na| na.uri)),
    }
}

/// Copies every Record-Route of `request` into `response` (§12.1.1: the UAS copies them
/// into dialog-creating responses, in order).
pub fn copy_record_route(request: &Request, response: &mut Response) {
    for v in request.headers.get_all(&HeaderName::RecordRoute) {
        response.headers.push(HeaderName::RecordRoute, v);
    }
}

impl Dialog {
    /// The UAS side of the dialog an INVITE creates (§12.1.1): route set = Record-Route in
    /// order, remote target = Contact, remote CSeq = the INVITE's, local tag = ours.
    pub fn new_uas(
        invite: &Request,
        local_tag: &str,
        local_contact: &Uri,
    ) -> Result<Dialog, Error> {
        let _ = local_contact; // the TU puts it in its responses; kept in the signature for symmetry
        let call_id = invite.call_id()?.to_string();
        let from = invite.from_header()?;
        let to = invite.to_header()?;
        let cseq = invite.cseq()?;
        let remote_target = contact_uri(&invite.headers)?.ok_or(Error::MissingContact)?;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag: from.tag().unwrap_or_default().to_string(),
            },
            local_seq: 0,
            remote_seq: Some(cseq.seq),
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            remote_target,
            route_set: record_route(&invite.headers)?,
            secure: invite.uri.scheme.eq_ignore_ascii_case("sips"),
            state: DialogState::Early,
        })
    }

    /// The UAC side of the dialog a 101-299 response to `invite` creates (§12.1.2):
    /// route set = the response's Record-Route reversed, remote target = its Contact
    /// (the Request-URI when a provisional has none), local CSeq = the INVITE's.
    pub fn new_uac(invite: &Request, response: &Response) -> Result<Dialog, Error> {
        let status = response.status;
        let to = response.to_header()?;
        let remote_tag = to.tag().unwrap_or_default().to_string();
        if !(101..=299).contains(&status) || (status < 200 && remote_tag.is_empty()) {
            return Err(Error::NotDialogCreating(status));
        }
        let from = invite.from_header()?;
        let cseq = invite.cseq()?;
        let mut route_set = record_route(&response.headers)?;
        route_set.reverse();
        let remote_target = contact_uri(&response.headers)?.unwrap_or_else(|| invite.uri.clone());
        Ok(Dialog {
            id: DialogId {
                call_id: response.call_id()?.to_string(),
                local_tag: from.tag().unwrap_or_default().to_string(),
                remote_tag,
            },
            local_seq: cseq.seq,
            remote_seq: None,
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            remote_target,
            route_set,
            secure: invite.uri.scheme.eq_ignore_ascii_case("sips"),
            state: if status >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
        })
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Marks the dialog confirmed (UAS: when the 2xx is sent).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Marks the dialog terminated (BYE sent or answered, failure).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// A response from the UAS side of this dialog to `req` (the INVITE or an in-dialog
    /// request): `Response::for_request` with our tag in To; for a 101-299 to an INVITE
    /// (dialog-creating or target-refreshing) also the request's Record-Route (§12.1.1)
    /// and `contact` as Contact.
    pub fn create_response(
        &self,
        req: &Request,
        status: u16,
        reason: &str,
        contact: &Uri,
    ) -> Response {
        let mut r = Response::for_request(req, status, reason, Some(&self.id.local_tag));
        if req.method == Method::Invite && (101..=299).contains(&status) {
            copy_record_route(req, &mut r);
            r.headers.push(HeaderName::Contact, format!("<{contact}>"));
        }
        r
    }

    /// Whether a request belongs to this dialog: Call-ID, To tag = local tag, From tag =
    /// remote tag (§12.2.2).
    pub fn matches(&self, req: &Request) -> bool {
        req.call_id().is_ok_and(|c| c == self.id.call_id)
            && req
                .to_header()
                .is_ok_and(|t| t.tag().unwrap_or_default() == self.id.local_tag)
            && req
                .from_header()
                .is_ok_and(|f| f.tag().unwrap_or_default() == self.id.remote_tag)
    }

    /// Whether a response belongs to this dialog: Call-ID, From tag = local tag, To tag
    /// = remote tag.
    pub fn matches_response(&self, resp: &Response) -> bool {
        resp.call_id().is_ok_and(|c| c == self.id.call_id)
            && resp
                .from_header()
                .is_ok_and(|f| f.tag().unwrap_or_default() == self.id.local_tag)
            && resp
                .to_header()
                .is_ok_and(|t| t.tag().unwrap_or_default() == self.id.remote_tag)
    }

    /// Validates an in-dialog request from the peer (§12.2.2) and applies it: CSeq must
    /// not go backwards (`Err(CSeqOutOfOrder)`: answer 500), the remote CSeq is updated,
    /// a re-INVITE / UPDATE with a Contact refreshes the remote target, an ACK confirms
    /// an early UAS dialog, BYE terminates it. `Err(NotInDialog)`: answer 481.
    pub fn handle_request(&mut self, req: &Request) -> Result<(), Error> {
        if !self.matches(req) {
            return Err(Error::NotInDialog);
        }
        if self.state == DialogState::Terminated && req.method != Method::Ack {
            return Err(Error::Terminated);
        }
        let cseq = req.cseq()?;
        match req.method {
            Method::Ack => {
                self.confirm();
                return Ok(());
            }
            // CANCEL carries the INVITE's number and is handled by the transaction layer.
            Method::Cancel => return Ok(()),
            _ => {}
        }
        if let Some(remote) = self.remote_seq {
            if cseq.seq < remote {
                return Err(Error::CSeqOutOfOrder {
                    received: cseq.seq,
                    remote,
                });
            }
        }
        self.remote_seq = Some(cseq.seq);
        match req.method {
            Method::Invite | Method::Update => {
                if let Some(target) = contact_uri(&req.headers)? {
                    self.remote_target = target;
                }
            }
            Method::Bye => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(())
    }

    /// Applies a response to a request we sent in (or to create) this dialog: a 2xx to an
    /// INVITE confirms an early dialog (recomputing the route set, §13.2.2.4) and
    /// refreshes the remote target; a 300-699 to the initial INVITE of an early dialog,
    /// or a 481 / 408 to any request (§12.2.1.2), terminates it.
    pub fn handle_response(&mut self, resp: &Response) -> Result<(), Error> {
        if !self.matches_response(resp) {
            return Err(Error::NotInDialog);
        }
        let cseq = resp.cseq()?;
        let status = resp.status;
        if cseq.method == Method::Invite {
            if (200..=299).contains(&status) {
                if self.state == DialogState::Early {
                    let mut rs = record_route(&resp.headers)?;
                    rs.reverse();
                    self.route_set = rs;
                    self.state = DialogState::Confirmed;
                }
                if let Some(target) = contact_uri(&resp.headers)? {
                    self.remote_target = target;
                }
            } else if status >= 300 && self.state == DialogState::Early {
                self.state = DialogState::Terminated;
            }
        }
        if status == 481 || status == 408 {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// Where an in-dialog request is sent: the first route, else the remote target
    /// (resolve it to an address with RFC 3263 rules; a literal IP:port is used as is).
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&self.remote_target)
    }

    /// Builds an in-dialog request (§12.2.1.1): CSeq = local + 1 (not for ACK / CANCEL),
    /// Request-URI and Route from the remote target and route set (loose routing when
    /// the first route has `lr`, strict otherwise), From / To with our / their tags,
    /// `via` as the only Via, Contact for target-refreshing methods. Send it to
    /// [`Dialog::next_hop`].
    pub fn create_request(&mut self, method: Method, via: Via, contact: &Uri) -> Request {
        let seq = if matches!(method, Method::Ack | Method::Cancel) {
            self.local_seq
        } else {
            self.local_seq = self.local_seq.wrapping_add(1) & 0x7fff_ffff;
            self.local_seq
        };
        let with_contact = matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        );
        self.build(method, seq, via, with_contact.then_some(contact))
    }

    fn build(&self, method: Method, seq: u32, via: Via, contact: Option<&Uri>) -> Request {
        let mut h = Headers(Vec::with_capacity(8 + self.route_set.len()));
        h.push(HeaderName::Via, via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| r.uri.param("lr").is_some());
        let uri = if loose {
            for r in &self.route_set {
                h.push(HeaderName::Route, r.to_string());
            }
            self.remote_target.clone()
        } else {
            // Strict routing: the first route becomes the Request-URI (without the
            // parameters a Request-URI may not carry), the remote target the last Route.
            let mut first = self.route_set[0].uri.clone();
            first.headers = None;
            first
                .params
                .retain(|(n, _)| !n.eq_ignore_ascii_case("method"));
            for r in &self.route_set[1..] {
                h.push(HeaderName::Route, r.to_string());
            }
            h.push(HeaderName::Route, format!("<{}>", self.remote_target));
            first
        };
        h.push(
            HeaderName::From,
            with_tag(&self.local_uri, &self.id.local_tag),
        );
        h.push(
            HeaderName::To,
            with_tag(&self.remote_uri, &self.id.remote_tag),
        );
        h.push(HeaderName::CallId, self.id.call_id.as_str());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        if let Some(c) = contact {
            h.push(HeaderName::Contact, format!("<{c}>"));
        }
        Request {
            method,
            uri,
            headers: h,
            body: bytes::Bytes::new(),
        }
    }
}

/// The ACK for a 2xx to the INVITE with CSeq `invite_cseq` (§13.2.2.4): built like an
/// in-dialog request (same Request-URI / Route / tags) with CSeq `invite_cseq ACK` and
/// `via` (a new branch); the dialog's local CSeq does not move. Send it with
/// `TransactionLayer::send_stateless` to [`Dialog::next_hop`], again for each 2xx
/// retransmission.
pub fn create_ack_for_2xx(dialog: &Dialog, invite_cseq: u32, via: Via) -> Request {
    dialog.build(Method::Ack, invite_cseq, via, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::TransportKind;

    fn req(method: &str, lines: &[(&str, &str)]) -> Request {
        let mut h = Headers::default();
        for (n, v) in lines {
            h.push(HeaderName::from_wire(n), *v);
        }
        Request {
            method: Method::from_token(method),
            uri: Uri::parse("sip:100@127.0.0.1:5060").unwrap(),
            headers: h,
            body: bytes::Bytes::new(),
        }
    }

    fn invite() -> Request {
        req(
            "INVITE",
            &[
                ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKi1"),
                (
                    "Record-Route",
                    "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                ),
                ("Record-Route", "<sip:p3.example.com;lr>"),
                ("From", "\"Alice\" <sip:alice@example.com>;tag=a1"),
                ("To", "<sip:100@127.0.0.1>"),
                ("Call-ID", "c1@host"),
                ("CSeq", "7 INVITE"),
                ("Contact", "<sip:alice@10.0.0.1:5070>"),
            ],
        )
    }

    fn via(branch: &str) -> Via {
        Via {
            transport: TransportKind::Udp,
            host: "127.0.0.1".into(),
            port: Some(5060),
            branch: Some(branch.into()),
            received: None,
            rport: None,
            params: vec![],
        }
    }

    fn contact() -> Uri {
        Uri::parse("sip:100@127.0.0.1:5060").unwrap()
    }

    #[test]
    fn uas_dialog_from_invite() {
        let d = Dialog::new_uas(&invite(), "u1", &contact()).unwrap();
        assert_eq!(
            d.id,
            DialogId {
                call_id: "c1@host".into(),
                local_tag: "u1".into(),
                remote_tag: "a1".into()
            }
        );
        assert_eq!(d.remote_seq, Some(7));
        assert_eq!(d.local_seq, 0);
        assert_eq!(d.remote_target.to_string(), "sip:alice@10.0.0.1:5070");
        let rs: Vec<_> = d.route_set.iter().map(|r| r.uri.host.as_str()).collect();
        assert_eq!(rs, ["p1.example.com", "p2.example.com", "p3.example.com"]);
        assert_eq!(d.state, DialogState::Early);
        assert!(d.local_uri.tag().is_none());
        assert!(!d.secure);
    }

    #[test]
    fn uas_requires_contact() {
        let mut inv = invite();
        inv.headers.remove(&HeaderName::Contact);
        assert_eq!(
            Dialog::new_uas(&inv, "u1", &contact()),
            Err(Error::MissingContact)
        );
    }

    #[test]
    fn uas_bye_uses_loose_route_set_and_increments_cseq() {
        let mut d = Dialog::new_uas(&invite(), "u1", &contact()).unwrap();
        d.confirm();
        let bye = d.create_request(Method::Bye, via("z9hG4bKb"), &contact());
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:alice@10.0.0.1:5070");
        let routes: Vec<_> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            [
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p3.example.com;lr>"
            ]
        );
        assert_eq!(bye.cseq().unwrap().seq, 1);
        assert_eq!(bye.from_header().unwrap().tag(), Some("u1"));
        assert_eq!(bye.to_header().unwrap().tag(), Some("a1"));
        assert_eq!(bye.to_header().unwrap().display.as_deref(), Some("Alice"));
        assert_eq!(bye.call_id().unwrap(), "c1@host");
        assert!(bye.headers.get(&HeaderName::Contact).is_none());
        assert_eq!(d.next_hop().host, "p1.example.com");
        let reinvite = d.create_request(Method::Invite, via("z9hG4bKr"), &contact());
        assert_eq!(reinvite.cseq().unwrap().seq, 2);
        assert_eq!(
            reinvite.headers.get(&HeaderName::Contact),
            Some("<sip:100@127.0.0.1:5060>")
        );
    }

    #[test]
    fn strict_route_puts_first_route_in_request_uri() {
        let mut inv = invite();
        inv.headers.remove(&HeaderName::RecordRoute);
        inv.headers.push(
            HeaderName::RecordRoute,
            "<sip:strict.example.com;transport=udp>",
        );
        inv.headers
            .push(HeaderName::RecordRoute, "<sip:p2.example.com;lr>");
        let mut d = Dialog::new_uas(&inv, "u1", &contact()).unwrap();
        let bye = d.create_request(Method::Bye, via("z9hG4bKs"), &contact());
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com;transport=udp");
        let routes: Vec<_> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            ["<sip:p2.example.com;lr>", "<sip:alice@10.0.0.1:5070>"]
        );
    }

    fn response(status: u16, lines: &[(&str, &str)]) -> Response {
        let mut h = Headers::default();
        for (n, v) in lines {
            h.push(HeaderName::from_wire(n), *v);
        }
        Response {
            status,
            reason: "X".into(),
            headers: h,
            body: bytes::Bytes::new(),
        }
    }

    fn ok_200(tag: &str) -> Response {
        response(
            200,
            &[
                ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKi1"),
                (
                    "Record-Route",
                    "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                ),
                ("From", "\"Alice\" <sip:alice@example.com>;tag=a1"),
                ("To", &format!("<sip:100@127.0.0.1>;tag={tag}")),
                ("Call-ID", "c1@host"),
                ("CSeq", "7 INVITE"),
                ("Contact", "<sip:100@192.0.2.5:5060>"),
            ],
        )
    }

    #[test]
    fn uac_dialog_reverses_route_set_and_acks_2xx() {
        let inv = invite();
        let mut d = Dialog::new_uac(&inv, &ok_200("u9")).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.id.local_tag, "a1");
        assert_eq!(d.id.remote_tag, "u9");
        assert_eq!(d.local_seq, 7);
        assert_eq!(d.remote_seq, None);
        let rs: Vec<_> = d.route_set.iter().map(|r| r.uri.host.as_str()).collect();
        assert_eq!(rs, ["p2.example.com", "p1.example.com"]);
        let ack = create_ack_for_2xx(&d, 7, via("z9hG4bKack"));
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.get(&HeaderName::CSeq), Some("7 ACK"));
        assert_eq!(ack.uri.to_string(), "sip:100@192.0.2.5:5060");
        assert_eq!(ack.to_header().unwrap().tag(), Some("u9"));
        assert_eq!(d.local_seq, 7, "ACK does not use a new CSeq");
        let bye = d.create_request(Method::Bye, via("z9hG4bKb2"), &contact());
        assert_eq!(bye.cseq().unwrap().seq, 8);
        assert!(d.matches_response(&ok_200("u9")));
        assert!(!d.matches_response(&ok_200("other-fork")));
    }

    #[test]
    fn uac_early_dialog_confirmed_by_2xx_or_ended_by_failure() {
        let inv = invite();
        let mut ringing = ok_200("u9");
        ringing.status = 180;
        ringing.headers.remove(&HeaderName::Contact);
        ringing.headers.remove(&HeaderName::RecordRoute);
        let mut d = Dialog::new_uac(&inv, &ringing).unwrap();
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(
            d.remote_target, inv.uri,
            "no Contact: Request-URI stands in"
        );
        assert!(d.route_set.is_empty());
        d.handle_response(&ok_200("u9")).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.remote_target.host, "192.0.2.5");
        assert_eq!(d.route_set.len(), 2, "route set recomputed from the 2xx");

        let mut d = Dialog::new_uac(&inv, &ringing).unwrap();
        let mut busy = ok_200("u9");
        busy.status = 486;
        d.handle_response(&busy).unwrap();
        assert_eq!(d.state, DialogState::Terminated);

        let mut trying = ringing.clone();
        trying.status = 100;
        assert_eq!(
            Dialog::new_uac(&inv, &trying),
            Err(Error::NotDialogCreating(100))
        );
        let mut no_tag = ringing.clone();
        no_tag.headers.set(HeaderName::To, "<sip:100@127.0.0.1>");
        assert_eq!(
            Dialog::new_uac(&inv, &no_tag),
            Err(Error::NotDialogCreating(180))
        );
    }

    fn in_dialog(method: &str, seq: u32) -> Request {
        req(
            method,
            &[
                ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx"),
                ("From", "<sip:alice@example.com>;tag=a1"),
                ("To", "<sip:100@127.0.0.1>;tag=u1"),
                ("Call-ID", "c1@host"),
                ("CSeq", &format!("{seq} {method}")),
                ("Contact", "<sip:alice@10.0.0.99:5070>"),
            ],
        )
    }

    #[test]
    fn in_dialog_requests_checked_and_applied() {
        let mut d = Dialog::new_uas(&invite(), "u1", &contact()).unwrap();
        d.handle_request(&in_dialog("ACK", 7)).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(
            d.handle_request(&in_dialog("INFO", 6)),
            Err(Error::CSeqOutOfOrder {
                received: 6,
                remote: 7
            })
        );
        d.handle_request(&in_dialog("INVITE", 8)).unwrap();
        assert_eq!(d.remote_seq, Some(8));
        assert_eq!(
            d.remote_target.host, "10.0.0.99",
            "re-INVITE refreshes target"
        );
        let mut foreign = in_dialog("BYE", 9);
        foreign
            .headers
            .set(HeaderName::To, "<sip:100@127.0.0.1>;tag=zz");
        assert!(!d.matches(&foreign));
        assert_eq!(d.handle_request(&foreign), Err(Error::NotInDialog));
        d.handle_request(&in_dialog("BYE", 9)).unwrap();
        assert_eq!(d.state, DialogState::Terminated);
        assert_eq!(
            d.handle_request(&in_dialog("INFO", 10)),
            Err(Error::Terminated)
        );
    }

    #[test]
    fn copy_record_route_keeps_order() {
        let inv = invite();
        let mut resp = ok_200("u1");
        resp.headers.remove(&HeaderName::RecordRoute);
        copy_record_route(&inv, &mut resp);
        let rr: Vec<_> = resp.headers.get_all(&HeaderName::RecordRoute).collect();
        assert_eq!(
            rr,
            [
                "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                "<sip:p3.example.com;lr>"
            ]
        );
    }

    #[test]
    fn uas_response_carries_tag_record_route_and_contact() {
        let inv = invite();
        let d = Dialog::new_uas(&inv, "u1", &contact()).unwrap();
        let ok = d.create_response(&inv, 200, "OK", &contact());
        assert_eq!(ok.to_header().unwrap().tag(), Some("u1"));
        assert_eq!(ok.headers.get_all(&HeaderName::RecordRoute).count(), 2);
        assert_eq!(
            ok.headers.get(&HeaderName::Contact),
            Some("<sip:100@127.0.0.1:5060>")
        );
        // A UAC built from that 2xx sees the same route set, reversed.
        let uac = Dialog::new_uac(&inv, &ok).unwrap();
        let hosts: Vec<_> = uac.route_set.iter().map(|r| r.uri.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["p3.example.com", "p2.example.com", "p1.example.com"]
        );
        assert_eq!(uac.remote_target, contact());
        let busy = d.create_response(&inv, 486, "Busy Here", &contact());
        assert!(busy.headers.get(&HeaderName::Contact).is_none());
        assert_eq!(busy.headers.get_all(&HeaderName::RecordRoute).count(), 0);
    }

    #[test]
    fn new_tag_is_distinct_per_input() {
        assert_ne!(new_tag(1), new_tag(2));
        assert_eq!(new_tag(1).len(), 16);
    }
}
