//! Digest authentication of SIP requests (RFC 7616 with RFC 8760's SHA-256 for SIP),
//! sans-IO.
//!
//! Contract:
//!
//! - [`Challenger::challenges`] gives the `WWW-Authenticate` values of a 401: one per
//!   configured algorithm, SHA-256 before MD5 (RFC 8760 §2.4: most preferred first), all
//!   with the same realm, nonce and opaque, `qop="auth"`, and `stale=TRUE` when the
//!   previous credentials were right but their nonce was stale.
//! - Nonces are stateless: `<ms since the challenger started, 16 hex><HMAC-SHA-256 of
//!   that time, a counter and the realm under the server secret, 32 hex>`, the counter
//!   (16 hex) between them so that two clients challenged in the same millisecond do not
//!   share a nonce (and its nonce-counts); one is valid for
//!   [`AuthConfig::nonce_lifetime`] (300 s). A nonce from another secret (a restarted
//!   server) or too old, with an otherwise correct response, is [`AuthError::StaleNonce`]
//!   (the client retries with the new nonce without asking its user).
//! - [`Challenger::verify`] checks one `Authorization` value: `Digest`, our realm, an
//!   algorithm we offer (absent means MD5), `qop=auth` with `nc` and `cnonce`, a known
//!   user, the response (compared in constant time), then the nonce, then the
//!   nonce-count: each `nc` must be higher than the last one accepted with that nonce
//!   (the highest `nc` per nonce is kept in a map of at most
//!   [`AuthConfig::max_tracked_nonces`] entries; expired nonces are dropped first).
//! - `digest-uri` is used as sent (not compared with the Request-URI) and `auth-int`,
//!   `-sess` algorithms and `userhash` are not supported.
//!
//! ```text
//! let mut ch = Challenger::new(AuthConfig::new("example.com"), secret, now);
//! match ch.verify_request(now, &req, &credentials) {
//!     Ok(user) => ..., // user.name is authenticated
//!     Err(e) if e.rechallenge() => respond 401 with ch.challenges(now, e.is_stale()),
//!     Err(_) => respond 403,
//! }
//! ```

use crate::sip::message::{HeaderName, Request};
use sha2::Digest as _;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A digest algorithm we can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `SHA-256` (RFC 7616 §3.2, RFC 8760).
    Sha256,
    /// `MD5` (RFC 2617 / RFC 3261), kept for older phones.
    Md5,
}

impl Algorithm {
    /// The token written in `algorithm=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    /// Parses an `algorithm` token (case-insensitive); `None` for anything else,
    /// including the `-sess` variants.
    pub fn from_token(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `data` (H() of RFC 7616 §3.4.1).
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Sha256 => to_hex(&sha2::Sha256::digest(data.as_bytes())),
            Algorithm::Md5 => to_hex(&md5::Md5::digest(data.as_bytes())),
        }
    }
}

/// Where the passwords come from (the ACD's agents with `phone = { user, password }`).
pub trait Credentials: Send + Sync {
    /// The digest password of `user`, or `None` when there is no such user.
    fn password(&self, user: &str) -> Option<String>;
}

impl Credentials for HashMap<String, String> {
    fn password(&self, user: &str) -> Option<String> {
        self.get(user).cloned()
    }
}

/// Why credentials were not accepted; [`AuthError::rechallenge`] says whether to answer
/// 401 with a new challenge or 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header for our realm.
    #[error("no credentials")]
    NoCredentials,
    /// The `Authorization` value is not a usable digest response.
    #[error("malformed credentials: {0}")]
    Malformed(String),
    /// The credentials are for another realm.
    #[error("credentials for realm {0:?}, not ours")]
    BadRealm(String),
    /// The algorithm is not one we offer.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// No such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The response does not match (wrong password, or a tampered request).
    #[error("wrong digest response for user {0:?}")]
    WrongResponse(String),
    /// The response is right but the nonce has expired or is not one of ours
    /// (RFC 7616 §3.3: `stale=true`).
    #[error("stale nonce")]
    StaleNonce,
    /// The nonce-count was not higher than one already accepted with this nonce.
    #[error("nonce-count {nc:08x} replayed (last accepted {last:08x})")]
    ReplayedNonceCount {
        /// The request's `nc`.
        nc: u32,
        /// The highest `nc` accepted before.
        last: u32,
    },
    /// The `opaque` value is not the one we sent.
    #[error("opaque value is not ours")]
    BadOpaque,
}

