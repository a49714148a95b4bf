//! Authorization of the whole gRPC API: one tower layer in front of every service,
//! keyed by the gRPC path `/<package>.<Service>/<Method>`.
//!
//! Contract:
//! - Every RPC except `grpc.health.v1.Health` and server reflection carries
//!   `authorization: Bearer <token>`. The token is looked up in a [`TokenTable`] built from
//!   the config (`[[api.tokens]]` with roles supervisor, integrator, admin; every
//!   `[acd.agents]` token with role agent and its agent id) and replaced on config reload
//!   (the layer reads an `Arc<AuthPolicy>` from a `watch` channel per request).
//! - One table, [`RULES`], says which roles may call which service or method; a
//!   `caruso.v1` path (or any other) that the table does not name is admin only.
//! - Missing, malformed or unknown token: `UNAUTHENTICATED`. A known token whose role the
//!   path does not allow: `PERMISSION_DENIED`, naming the roles needed. No message or log
//!   line ever contains a token.
//! - The resolved [`Principal`] (role, agent id) is put into the request's extensions;
//!   services read it with [`principal`] (an agent token acts only for its own agent).
//! - Authentication failures are logged at warn (peer, path, reason) and counted per peer
//!   IP by the sans-IO [`FailureLimiter`]: after `max_failures` within `window`, every
//!   further request from that IP (except health and reflection) gets
//!   `RESOURCE_EXHAUSTED` with `retry-after` (seconds) and `grpc-retry-pushback-ms`
//!   metadata until the window has passed.
//!
//! ```
//! use caruso::api::auth::{access, Access, Role};
//! assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
//! assert!(access("/caruso.v1.Voicemail/ListMessages").allows(Role::Integrator));
//! assert!(!access("/caruso.v1.Voicemail/ListMessages").allows(Role::Supervisor));
//! assert!(!access("/caruso.v1.System/ReloadConfig").allows(Role::Supervisor));
//! assert!(access("/caruso.v1.NotYetThere/Anything").allows(Role::Admin));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tracing::{debug, warn};

use crate::acd::AgentId;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An `[acd]` agent's token: the `caruso.v1.Agent` service, for that agent only.
    Agent,
    /// Supervisors: the monitor and campaigns.
    Supervisor,
    /// Integrators: the registry and voicemail.
    Integrator,
    /// Administrators: everything except acting as an agent, and config reloads.
    Admin,
}

impl Role {
    /// The role's name in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Integrator => "integrator",
            Role::Admin => "admin",
        }
    }

    /// The role an `[[api.tokens]]` entry may name (`agent` tokens come from `[acd]`).
    pub fn from_config(name: &str) -> Option<Role> {
        match name {
            "supervisor" => Some(Role::Supervisor),
            "integrator" => Some(Role::Integrator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request acts as: put into the request's extensions by the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`[[api.tokens]] name`) or the agent id.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The agent it acts for (role agent only).
    pub agent: Option<AgentId>,
}

/// The principal the authorization layer resolved for `request`; `UNAUTHENTICATED` when
/// there is none (the service runs without the layer).
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, AuthError> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .map(|p| &**p)
        .ok_or(AuthError::MissingToken)
}

/// One token of the table: its SHA-256 (never the token itself) and who it is.
#[derive(Clone)]
struct TokenEntry {
    digest: [u8; 32],
    principal: Arc<Principal>,
}

/// Tokens and who they are; looked up in constant time with respect to the token's bytes
/// (every entry's digest is compared in full, digests hide the length).
#[derive(Clone, Default)]
pub struct TokenTable {
    entries: Vec<TokenEntry>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.principal))
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(token.as_bytes()));
    out
}

