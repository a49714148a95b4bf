//! Server assembly: loads prompts, starts the metrics exporter, the SIP transports, the
//! endpoint, and the gRPC API; on shutdown ends calls with BYE and exits within a bound.

use crate::api::{self, ServerStats};
use crate::call::endpoint::{Counters, Endpoint};
use crate::call::CallContext;
use crate::config::Config;
use crate::media::wav::Prompt;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{self, TransportSettings};
use crate::store::{SledStore, Store};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A prompt file named in the config is missing or not usable.
    #[error("{file}: key `{key}`: expected an 8 kHz 16-bit mono WAV file: {reason}")]
    Prompt {
        /// Config file.
        file: String,
        /// Key (`numbers[0].prompt`).
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The prompt library directory is missing or lacks a prompt the server plays.
    #[error("{file}: key `ivr.prompt_dir`: {reason}")]
    PromptDir {
        /// Config file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A SIP socket could not be bound.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// The metrics exporter could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Voicemail storage could not be opened (or recovered).
    #[error("{file}: key `voicemail`: cannot open voicemail storage: {reason}")]
    Voicemail {
        /// Config file.
        file: String,
        /// What failed.
        reason: String,
    },
    /// The do-not-call file or the campaigns' stored state could not be read.
    #[error("{file}: key `{key}`: {reason}")]
    Dialer {
        /// Config file.
        file: String,
        /// Key (`dialer.dnc_file`, `campaigns`).
        key: String,
        /// What failed.
        reason: String,
    },
    /// The store could not be opened.
    #[error("{file}: key `server.data_dir`: {source}")]
    Store {
        /// Config file.
        file: String,
        /// What failed.
        source: crate::store::StoreError,
    },
}

/// Prompts loaded at start (and on reload).
#[derive(Debug, Default)]
pub struct LoadedPrompts {
    /// The prompt of each play-and-hang-up number, by number.
    pub by_number: HashMap<String, Prompt>,
    /// Every `*.wav` of `ivr.prompt_dir`, by name without `.wav`.
    pub library: HashMap<String, Prompt>,
}

/// Loads every prompt the config names and the prompt library; an error names the file
/// and key.
pub fn load_prompts(config: &Config) -> Result<LoadedPrompts, ServerError> {
    let mut out = LoadedPrompts::default();
    for (i, n) in config.numbers.iter().enumerate() {
        let Some(path) = &n.prompt else {
            continue;
        };
        let p = Prompt::load(path).map_err(|e| ServerError::Prompt {
            file: config.source.clone(),
            key: format!("numbers[{i}].prompt"),
            reason: e.to_string(),
        })?;
        out.by_number.insert(n.number.clone(), p);
    }
    let needed = config.flows.names().next().is_some() || !config.voicemail.mailboxes.is_empty();
    let dir = &config.prompt_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if !needed => {
            tracing::debug!(dir = %dir.display(), error = %e, "no prompt library");
            return Ok(out);
        }
        Err(e) => {
            return Err(ServerError::PromptDir {
                file: config.source.clone(),
                reason: format!(
                    "expected a directory of prompts (IVR flows and voicemail need one), cannot read {}: {e}",
                    dir.display()
                ),
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let p = Prompt::load(&path).map_err(|e| ServerError::Prompt {
            file: config.source.clone(),
            key: "ivr.prompt_dir".into(),
            reason: format!("{}: {e}", path.display()),
        })?;
        out.library.insert(name.to_string(), p);
    }
    let vm_prompts = if config.voicemail.mailboxes.is_empty() {
        &[][..]
    } else {
        crate::voicemail::PROMPTS
    };
    for name in REQUIRED_PROMPTS.iter().chain(vm_prompts) {
        if needed && !out.library.contains_key(*name) {
            return Err(ServerError::PromptDir {
                file: config.source.clone(),
                reason: format!(
                    "expected {name}.wav in {} (the IVR and voicemail play it)",
                    dir.display()
                ),
            });
        }
    }
    Ok(out)
}

/// Prompts the server itself plays (digits, transfers, voicemail).
const REQUIRED_PROMPTS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "beep",
    "goodbye",
    "invalid",
    "transfer-unavailable",
];

/// Settings a reload cannot change (sockets and storage are bound at start): the keys
/// whose values differ between `old` and `new`.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key: &'static str, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    check("sip.udp", old.sip.udp != new.sip.udp);
    check("sip.tcp", old.sip.tcp != new.sip.tcp);
    check("rtp.ip", old.rtp.ip != new.rtp.ip);
    check("rtp.port_min", old.rtp.port_min != new.rtp.port_min);
    check("rtp.port_max", old.rtp.port_max != new.rtp.port_max);
    check("api.grpc", old.grpc != new.grpc);
    let tls_files = |c: &Config| c.api.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone()));
    check("api.tls", tls_files(old) != tls_files(new));
    check("metrics.listen", old.metrics != new.metrics);
    check("server.data_dir", old.data_dir != new.data_dir);
    // The monitor's day boundaries are fixed when its hub starts.
    check("server.timezone", old.timezone != new.timezone);
    check("network.allow", old.allow.0 != new.allow.0);
    check("acd", old.acd != new.acd);
    check("registry", old.registry != new.registry);
    // The dialer task owns the campaigns and the do-not-call list from start; campaigns
    // can be added at runtime with the gRPC `Campaigns.Create` instead.
    check(
        "campaigns",
        format!("{:?}", old.campaigns) != format!("{:?}", new.campaigns),
    );
    check(
        "dialer",
        format!("{:?}", old.dialer) != format!("{:?}", new.dialer),
    );
    changed
}