impl AuthError {
    /// Whether the answer is a new challenge (401): missing, unusable or stale
    /// credentials, or a replay. Wrong password and unknown user get 403 instead
    /// (RFC 3261 §22.4: a UAC must not retry credentials just rejected).
    pub fn rechallenge(&self) -> bool {
        !matches!(
            self,
            AuthError::UnknownUser(_) | AuthError::WrongResponse(_)
        )
    }

    /// Whether the new challenge says `stale=TRUE`.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::StaleNonce)
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The digest `username`.
    pub name: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
}

/// Settings of the challenger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The realm (default: the SIP public host).
    pub realm: String,
    /// How long a nonce is accepted (300 s).
    pub nonce_lifetime: Duration,
    /// Algorithms offered, most preferred first (SHA-256, MD5).
    pub algorithms: Vec<Algorithm>,
    /// Nonces whose highest nonce-count is remembered (4096).
    pub max_tracked_nonces: usize,
}

impl AuthConfig {
    /// Defaults for `realm`: 300 s nonces, SHA-256 then MD5.
    pub fn new(realm: &str) -> Self {
        AuthConfig {
            realm: realm.to_string(),
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            max_tracked_nonces: 4096,
        }
    }
}

/// Issues challenges and verifies digest responses. See the module docs.
#[derive(Debug)]
pub struct Challenger {
    config: AuthConfig,
    secret: [u8; 32],
    epoch: Instant,
    opaque: String,
    /// Makes every nonce unique.
    issued: u64,
    /// Highest nonce-count accepted per nonce, with the nonce's timestamp (ms).
    counts: HashMap<String, (u32, u64)>,
}