/// Equality of two digests without an early exit.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl TokenTable {
    /// An empty table (every token is unknown).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `token` for `principal` (the config has checked uniqueness; a later duplicate
    /// never wins).
    pub fn insert(&mut self, token: &str, principal: Principal) {
        self.entries.push(TokenEntry {
            digest: digest(token),
            principal: Arc::new(principal),
        });
    }

    /// The table of a validated config: `[[api.tokens]]` and every `[acd.agents]` token.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let mut table = Self::new();
        for t in &config.api.tokens {
            table.insert(
                &t.token,
                Principal {
                    name: t.name.clone(),
                    role: t.role,
                    agent: None,
                },
            );
        }
        for a in config.acd.iter().flat_map(|acd| acd.agents.iter()) {
            table.insert(
                &a.token,
                Principal {
                    name: a.id.to_string(),
                    role: Role::Agent,
                    agent: Some(a.id.clone()),
                },
            );
        }
        table
    }

    /// Who `token` is, if anyone.
    pub fn resolve(&self, token: &str) -> Option<Arc<Principal>> {
        let d = digest(token);
        let mut found = None;
        for e in &self.entries {
            if same_digest(&d, &e.digest) && found.is_none() {
                found = Some(e.principal.clone());
            }
        }
        found
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What the layer enforces, replaced as a whole on config reload.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// Tokens and who they are.
    pub tokens: TokenTable,
    /// Limits on failed attempts.
    pub rate_limit: RateLimit,
}

impl AuthPolicy {
    /// The policy of a validated config.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            tokens: TokenTable::from_config(config),
            rate_limit: config.api.rate_limit,
        }
    }
}

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, reflection).
    Open,
    /// Any known token.
    Authenticated,
    /// A known token with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether a principal with `role` may call.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Open | Access::Authenticated => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    /// The roles needed, for messages (`integrator or admin`).
    pub fn needed(self) -> String {
        match self {
            Access::Open => "none".into(),
            Access::Authenticated => "any role".into(),
            Access::Roles(roles) => roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }
}

/// One line of the authorization table: a service (`caruso.v1.Voicemail`), optionally
/// one method of it, and who may call.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Fully qualified service name.
    pub service: &'static str,
    /// A method of it, or `None` for every method.
    pub method: Option<&'static str>,
    /// Who may call.
    pub access: Access,
}

const ADMIN: &[Role] = &[Role::Admin];
const AGENT: &[Role] = &[Role::Agent];
const INTEGRATOR: &[Role] = &[Role::Integrator, Role::Admin];
const SUPERVISOR: &[Role] = &[Role::Supervisor, Role::Admin];

/// The authorization table. A method rule wins over its service's rule; a path no rule
/// names is admin only ([`DEFAULT_ACCESS`]).
pub const RULES: &[Rule] = &[
    Rule {
        service: "grpc.health.v1.Health",
        method: None,
        access: Access::Open,
    },
    Rule {
        service: "grpc.reflection.v1.ServerReflection",
        method: None,
        access: Access::Open,
    },
    Rule {
        service: "grpc.reflection.v1alpha.ServerReflection",
        method: None,
        access: Access::Open,
    },
    Rule {
        service: "caruso.v1.System",
        method: Some("GetVersion"),
        access: Access::Authenticated,
    },
    Rule {
        service: "caruso.v1.System",
        method: Some("GetStatus"),
        access: Access::Authenticated,
    },
    Rule {
        service: "caruso.v1.System",
        method: Some("ReloadConfig"),
        access: Access::Roles(ADMIN),
    },
    Rule {
        service: "caruso.v1.Agent",
        method: None,
        access: Access::Roles(AGENT),
    },
    // A preview decision acts only for the token's own agent (the dialer refuses an
    // offer made to another agent).
    Rule {
        service: "caruso.v1.Agent",
        method: Some("DecidePreview"),
        access: Access::Roles(AGENT),
    },
    Rule {
        service: "caruso.v1.Agent",
        method: Some("SetDisposition"),
        access: Access::Roles(AGENT),
    },
    Rule {
        service: "caruso.v1.Voicemail",
        method: None,
        access: Access::Roles(INTEGRATOR),
    },
    Rule {
        service: "caruso.v1.Registry",
        method: None,
        access: Access::Roles(INTEGRATOR),
    },
    Rule {
        service: "caruso.v1.Monitor",
        method: None,
        access: Access::Roles(SUPERVISOR),
    },
    Rule {
        service: "caruso.v1.Campaigns",
        method: None,
        access: Access::Roles(SUPERVISOR),
    },
    Rule {
        service: "caruso.v1.Campaigns",
        method: Some("ListAttempts"),
        access: Access::Roles(SUPERVISOR),
    },
    Rule {
        service: "caruso.v1.Campaigns",
        method: Some("ReportFalsePositive"),
        access: Access::Roles(SUPERVISOR),
    },
];