/// Builds the per-call context of a config (prompts loaded, flows ready), sharing the
/// runtime objects of `prev` (none at start).
pub fn build_context(
    config: Config,
    voicemail: Option<Arc<crate::voicemail::storage::Voicemail>>,
    acd: Option<crate::acd::task::AcdCalls>,
    registrations: Option<watch::Receiver<Arc<crate::sip::registrar::Registrations>>>,
    hooks: Option<crate::hooks::Hooks>,
) -> Result<CallContext, ServerError> {
    let prompts = load_prompts(&config)?;
    let config = Arc::new(config);
    Ok(CallContext {
        library: prompts.library,
        voicemail,
        acd,
        registrations,
        timers: TimerConfig {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        },
        allow: config.allow.clone(),
        prompts: prompts.by_number,
        hooks: hooks.map(|h| h.with_config(config.hooks.clone())),
        config,
    })
}

/// Where reloads come from and what they replace.
struct Reloader {
    path: Option<std::path::PathBuf>,
    current: Arc<CallContext>,
    generation: u64,
    publish: watch::Sender<Arc<CallContext>>,
    /// The API's tokens and rate limits (replaced with the config).
    auth: watch::Sender<Arc<api::auth::AuthPolicy>>,
}

impl Reloader {
    /// Reads, validates and applies the config file again (blocking file IO: run it on
    /// a blocking thread). A refused reload leaves everything as it was.
    fn reload(&mut self) -> crate::api::ReloadResult {
        let new = match &self.path {
            Some(p) => Config::load(p),
            None => Config::embedded_default(),
        }
        .map_err(|e| format!("reload refused, the running config stays: {e}"))?;
        let changed = restart_only_changes(&self.current.config, &new);
        if !changed.is_empty() {
            return Err(format!(
                "reload refused, the running config stays: {}: these settings need a restart: {}",
                new.source,
                changed.join(", ")
            ));
        }
        if self.current.voicemail.is_none() && !new.voicemail.mailboxes.is_empty() {
            return Err(format!(
                "reload refused, the running config stays: {}: key `voicemail`: mailboxes were added to a server started without any; this needs a restart",
                new.source
            ));
        }
        let ctx = build_context(
            new,
            self.current.voicemail.clone(),
            self.current.acd.clone(),
            self.current.registrations.clone(),
            self.current.hooks.clone(),
        )
        .map_err(|e| format!("reload refused, the running config stays: {e}"))?;
        if let Some(vm) = &ctx.voicemail {
            vm.reload(ctx.config.voicemail.clone()).map_err(|e| {
                format!(
                    "reload refused, the running config stays: {}: key `voicemail`: {e}",
                    ctx.config.source
                )
            })?;
        }
        let ctx = Arc::new(ctx);
        self.generation += 1;
        let summary = format!(
            "{}: generation {}, numbers {:?}",
            ctx.config.source,
            self.generation,
            ctx.config
                .numbers
                .iter()
                .map(|n| n.number.as_str())
                .collect::<Vec<_>>()
        );
        self.current = ctx.clone();
        self.auth
            .send_replace(Arc::new(api::auth::AuthPolicy::from_config(&ctx.config)));
        let _ = self.publish.send(ctx);
        Ok((self.generation, summary))
    }
}