impl Challenger {
    /// A challenger whose nonces are keyed by `secret` (draw it from a CSPRNG at start)
    /// and timed from `now`.
    pub fn new(config: AuthConfig, secret: [u8; 32], now: Instant) -> Self {
        let opaque = to_hex(&hmac_sha256(&secret, b"opaque")[..16]);
        Challenger {
            config,
            secret,
            epoch: now,
            opaque,
            issued: 0,
            counts: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn mac(&self, ts: u64, serial: u64) -> String {
        let mut msg = ts.to_be_bytes().to_vec();
        msg.extend_from_slice(&serial.to_be_bytes());
        msg.extend_from_slice(self.config.realm.as_bytes());
        to_hex(&hmac_sha256(&self.secret, &msg)[..16])
    }

    /// A fresh nonce for `now` (unique: a counter is part of it).
    pub fn nonce(&mut self, now: Instant) -> String {
        let ts = self.millis(now);
        self.issued = self.issued.wrapping_add(1);
        let serial = self.issued;
        format!("{ts:016x}{serial:016x}{}", self.mac(ts, serial))
    }

    /// The `WWW-Authenticate` values of a 401, most preferred algorithm first.
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        self.config
            .algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", opaque=\"{}\", algorithm={}, qop=\"auth\"",
                    self.config.realm,
                    self.opaque,
                    a.as_str()
                );
                if stale {
                    v.push_str(", stale=TRUE");
                }
                v
            })
            .collect()
    }

    /// Checks the request's `Authorization` header for our realm (a request may carry
    /// one per realm); [`AuthError::NoCredentials`] when there is none.
    pub fn verify_request(
        &mut self,
        now: Instant,
        req: &Request,
        credentials: &dyn Credentials,
    ) -> Result<User, AuthError> {
        let mut first_err = None;
        for value in req.headers.get_all(&HeaderName::Authorization) {
            match self.verify(now, req.method.as_str(), value, credentials) {
                Err(AuthError::BadRealm(r)) => {
                    first_err.get_or_insert(AuthError::BadRealm(r));
                }
                other => return other,
            }
        }
        Err(first_err.unwrap_or(AuthError::NoCredentials))
    }

    /// Verifies one `Authorization` value for a request with `method`.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        authorization: &str,
        credentials: &dyn Credentials,
    ) -> Result<User, AuthError> {
        let p = DigestParams::parse(authorization)?;
        let realm = p.get("realm")?;
        if realm != self.config.realm {
            return Err(AuthError::BadRealm(realm.to_string()));
        }
        let algorithm = match p.opt("algorithm") {
            None => Algorithm::Md5,
            Some(t) => Algorithm::from_token(t)
                .filter(|a| self.config.algorithms.contains(a))
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(t.to_string()))?,
        };
        if p.opt("userhash")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(AuthError::Malformed("userhash is not supported".into()));
        }
        let username = p.get("username")?;
        let nonce = p.get("nonce")?;
        let uri = p.get("uri")?;
        let response = p.get("response")?;
        let qop = p.get("qop")?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(AuthError::Malformed(format!("qop {qop:?}, expected auth")));
        }
        let cnonce = p.get("cnonce")?;
        let nc_text = p.get("nc")?;
        let nc = (nc_text.len() == 8)
            .then(|| u32::from_str_radix(nc_text, 16).ok())
            .flatten()
            .ok_or_else(|| AuthError::Malformed(format!("nc {nc_text:?} is not 8 hex digits")))?;
        if p.opt("opaque").is_some_and(|o| o != self.opaque) {
            return Err(AuthError::BadOpaque);
        }
        let password = credentials
            .password(username)
            .ok_or_else(|| AuthError::UnknownUser(username.to_string()))?;
        let expected = digest_response(&DigestInput {
            algorithm,
            username,
            realm,
            password: &password,
            method,
            uri,
            nonce,
            nc: nc_text,
            cnonce,
            qop: "auth",
        });
        if !constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(AuthError::WrongResponse(username.to_string()));
        }
        let ts = self.check_nonce(now, nonce)?;
        self.check_count(now, nonce, ts, nc)?;
        Ok(User {
            name: username.to_string(),
            algorithm,
        })
    }

    /// The nonce's timestamp if it is ours and fresh.
    fn check_nonce(&self, now: Instant, nonce: &str) -> Result<u64, AuthError> {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return Err(AuthError::StaleNonce);
        }
        let (ts_hex, rest) = nonce.split_at(16);
        let (serial_hex, mac) = rest.split_at(16);
        let ts = u64::from_str_radix(ts_hex, 16).map_err(|_| AuthError::StaleNonce)?;
        let serial = u64::from_str_radix(serial_hex, 16).map_err(|_| AuthError::StaleNonce)?;
        if !constant_time_eq(self.mac(ts, serial).as_bytes(), mac.as_bytes()) {
            return Err(AuthError::StaleNonce);
        }
        let age = self
            .millis(now)
            .checked_sub(ts)
            .ok_or(AuthError::StaleNonce)?;
        if u128::from(age) > self.config.nonce_lifetime.as_millis() {
            return Err(AuthError::StaleNonce);
        }
        Ok(ts)
    }

    fn check_count(
        &mut self,
        now: Instant,
        nonce: &str,
        ts: u64,
        nc: u32,
    ) -> Result<(), AuthError> {
        if let Some((last, _)) = self.counts.get_mut(nonce) {
            if nc <= *last {
                return Err(AuthError::ReplayedNonceCount { nc, last: *last });
            }
            *last = nc;
            return Ok(());
        }
        if self.counts.len() >= self.config.max_tracked_nonces.max(1) {
            let lifetime =
                u64::try_from(self.config.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
            let oldest_valid = self.millis(now).saturating_sub(lifetime);
            self.counts.retain(|_, (_, t)| *t >= oldest_valid);
            if self.counts.len() >= self.config.max_tracked_nonces.max(1) {
                let oldest = self
                    .counts
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.counts.remove(&k);
                }
            }
        }
        self.counts.insert(nonce.to_string(), (nc, ts));
        Ok(())
    }

    /// Nonces whose nonce-count is tracked now.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }
}