/// Access to any path [`RULES`] does not name.
pub const DEFAULT_ACCESS: Access = Access::Roles(ADMIN);

/// Who may call the gRPC `path` (`/caruso.v1.Voicemail/ListMessages`).
pub fn access(path: &str) -> Access {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return DEFAULT_ACCESS;
    };
    let mut by_service = None;
    for rule in RULES.iter().filter(|r| r.service == service) {
        match rule.method {
            Some(m) if m == method => return rule.access,
            Some(_) => {}
            None => by_service = Some(rule.access),
        }
    }
    by_service.unwrap_or(DEFAULT_ACCESS)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing `authorization: Bearer <token>` metadata")]
    MissingToken,
    /// `authorization` is not `Bearer <token>`.
    #[error("authorization metadata must be `Bearer <token>`")]
    MalformedToken,
    /// The token is not in the config.
    #[error("unknown token")]
    UnknownToken,
    /// A known token whose role may not call the path.
    #[error("{path} needs role {needed}; this token has role {has}")]
    WrongRole {
        /// The gRPC path.
        path: String,
        /// The roles that may call it.
        needed: String,
        /// The token's role.
        has: Role,
    },
    /// Too many failed attempts from this peer.
    #[error("too many failed authentication attempts from this address; retry after {} s", retry_secs(*.retry_after))]
    Blocked {
        /// Until the peer's window has passed.
        retry_after: Duration,
    },
}

/// Whole seconds, rounded up (a client waiting that long is never early).
fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl AuthError {
    /// Whether this is a failed authentication (counted by the limiter).
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            AuthError::MissingToken | AuthError::MalformedToken | AuthError::UnknownToken
        )
    }
}

/// The token of an `authorization: Bearer <token>` value (scheme case-insensitive).
pub fn bearer_token(value: Option<&http::HeaderValue>) -> Result<&str, AuthError> {
    let value = value.ok_or(AuthError::MissingToken)?;
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedToken)?
        .trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MalformedToken);
    }
    Ok(token)
}

/// The pure decision for a request to `path` with this `authorization` value: `Ok(None)`
/// for open paths, `Ok(Some(principal))` when allowed.
pub fn authorize(
    tokens: &TokenTable,
    path: &str,
    authorization: Option<&http::HeaderValue>,
) -> Result<Option<Arc<Principal>>, AuthError> {
    let access = access(path);
    if access == Access::Open {
        return Ok(None);
    }
    let token = bearer_token(authorization)?;
    let principal = tokens.resolve(token).ok_or(AuthError::UnknownToken)?;
    if !access.allows(principal.role) {
        return Err(AuthError::WrongRole {
            path: path.trim_start_matches('/').to_string(),
            needed: access.needed(),
            has: principal.role,
        });
    }
    Ok(Some(principal))
}

// ---------------------------------------------------------------------------------------
// Failed-attempt limiter (sans-IO)
// ---------------------------------------------------------------------------------------

/// Limits on failed authentication attempts (`[api.rate_limit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Failures from one IP within `window` after which it is refused.
    pub max_failures: u32,
    /// The window, counted from a peer's first failure.
    pub window: Duration,
    /// How many peers are tracked at most (memory bound).
    pub max_peers: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(60),
            max_peers: 4096,
        }
    }
}