/// Serves reload requests (SIGHUP and the gRPC `ReloadConfig`) one at a time.
async fn reload_task(reloader: Reloader, mut requests: mpsc::Receiver<crate::api::ReloadRequest>) {
    let mut reloader = Some(reloader);
    while let Some(reply) = requests.recv().await {
        let Some(mut r) = reloader.take() else {
            break;
        };
        let (r, result) = match tokio::task::spawn_blocking(move || {
            let res = r.reload();
            (r, res)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                warn!(error = %e, "config reload task failed");
                break;
            }
        };
        match &result {
            Ok((_, summary)) => {
                metrics::counter!(crate::metrics::CONFIG_RELOADS, "result" => "applied")
                    .increment(1);
                info!(%summary, "configuration reloaded")
            }
            Err(why) => {
                metrics::counter!(crate::metrics::CONFIG_RELOADS, "result" => "refused")
                    .increment(1);
                warn!(%why, "configuration reload refused")
            }
        }
        let _ = reply.send(result);
        reloader = Some(r);
    }
}

/// Turns SIGHUP into reload requests.
#[cfg(unix)]
async fn sighup_task(requests: mpsc::Sender<crate::api::ReloadRequest>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP: reload only through gRPC");
        return;
    };
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading the configuration");
        let (tx, _rx) = tokio::sync::oneshot::channel();
        if requests.send(tx).await.is_err() {
            break;
        }
    }
}

/// Starts the dialer task: the do-not-call file, the configured campaigns (and those
/// created over gRPC before), the ACD's agents; `originator` places the dials (the
/// endpoint's [`crate::call::originate::CallOriginator`]).
fn start_dialer(
    config: &Config,
    store: Arc<dyn Store>,
    bus: crate::events::EventBus,
    acd: Option<crate::acd::api::AcdHandle>,
    acd_calls: Option<crate::acd::task::AcdCalls>,
    originator: Arc<dyn crate::dialer::originate::Originator>,
) -> Result<crate::dialer::task::DialerHandle, ServerError> {
    use crate::dialer::{dnc::DncList, task};
    let err = |key: &str, reason: String| ServerError::Dialer {
        file: config.source.clone(),
        key: key.to_string(),
        reason,
    };
    let dnc = match &config.dialer.dnc_file {
        None => DncList::default(),
        Some(path) => {
            let text = task::blocking(|| std::fs::read_to_string(path)).map_err(|e| {
                err(
                    "dialer.dnc_file",
                    format!(
                        "expected a readable do-not-call file {}: {e}",
                        path.display()
                    ),
                )
            })?;
            let (list, errors) = DncList::parse_file(&text, config.dialer.default_country);
            for e in errors {
                warn!(file = %path.display(), line = e.line, reason = %e.reason, "do-not-call line skipped");
            }
            info!(file = %path.display(), numbers = list.len(), "do-not-call list read");
            list
        }
    };
    let refs = task::References {
        queues: Some(
            config
                .acd
                .as_ref()
                .map(|a| a.queues.iter().map(|q| q.name.to_string()).collect())
                .unwrap_or_default(),
        ),
        trunks: Some(config.trunks.iter().map(|t| t.name.clone()).collect()),
        flows: Some(config.flows.names().map(String::from).collect()),
        prompt_dir: Some(config.prompt_dir.clone()),
    };
    let acd = acd.and_then(|h| config.acd.clone().map(|c| (h, c)));
    let mut t = task::DialerTask::new(
        &config.campaigns,
        dnc,
        store,
        originator,
        bus,
        acd,
        refs,
        task::system_clock(),
    )
    .map_err(|e| err("campaigns", e.to_string()))?;
    if let Some(calls) = acd_calls {
        t = t.with_holds(calls);
    }
    info!(
        campaigns = ?config.campaigns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        "dialer started"
    );
    Ok(t.spawn())
}