/// The inputs of a `qop=auth` digest response (RFC 7616 §3.4.1).
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `username`.
    pub username: &'a str,
    /// `realm`.
    pub realm: &'a str,
    /// The password.
    pub password: &'a str,
    /// Request method.
    pub method: &'a str,
    /// `uri` (digest-uri).
    pub uri: &'a str,
    /// `nonce`.
    pub nonce: &'a str,
    /// `nc`, as the 8 hex digits sent.
    pub nc: &'a str,
    /// `cnonce`.
    pub cnonce: &'a str,
    /// `qop` (`auth`).
    pub qop: &'a str,
}

/// `H(H(A1):nonce:nc:cnonce:qop:H(A2))` with `A1 = user:realm:password`, `A2 = method:uri`.
pub fn digest_response(i: &DigestInput<'_>) -> String {
    let ha1 = i
        .algorithm
        .hex(&format!("{}:{}:{}", i.username, i.realm, i.password));
    let ha2 = i.algorithm.hex(&format!("{}:{}", i.method, i.uri));
    i.algorithm.hex(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        i.nonce, i.nc, i.cnonce, i.qop
    ))
}

/// The auth-params of a `Digest` credentials value.
#[derive(Debug)]
struct DigestParams<'a>(Vec<(&'a str, String)>);

impl<'a> DigestParams<'a> {
    fn parse(value: &'a str) -> Result<Self, AuthError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::Malformed(format!(
                "scheme {scheme:?}, expected Digest"
            )));
        }
        let bad = |why: &str| AuthError::Malformed(why.to_string());
        let mut out = Vec::new();
        let mut s = rest.trim_start();
        while !s.is_empty() {
            let eq = s.find('=').ok_or_else(|| bad("auth-param without '='"))?;
            let name = s[..eq].trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_*".contains(&b))
            {
                return Err(bad("auth-param name is not a token"));
            }
            s = s[eq + 1..].trim_start();
            let val;
            if let Some(q) = s.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, e)) => v.push(e),
                            None => break,
                        },
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => v.push(c),
                    }
                }
                let end = end.ok_or_else(|| bad("unterminated quoted-string"))?;
                val = v;
                s = q[end + 1..].trim_start();
            } else {
                let end = s.find(',').unwrap_or(s.len());
                val = s[..end].trim().to_string();
                s = &s[end..];
            }
            out.push((name, val));
            match s.strip_prefix(',') {
                Some(r) => s = r.trim_start(),
                None if s.is_empty() => {}
                None => return Err(bad("expected ',' between auth-params")),
            }
        }
        Ok(DigestParams(out))
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, name: &str) -> Result<&str, AuthError> {
        self.opt(name)
            .ok_or_else(|| AuthError::Malformed(format!("{name} missing")))
    }
}