/// One peer's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct PeerFailures {
    since: Instant,
    failures: u32,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; the peer has this many failures in its window.
    Counted(u32),
    /// This failure reached the limit: the peer is refused for this long.
    Blocked(Duration),
}

/// Counts failed authentications per peer IP in a fixed window from the first failure
/// (sans-IO: time is an input). At most `max_peers` IPs are tracked: a new one first
/// evicts expired entries, then the one whose window started first.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    peers: HashMap<IpAddr, PeerFailures>,
}

impl FailureLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Err(retry_after)` while `peer` is refused at `now`.
    pub fn check(&self, now: Instant, peer: IpAddr, limit: &RateLimit) -> Result<(), Duration> {
        match self.peers.get(&peer) {
            Some(p) if p.failures >= limit.max_failures => {
                let end = p.since + limit.window;
                if now < end {
                    Err(end - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `peer` at `now`.
    pub fn handle_failure(
        &mut self,
        now: Instant,
        peer: IpAddr,
        limit: &RateLimit,
    ) -> FailureOutcome {
        if !self.peers.contains_key(&peer) && self.peers.len() >= limit.max_peers.max(1) {
            self.handle_timeout(now, limit);
            if self.peers.len() >= limit.max_peers.max(1) {
                if let Some(oldest) = self
                    .peers
                    .iter()
                    .min_by_key(|(_, p)| p.since)
                    .map(|(ip, _)| *ip)
                {
                    self.peers.remove(&oldest);
                }
            }
        }
        let entry = self.peers.entry(peer).or_insert(PeerFailures {
            since: now,
            failures: 0,
        });
        if now.saturating_duration_since(entry.since) >= limit.window {
            *entry = PeerFailures {
                since: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures == limit.max_failures {
            FailureOutcome::Blocked((entry.since + limit.window).saturating_duration_since(now))
        } else {
            FailureOutcome::Counted(entry.failures)
        }
    }

    /// Forgets peers whose window has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant, limit: &RateLimit) {
        self.peers
            .retain(|_, p| now.saturating_duration_since(p.since) < limit.window);
    }

    /// Number of peers tracked.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

// ---------------------------------------------------------------------------------------
// The tower layer
// ---------------------------------------------------------------------------------------

/// The authorization layer for `tonic::transport::Server::layer`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: watch::Receiver<Arc<AuthPolicy>>,
    limiter: Arc<Mutex<FailureLimiter>>,
}

impl AuthLayer {
    /// A layer enforcing the policy currently in `policy` (replaced on reload).
    pub fn new(policy: watch::Receiver<Arc<AuthPolicy>>) -> Self {
        Self {
            policy,
            limiter: Arc::default(),
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: watch::Receiver<Arc<AuthPolicy>>,
    limiter: Arc<Mutex<FailureLimiter>>,
}

/// The peer's IP from tonic's connection info (plain TCP or TLS); unspecified if unknown.
fn peer_ip<B>(req: &http::Request<B>) -> IpAddr {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|t| t.get_ref().remote_addr())
        })
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

impl<S> AuthService<S> {
    /// Decides a request: `Ok` with its principal (none for open paths) or the refusal.
    fn decide<B>(&self, req: &http::Request<B>) -> Result<Option<Arc<Principal>>, AuthError> {
        let path = req.uri().path();
        if access(path) == Access::Open {
            return Ok(None);
        }
        let policy = self.policy.borrow().clone();
        let peer = peer_ip(req);
        let now = Instant::now();
        let lock = || self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(retry_after) = lock().check(now, peer, &policy.rate_limit) {
            debug!(peer = %peer, path, "gRPC request refused: peer is rate-limited");
            return Err(AuthError::Blocked { retry_after });
        }
        let result = authorize(
            &policy.tokens,
            path,
            req.headers().get(http::header::AUTHORIZATION),
        );
        match &result {
            Err(e) if e.is_authentication_failure() => {
                warn!(peer = %peer, path, reason = %e, "gRPC authentication failed");
                let outcome = lock().handle_failure(now, peer, &policy.rate_limit);
                if let FailureOutcome::Blocked(d) = outcome {
                    warn!(
                        peer = %peer,
                        failures = policy.rate_limit.max_failures,
                        retry_after_s = retry_secs(d),
                        "gRPC peer refused after too many failed authentications"
                    );
                }
            }
            Err(e) => warn!(peer = %peer, path, reason = %e, "gRPC permission denied"),
            Ok(_) => {}
        }
        result
    }
}

impl<S, B, RB> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.decide(&req) {
            Ok(principal) => {
                if let Some(p) = principal {
                    req.extensions_mut().insert(p);
                }
                // The clone takes over the readiness `poll_ready` reserved.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthFuture::inner(inner.call(req))
            }
            Err(e) => {
                AuthFuture::refused(tonic::Status::from(super::ApiError::from(e)).into_http())
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`]: the service's, or a refusal.
    pub struct AuthFuture<F, R> {
        #[pin]
        inner: Option<F>,
        refused: Option<R>,
    }
}