/// Runs the server until `shutdown` completes, then ends active calls (BYE) and returns
/// after at most `server.shutdown_grace_ms` plus a second. `path` is the config file
/// (re-read on SIGHUP and `ReloadConfig`; `None`: the embedded default).
pub async fn run(
    config: Config,
    path: Option<std::path::PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if let Some(addr) = config.metrics {
        crate::metrics::install(addr)?;
        info!(%addr, "Prometheus metrics on http://{addr}/metrics");
    }
    if config.allow.0.is_empty() {
        warn!("network.allow is empty: the server may send SIP and RTP to any address");
    } else {
        info!(allow = ?config.allow.0.iter().map(|n| format!("{}/{}", n.addr, n.prefix)).collect::<Vec<_>>(), "destination allow-list");
    }
    let store = SledStore::open(&config.data_dir).map_err(|source| ServerError::Store {
        file: config.source.clone(),
        source,
    })?;
    info!(dir = %config.data_dir.display(), "store opened");
    let store: Arc<dyn Store> = Arc::new(store);
    let bus = crate::events::EventBus::default();
    let voicemail = if config.voicemail.mailboxes.is_empty() {
        None
    } else {
        let vm = crate::voicemail::storage::Voicemail::open(
            config.voicemail.clone(),
            store.clone(),
            &config.data_dir,
            bus.clone(),
        )
        .map_err(|e| ServerError::Voicemail {
            file: config.source.clone(),
            reason: e.to_string(),
        })?;
        Some(vm)
    };
    let acd = config.acd.clone().map(|acd| {
        let task = crate::acd::task::AcdTask::new(
            acd,
            Some(store.clone()),
            bus.clone(),
            tokio::time::Instant::now().into_std(),
        );
        task.spawn()
    });
    let (acd_api, acd_calls) = match acd {
        Some((api, calls)) => (Some(api), Some(calls)),
        None => (None, None),
    };
    // The agents' phones register here (digest auth with the passwords of [acd.agents]).
    let registrar = config.acd.as_ref().and_then(|acd| {
        let users = crate::sip::registrar::credentials_of(&acd.agents);
        (!users.is_empty()).then(|| {
            let (tx, rx) =
                watch::channel(Arc::new(crate::sip::registrar::Registrations::default()));
            (users, tx, rx)
        })
    });
    // The service registry (registrations restored from the store) and the plug-in
    // hooks that call its services.
    let registry = crate::registry::task::RegistryTask::new(
        config.registry,
        config.allow.clone(),
        Some(store.clone()),
        tokio::time::Instant::now().into_std(),
    )
    .spawn();
    let hooks = crate::hooks::Hooks::start(config.hooks.clone(), registry.clone());
    let ctx = Arc::new(build_context(
        config,
        voicemail.clone(),
        acd_calls.clone(),
        registrar.as_ref().map(|(_, _, rx)| rx.clone()),
        Some(hooks),
    )?);
    let config = ctx.config.clone();
    let (ctx_tx, ctx_rx) = watch::channel(ctx.clone());
    // agent.state and voicemail.new hooks from the bus, with the current config's hooks.
    let hooks_ctx = ctx_rx.clone();
    tokio::spawn(crate::hooks::forward_bus(bus.subscribe(), move || {
        hooks_ctx.borrow().hooks.clone()
    }));
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let (auth_tx, auth_rx) = watch::channel(Arc::new(api::auth::AuthPolicy::from_config(&config)));
    let mut security = api::ApiSecurity::new(auth_rx);
    if let Some(tls) = &config.api.tls {
        security = security.with_tls(&tls.cert_pem, &tls.key_pem);
    }
    tokio::spawn(reload_task(
        Reloader {
            path,
            current: ctx.clone(),
            generation: 1,
            publish: ctx_tx,
            auth: auth_tx,
        },
        reload_rx,
    ));
    #[cfg(unix)]
    tokio::spawn(sighup_task(reload_tx.clone()));
    let settings = TransportSettings {
        max_message_size: config.sip.max_message_size,
        allow: config.allow.clone(),
        server_header: config.user_agent.clone(),
    };
    let (in_tx, in_rx) = mpsc::channel(8192);
    let udp = match config.sip.udp {
        Some(addr) => Some(transport::start_udp(addr, settings.clone(), in_tx.clone()).await?),
        None => None,
    };
    if let Some(addr) = config.sip.tcp {
        transport::start_tcp(addr, settings, in_tx.clone()).await?;
    }
    drop(in_tx);

    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut endpoint =
        Endpoint::new(ctx, udp, counters.clone(), Some(store.clone())).with_reloads(ctx_rx);
    if let Some(vm) = &voicemail {
        endpoint = endpoint.with_mwi(vm.clone(), &bus);
    }
    if let Some((users, tx, _)) = registrar {
        endpoint = endpoint.with_registrar(Arc::new(users), config.sip.registrar.clone(), tx);
    }
    let dial_link = endpoint.dialer();
    let endpoint_task = tokio::spawn(endpoint.run(in_rx, stop_rx.clone()));

    let (stats_tx, stats_rx) = watch::channel(ServerStats::default());
    let c = counters.clone();
    let stats_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let s = ServerStats {
                active_calls: c.calls.load(Ordering::Relaxed),
                dialogs: c.dialogs.load(Ordering::Relaxed),
                transactions: c.transactions.load(Ordering::Relaxed),
                registrations: c.registrations.load(Ordering::Relaxed),
            };
            if stats_tx.send(s).is_err() {
                break;
            }
        }
    });
    let dialer = start_dialer(
        &config,
        store.clone(),
        bus.clone(),
        acd_api.clone(),
        acd_calls,
        Arc::new(crate::call::originate::CallOriginator::new(dial_link)),
    )?;
    // The status monitor (caruso.v1.Monitor): agents and queues from the ACD and the
    // bus, server figures from the stats above; daily figures by the local day of
    // `server.timezone` (default: the host's zone).
    let monitor = crate::monitor::hub::spawn(
        &bus,
        acd_api.clone(),
        Some(stats_rx.clone()),
        config
            .timezone
            .clone()
            .map(crate::monitor::clock::LocalDays::new)
            .unwrap_or_else(crate::monitor::clock::LocalDays::host),
        crate::monitor::hub::HubSettings::default(),
    );
    let api_voicemail = voicemail.clone();
    let api_task = config.grpc.map(|addr| {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let res = api::serve(
                addr,
                api::ApiServices {
                    stats: stats_rx,
                    reload: Some(reload_tx),
                    voicemail: api_voicemail,
                    acd: acd_api,
                    campaigns: Some(dialer),
                    registry: Some(registry),
                    monitor: Some(monitor),
                },
                security,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await;
            if let Err(e) = res {
                warn!(error = %e, "gRPC API stopped");
            }
        })
    });
    info!(
        udp = ?config.sip.udp, tcp = ?config.sip.tcp, grpc = ?config.grpc,
        grpc_tls = config.api.tls.is_some(),
        numbers = ?config.numbers.iter().map(|n| n.number.as_str()).collect::<Vec<_>>(),
        "caruso ready"
    );

    shutdown.await;
    info!("shutdown requested");
    let _ = stop_tx.send(true);
    let bound = config.shutdown_grace + Duration::from_secs(1);
    if tokio::time::timeout(bound, endpoint_task).await.is_err() {
        warn!("calls did not end within the grace time");
    }
    if let Some(t) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    stats_task.abort();
    if let Err(e) = tokio::task::spawn_blocking(move || store.flush())
        .await
        .unwrap_or(Ok(()))
    {
        warn!(error = %e, "store flush at shutdown failed");
    }
    info!("caruso stopped");
    Ok(())
}