/// HMAC-SHA-256 (RFC 2104) of `msg` under a 32-byte key.
fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = sha2::Sha256::new().chain(ipad).chain(msg).finalize();
    let outer = sha2::Sha256::new().chain(opad).chain(inner).finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: GET /dir/index.html as Mufasa / "Circle of Life".
    fn rfc7616_input(algorithm: Algorithm) -> DigestInput<'static> {
        DigestInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            qop: "auth",
        }
    }

    #[test]
    fn rfc7616_section_3_9_1_vectors() {
        assert_eq!(
            digest_response(&rfc7616_input(Algorithm::Md5)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            digest_response(&rfc7616_input(Algorithm::Sha256)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_test_case_1() {
        // RFC 4231 test case 1 uses a 20-byte key; with our fixed 32-byte key we check
        // the construction against a key padded with zeros (HMAC pads keys with zeros).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            to_hex(&hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    fn users() -> HashMap<String, String> {
        HashMap::from([("alice".to_string(), "s3cret".to_string())])
    }

    fn challenger(now: Instant) -> Challenger {
        Challenger::new(AuthConfig::new("caruso.test"), [7u8; 32], now)
    }

    /// Parameters of a challenge value.
    fn challenge_params(v: &str) -> HashMap<String, String> {
        DigestParams::parse(v)
            .unwrap()
            .0
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Authorization for `user`/`password` answering `challenge`.
    fn answer(challenge: &str, user: &str, password: &str, nc: u32) -> String {
        let c = challenge_params(challenge);
        let algorithm = Algorithm::from_token(&c["algorithm"]).unwrap();
        let nc = format!("{nc:08x}");
        let uri = "sip:caruso.test";
        let response = digest_response(&DigestInput {
            algorithm,
            username: user,
            realm: &c["realm"],
            password,
            method: "REGISTER",
            uri,
            nonce: &c["nonce"],
            nc: &nc,
            cnonce: "0a4f113b",
            qop: "auth",
        });
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, cnonce=\"0a4f113b\", qop=auth, nc={nc}, \
             opaque=\"{}\"",
            c["realm"],
            c["nonce"],
            algorithm.as_str(),
            c["opaque"]
        )
    }

    #[test]
    fn challenges_offer_sha256_before_md5_with_one_nonce() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = ch.challenges(t0, false);
        assert_eq!(c.len(), 2);
        let (a, b) = (challenge_params(&c[0]), challenge_params(&c[1]));
        assert_eq!(a["algorithm"], "SHA-256");
        assert_eq!(b["algorithm"], "MD5");
        assert_eq!(a["nonce"], b["nonce"]);
        assert_eq!(a["realm"], "caruso.test");
        assert_eq!(a["qop"], "auth");
        assert!(!a.contains_key("stale"));
        assert_eq!(
            challenge_params(&ch.challenges(t0, true)[0])["stale"],
            "TRUE"
        );
        // another secret makes other nonces and opaques
        let mut other = Challenger::new(AuthConfig::new("caruso.test"), [8u8; 32], t0);
        let o = challenge_params(&other.challenges(t0, false)[0]);
        assert_ne!(o["nonce"], a["nonce"]);
        assert_ne!(o["opaque"], a["opaque"]);
    }

    #[test]
    fn sha256_and_md5_answers_verify() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let challenges = ch.challenges(t0, false);
        // both challenges share one nonce: the second answer needs a higher nc
        for (i, (c, want)) in challenges
            .iter()
            .zip([Algorithm::Sha256, Algorithm::Md5])
            .enumerate()
        {
            let nc = u32::try_from(i).unwrap() + 1;
            let user = ch
                .verify(t0, "REGISTER", &answer(c, "alice", "s3cret", nc), &users())
                .unwrap();
            assert_eq!(user.name, "alice");
            assert_eq!(user.algorithm, want);
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_other_method_are_refused_without_challenge() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = &ch.challenges(t0, false)[0];
        let e = ch
            .verify(t0, "REGISTER", &answer(c, "alice", "guess", 1), &users())
            .unwrap_err();
        assert_eq!(e, AuthError::WrongResponse("alice".into()));
        assert!(!e.rechallenge());
        let e = ch
            .verify(t0, "REGISTER", &answer(c, "mallory", "x", 1), &users())
            .unwrap_err();
        assert_eq!(e, AuthError::UnknownUser("mallory".into()));
        assert!(!e.rechallenge());
        // computed for REGISTER, presented on INVITE
        let e = ch
            .verify(t0, "INVITE", &answer(c, "alice", "s3cret", 1), &users())
            .unwrap_err();
        assert_eq!(e, AuthError::WrongResponse("alice".into()));
    }

    #[test]
    fn expired_or_foreign_nonce_with_right_password_is_stale() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = ch.challenges(t0, false)[0].clone();
        let auth = answer(&c, "alice", "s3cret", 1);
        let late = t0 + Duration::from_secs(301);
        let e = ch.verify(late, "REGISTER", &auth, &users()).unwrap_err();
        assert_eq!(e, AuthError::StaleNonce);
        assert!(e.rechallenge() && e.is_stale());
        // still valid at the end of its lifetime
        let at_limit = t0 + Duration::from_secs(300);
        assert!(ch.verify(at_limit, "REGISTER", &auth, &users()).is_ok());
        // a nonce from a server with another secret (restarted): stale, not wrong
        let mut other = Challenger::new(AuthConfig::new("caruso.test"), [9u8; 32], t0);
        let foreign = answer(&other.challenges(t0, false)[0], "alice", "s3cret", 1);
        let foreign = foreign.replace(
            &challenge_params(&other.challenges(t0, false)[0])["opaque"],
            &challenge_params(&c)["opaque"],
        );
        assert_eq!(
            ch.verify(t0, "REGISTER", &foreign, &users()),
            Err(AuthError::StaleNonce)
        );
        // but a wrong password with a stale nonce is still wrong
        let wrong = answer(&c, "alice", "nope", 2);
        assert_eq!(
            ch.verify(late, "REGISTER", &wrong, &users()),
            Err(AuthError::WrongResponse("alice".into()))
        );
    }

    #[test]
    fn nonce_count_must_increase() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = ch.challenges(t0, false)[0].clone();
        assert!(ch
            .verify(t0, "REGISTER", &answer(&c, "alice", "s3cret", 1), &users())
            .is_ok());
        assert_eq!(
            ch.verify(t0, "REGISTER", &answer(&c, "alice", "s3cret", 1), &users()),
            Err(AuthError::ReplayedNonceCount { nc: 1, last: 1 })
        );
        assert!(ch
            .verify(t0, "REGISTER", &answer(&c, "alice", "s3cret", 3), &users())
            .is_ok());
        assert_eq!(
            ch.verify(t0, "REGISTER", &answer(&c, "alice", "s3cret", 2), &users()),
            Err(AuthError::ReplayedNonceCount { nc: 2, last: 3 })
        );
        assert_eq!(ch.tracked_nonces(), 1);
    }

    #[test]
    fn tracked_nonces_are_bounded_expired_first() {
        let t0 = Instant::now();
        let mut config = AuthConfig::new("caruso.test");
        config.max_tracked_nonces = 3;
        let mut ch = Challenger::new(config, [7u8; 32], t0);
        let mut issued = Vec::new();
        for i in 0..5u64 {
            let t = t0 + Duration::from_millis(i * 10);
            let c = ch.challenges(t, false)[0].clone();
            assert!(ch
                .verify(t, "REGISTER", &answer(&c, "alice", "s3cret", 1), &users())
                .is_ok());
            issued.push(c);
            assert!(ch.tracked_nonces() <= 3);
        }
        let t = t0 + Duration::from_millis(50);
        // a recent nonce keeps its count
        assert!(matches!(
            ch.verify(
                t,
                "REGISTER",
                &answer(&issued[4], "alice", "s3cret", 1),
                &users()
            ),
            Err(AuthError::ReplayedNonceCount { .. })
        ));
        // the oldest was evicted to make room (its count is forgotten)
        assert!(ch
            .verify(
                t,
                "REGISTER",
                &answer(&issued[0], "alice", "s3cret", 1),
                &users()
            )
            .is_ok());
        // once expired, tracked entries are dropped before anything else
        let late = t0 + Duration::from_secs(400);
        let fresh = ch.challenges(late, false)[0].clone();
        assert!(ch
            .verify(
                late,
                "REGISTER",
                &answer(&fresh, "alice", "s3cret", 1),
                &users()
            )
            .is_ok());
        assert_eq!(ch.tracked_nonces(), 1);
    }

    #[test]
    fn two_clients_challenged_at_once_get_their_own_nonce() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let a = ch.challenges(t0, false)[0].clone();
        let b = ch.challenges(t0, false)[0].clone();
        assert_ne!(challenge_params(&a)["nonce"], challenge_params(&b)["nonce"]);
        assert!(ch
            .verify(t0, "REGISTER", &answer(&a, "alice", "s3cret", 1), &users())
            .is_ok());
        assert!(ch
            .verify(t0, "REGISTER", &answer(&b, "alice", "s3cret", 1), &users())
            .is_ok());
    }

    #[test]
    fn realm_algorithm_opaque_and_syntax_errors_are_named() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = ch.challenges(t0, false)[0].clone();
        let good = answer(&c, "alice", "s3cret", 1);
        let cases = [
            (
                good.replace("caruso.test", "other.test"),
                AuthError::BadRealm("other.test".into()),
            ),
            (
                good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
                AuthError::UnsupportedAlgorithm("SHA-512-256".into()),
            ),
            (
                good.replace("algorithm=SHA-256", "algorithm=MD5-sess"),
                AuthError::UnsupportedAlgorithm("MD5-sess".into()),
            ),
            (
                good.replace("Digest", "Basic"),
                AuthError::Malformed("scheme \"Basic\", expected Digest".into()),
            ),
            (
                good.replace(", qop=auth", ""),
                AuthError::Malformed("qop missing".into()),
            ),
            (
                good.replace("nc=00000001", "nc=1"),
                AuthError::Malformed("nc \"1\" is not 8 hex digits".into()),
            ),
            (
                good.replace("response=\"", "response=\"0"),
                AuthError::WrongResponse("alice".into()),
            ),
            (
                good.replace("opaque=\"", "opaque=\"x"),
                AuthError::BadOpaque,
            ),
            (
                "Digest username=\"alice".to_string(),
                AuthError::Malformed("unterminated quoted-string".into()),
            ),
        ];
        for (auth, want) in cases {
            assert_eq!(
                ch.verify(t0, "REGISTER", &auth, &users()),
                Err(want),
                "{auth}"
            );
        }
        // MD5 not offered: refused even though the hash is right
        let mut only_sha = AuthConfig::new("caruso.test");
        only_sha.algorithms = vec![Algorithm::Sha256];
        let mut ch2 = Challenger::new(only_sha, [7u8; 32], t0);
        let md5 = answer(
            &challenger(t0).challenges(t0, false)[1],
            "alice",
            "s3cret",
            1,
        );
        assert_eq!(
            ch2.verify(t0, "REGISTER", &md5, &users()),
            Err(AuthError::UnsupportedAlgorithm("MD5".into()))
        );
        assert_eq!(ch2.challenges(t0, false).len(), 1);
    }

    #[test]
    fn absent_algorithm_means_md5_and_response_case_is_ignored() {
        let t0 = Instant::now();
        let mut ch = challenger(t0);
        let c = ch.challenges(t0, false)[1].clone();
        let auth = answer(&c, "alice", "s3cret", 1).replace(", algorithm=MD5", "");
        let p = challenge_params(&auth);
        let upper = auth.replace(&p["response"], &p["response"].to_uppercase());
        let user = ch.verify(t0, "REGISTER", &upper, &users()).unwrap();
        assert_eq!(user.algorithm, Algorithm::Md5);
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