impl<F, R> AuthFuture<F, R> {
    fn inner(fut: F) -> Self {
        Self {
            inner: Some(fut),
            refused: None,
        }
    }

    fn refused(response: R) -> Self {
        Self {
            inner: None,
            refused: Some(response),
        }
    }
}

impl<F, R, E> Future for AuthFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(fut) = this.inner.as_pin_mut() {
            return fut.poll(cx);
        }
        match this.refused.take() {
            Some(r) => Poll::Ready(Ok(r)),
            // Polled again after completion: never ready again.
            None => Poll::Pending,
        }
    }
}

/// The status of a refusal (called from `ApiError`'s one mapping to statuses).
pub(super) fn status_of(e: &AuthError) -> tonic::Status {
    match e {
        AuthError::MissingToken | AuthError::MalformedToken | AuthError::UnknownToken => {
            tonic::Status::unauthenticated(e.to_string())
        }
        AuthError::WrongRole { .. } => tonic::Status::permission_denied(e.to_string()),
        AuthError::Blocked { retry_after } => {
            let mut meta = tonic::metadata::MetadataMap::new();
            meta.insert("retry-after", retry_secs(*retry_after).into());
            let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
            meta.insert("grpc-retry-pushback-ms", ms.into());
            tonic::Status::with_metadata(tonic::Code::ResourceExhausted, e.to_string(), meta)
        }
    }
}

/// A policy channel holding the tokens of every role used in the brief's defaults
/// (`supervisor-secret`, `integrator-secret`, `admin-secret`) plus `agents` as
/// `(token, agent id)`, for tests of services behind the layer.
#[cfg(test)]
pub(crate) fn test_policy(agents: &[(&str, &str)]) -> watch::Receiver<Arc<AuthPolicy>> {
    let mut tokens = TokenTable::new();
    for (token, role) in [
        ("supervisor-secret", Role::Supervisor),
        ("integrator-secret", Role::Integrator),
        ("admin-secret", Role::Admin),
    ] {
        tokens.insert(
            token,
            Principal {
                name: role.as_str().into(),
                role,
                agent: None,
            },
        );
    }
    for (token, id) in agents {
        tokens.insert(
            token,
            Principal {
                name: (*id).into(),
                role: Role::Agent,
                agent: Some((*id).into()),
            },
        );
    }
    let (tx, rx) = watch::channel(Arc::new(AuthPolicy {
        tokens,
        rate_limit: RateLimit::default(),
    }));
    // A receiver keeps the last value after its sender is gone.
    drop(tx);
    rx
}

#[cfg(test)]
mod tests;
