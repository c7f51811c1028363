//! Wiring: opens the store and key, builds the pipeline from the configuration,
//! binds the sockets, installs logging and metrics, tells systemd when it is
//! ready, reloads on SIGHUP ([`reload`]) and runs until SIGTERM or SIGINT. The
//! only place that knows every concrete type.

mod families;
mod live_primary;
mod logging;
mod notify;
mod reload;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::auth::{LdapAuth, LocalAuth, NoPrimary, PrimaryAuth, PrimaryConfig, UpstreamAuth};
use crate::config::Config;
use crate::factor::oob::limit::SendLimit;
use crate::factor::oob::pending::PendingTable;
use crate::factor::oob::{OobHandle, OutOfBand};
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::TotpFactor;
use crate::live::Live;
use crate::pipeline::Pipeline;
use crate::radius::{Routes, ServerOptions, serve as serve_radius};
use crate::seal::SealKey;
use crate::session::Challenges;
use crate::store::config::{Backend, redacted_url};
use crate::store::health::{StoreHealth, monitor as store_monitor};
use crate::store::{PostgresStore, SqliteStore, Store};

pub use logging::init_logging;

/// Opens the store and the sealing key named by the configuration: the
/// SQLite file, or the PostgreSQL database shared by several nodes.
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<SealKey>)> {
    let key_file = &config.store.key_file;
    match config.store.backend() {
        Backend::Sqlite(_) => {
            let path = config.store.sqlite_path();
            refuse_a_new_store_beside_the_old(&path, key_file)?;
            let key = SealKey::load_or_create(key_file)
                .with_context(|| format!("store key file {}", key_file.display()))?;
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("SQLite store {}", path.display()))?;
            Ok((Arc::new(store), Arc::new(key)))
        }
        Backend::Postgres(url) => {
            let shown = redacted_url(url);
            let store = PostgresStore::open(&config.store)
                .await
                .with_context(|| format!("PostgreSQL store {shown}"))?;
            let options = crate::store::postgres::connect::options(&config.store)?;
            if !crate::store::postgres::connect::verifies_server(&options)
                && !is_loopback(options.get_host())
                && options.get_socket().is_none()
            {
                warn!(
                    store = %shown,
                    "PostgreSQL server certificate not verified: set [store] tls_mode = \"verify-full\" and ca_file"
                );
            }
            let existed = key_file.exists();
            let key = SealKey::load_or_create(key_file)
                .with_context(|| format!("store key file {}", key_file.display()))?;
            // Every node must hold the same key: one that cannot open the
            // seeds other nodes sealed would fail every TOTP login here.
            if let Some((user, sealed)) = store.any_sealed_seed().await?
                && key.open(user.as_bytes(), &sealed).is_err()
            {
                if !existed {
                    // Do not leave a stray key behind for the next start to trust.
                    let _ = std::fs::remove_file(key_file);
                }
                anyhow::bail!(
                    "store key file {}: it does not open the TOTP seeds in {shown}; every node \
                     sharing a database needs the same key file (copy it from a node already using it)",
                    key_file.display()
                );
            }
            info!(store = %shown, pool_size = config.store.pool_size(), "PostgreSQL store");
            Ok((Arc::new(store), Arc::new(key)))
        }
    }
}

/// Refuses to open the SQLite store where creating it would quietly lose
/// data: its file is missing while a daemon still serves it (deleted under
/// the daemon: a new database here would be empty, and the daemon's rows go
/// with it at its next restart), or the database exists but its key does
/// not (a new key cannot open a single enrolled seed).
fn refuse_a_new_store_beside_the_old(path: &Path, key_file: &Path) -> anyhow::Result<()> {
    use crate::store::sqlite::ServingMarker;
    if !path.exists() && ServingMarker::is_claimed(path) {
        anyhow::bail!(
            "SQLite store {}: the file is missing, but a running rampart daemon still serves it. \
             Restore the file from a backup and restart the daemon; nothing was created",
            path.display()
        );
    }
    if path.exists() && !key_file.exists() {
        anyhow::bail!(
            "store key file {} is missing, but the database {} exists: restore the key \
             (the enrolled seeds are sealed with it); nothing was created",
            key_file.display(),
            path.display()
        );
    }
    Ok(())
}

/// This process's heartbeat row: host name and RADIUS port, so nodes sharing
/// a PostgreSQL database (or a host) each have their own.
fn node_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), config.listen.port())
}

/// Whether a PostgreSQL host name is this machine (no TLS warning then).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The primary backend `[primary]` names.
pub fn build_primary(
    config: &Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<Arc<dyn PrimaryAuth>> {
    Ok(match &config.primary {
        PrimaryConfig::Local(_) => {
            Arc::new(LocalAuth::new(store.clone()).map_err(anyhow::Error::msg)?)
        }
        PrimaryConfig::None(_) => Arc::new(NoPrimary),
        PrimaryConfig::Ldap(ldap) => Arc::new(LdapAuth::new(ldap).map_err(anyhow::Error::msg)?),
        PrimaryConfig::Radius(upstream) => {
            let backend = UpstreamAuth::new(upstream).map_err(anyhow::Error::msg)?;
            info!(servers = ?backend.addresses(), "primary: upstream RADIUS");
            Arc::new(backend)
        }
    })
}

/// What a pipeline built on reload takes over from the running one, so that
/// logins in progress survive the switch.
#[derive(Clone)]
pub struct Carry {
    /// Parked out-of-band logins: one table for the life of the process.
    pub pending: Arc<PendingTable>,
    /// Per-user push/call/SMS send history, once out-of-band factors ran.
    pub limit: Option<Arc<SendLimit>>,
    /// Pending Access-Challenges.
    pub challenges: Option<Arc<Challenges>>,
    /// Whether the store takes writes: one for the life of the process.
    pub health: Arc<StoreHealth>,
}

impl Carry {
    /// Nothing to take over: the first pipeline.
    pub fn fresh() -> Carry {
        Carry {
            pending: PendingTable::new(),
            limit: None,
            challenges: None,
            health: StoreHealth::new(),
        }
    }

    /// What the next pipeline takes over from `pipeline` (built with `self`).
    pub fn after(&self, pipeline: &Pipeline) -> Carry {
        Carry {
            pending: self.pending.clone(),
            limit: pipeline
                .out_of_band()
                .map(|oob| oob.limit.clone())
                .or_else(|| self.limit.clone()),
            challenges: Some(pipeline.challenges()),
            health: self.health.clone(),
        }
    }
}

/// Builds the pipeline for a configuration over an open store, taking over
/// `carry`'s tables.
pub fn build_pipeline(
    config: &Config,
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
    audit: Option<AuditLog>,
    carry: &Carry,
) -> anyhow::Result<Pipeline> {
    let primary = build_primary(config, store.clone())?;
    let pipeline = Pipeline::new(
        primary,
        TotpFactor::new(store.clone(), key.clone(), config.totp.clone()),
        RecoveryCodes::new(store.clone(), key.clone()),
        store,
        config.policy.clone(),
        config.username.clone(),
        key.clone(),
    );
    let app_password_clients = config
        .clients
        .iter()
        .filter(|c| c.allow_app_passwords)
        .map(|c| c.name.clone())
        .collect();
    let mut pipeline = pipeline
        .with_app_password_clients(app_password_clients)
        .with_store_health(carry.health.clone());
    if let Some(audit) = audit {
        pipeline = pipeline.with_audit(audit);
    }
    if let Some(challenges) = &carry.challenges {
        pipeline = pipeline.with_challenges(challenges.clone());
    }
    Ok(match build_out_of_band(config, key, carry)? {
        Some(oob) => pipeline.with_out_of_band(oob),
        None => pipeline,
    })
}

/// Builds the out-of-band providers the configuration names; `None` when
/// there are none (then `push`/`phone`/`sms` after a password mean nothing).
pub fn build_out_of_band(
    config: &Config,
    key: Arc<SealKey>,
    carry: &Carry,
) -> anyhow::Result<Option<Arc<OutOfBand>>> {
    let mut oob = OutOfBand::new(config.out_of_band.clone(), key);
    let limit = carry.limit.clone().unwrap_or_else(|| oob.limit.clone());
    oob = oob.with_tables(carry.pending.clone(), limit);
    if let Some(duo) = &config.duo {
        let client = Arc::new(crate::factor::duo::DuoClient::new(duo).context("[duo]")?);
        info!(api_host = %duo.api_host, failmode = ?duo.failmode, "second factor: Duo Auth API");
        if duo.failmode == crate::factor::oob::FailMode::Safe {
            warn!(
                "[duo] failmode = \"safe\": while Duo is unreachable, the password alone signs users in"
            );
        }
        // Reachability and keys are logged, never fatal: Duo may come back.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let probe = client.clone();
            runtime.spawn(async move { probe.log_check().await });
        }
        oob.hosted = Some(client);
        oob.hosted_failmode = duo.failmode;
    }
    if let Some(push) = &config.push {
        let (sender, default_target) = crate::factor::push::build(push)?;
        info!(format = push.format.as_str(), "push: enabled");
        oob.push = Some(sender);
        oob.default_push_target = default_target;
    }
    if let Some(sms) = &config.sms {
        oob.sms = Some(sms.build().map_err(|e| anyhow::anyhow!("[sms] {e}"))?);
        info!(provider = sms.provider(), "sms: text codes enabled");
    }
    if let Some(phone) = &config.phone {
        // Validation guarantees public_url with [phone].
        let public_url = config.out_of_band.public_url.as_deref().unwrap_or_default();
        let caller = crate::factor::phone::TwilioCaller::new(phone, public_url)
            .map_err(|e| anyhow::anyhow!("[phone] {e}"))?;
        oob.phone_callbacks = Some(caller.callbacks());
        oob.caller = Some(Arc::new(caller));
        oob.phone_pin = phone.pin;
        info!(pin = ?phone.pin, "phone: verification calls enabled");
    }
    let any =
        oob.push.is_some() || oob.caller.is_some() || oob.sms.is_some() || oob.hosted.is_some();
    Ok(any.then(|| Arc::new(oob)))
}

/// Starts the ntfy reply relay `[push]` asks for; false when it asks for none.
fn build_out_of_band_relay(
    push: &crate::factor::push::PushConfig,
    oob: Arc<OutOfBand>,
    cancel: CancellationToken,
) -> anyhow::Result<bool> {
    Ok(crate::factor::push::spawn_reply_relay(push, oob, cancel)?.is_some())
}

/// The admin API's state, when `[admin] token_file` is set.
fn build_admin(
    config: &Config,
    primary: Arc<dyn PrimaryAuth>,
    key: Arc<SealKey>,
) -> anyhow::Result<Option<Arc<crate::http::admin::Admin>>> {
    let Some(path) = &config.admin.token_file else {
        return Ok(None);
    };
    let token = crate::config::read_secret_file(path).map_err(anyhow::Error::msg)?;
    let mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(crate::mail::Mailer::new(smtp)?)),
        None => None,
    };
    info!("admin API on /admin/v1 (bearer token from {path})");
    Ok(Some(Arc::new(crate::http::admin::Admin {
        token: crate::secret::Secret::new(token.trim().to_string()),
        config: config.admin.clone(),
        key,
        primary,
        public_url: config.public_url.clone(),
        mailer,
    })))
}

/// Runs the daemon until a termination signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // SIGHUP's default action ends the process: take it over before anything
    // can send one (systemd's reload, an admin's kill -HUP).
    let hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    // The same lines `rampart check-config` prints (weak secrets and the like).
    for line in config.warning_lines() {
        warn!("{line}");
    }
    let token = CancellationToken::new();
    let metrics = match config.http_listen {
        Some(addr) => Some((addr, install_metrics_recorder()?)),
        None => None,
    };
    families::describe();
    families::register(&config);
    let (store, key) = open_store(&config).await?;
    // Held while serving: a CLI run then refuses to create a new database
    // where this one's file was deleted.
    let _serving = match config.store.backend() {
        Backend::Sqlite(_) => {
            match crate::store::sqlite::ServingMarker::claim(&config.store.sqlite_path()) {
                Ok(marker) => Some(marker),
                Err(error) => {
                    warn!(%error, "another rampart process serves this SQLite store");
                    None
                }
            }
        }
        Backend::Postgres(_) => None,
    };
    let carry = Carry::fresh();
    if let Err(error) = store.watch_files(carry.health.clone()) {
        warn!(%error, "cannot watch the store's files: a change is seen at the next probe");
    }
    let monitor_task = tokio::spawn(store_monitor(
        store.clone(),
        carry.health.clone(),
        node_name(&config),
        token.clone(),
    ));
    let (audit, audit_task) = AuditLog::spawn(
        store.clone(),
        Duration::from_secs(config.store.audit_retention_days * 86_400),
        token.clone(),
        carry.health.clone(),
    );
    let pipeline = Arc::new(build_pipeline(
        &config,
        store.clone(),
        key.clone(),
        Some(audit.clone()),
        &carry,
    )?);
    let oob = OobHandle::new(pipeline.out_of_band());
    let routes = Arc::new(Live::new(Arc::new(Routes {
        clients: Arc::new(config.clients.clone()),
        handler: pipeline.clone(),
    })));
    let live_pipeline = Arc::new(Live::new(pipeline.clone()));
    // The admin API, the portal and /readyz use whatever primary backend the
    // configuration in use has (a reload may change it).
    let primary: Arc<dyn PrimaryAuth> = Arc::new(live_primary::LivePrimary(live_pipeline.clone()));
    let admin = build_admin(&config, primary.clone(), key.clone())?;
    let portal = config.portal.enabled.then(|| {
        Arc::new(crate::portal::Portal::new(crate::portal::PortalParts {
            config: config.portal.clone(),
            primary: primary.clone(),
            store: store.clone(),
            key: key.clone(),
            totp: config.totp.clone(),
            oob: oob.clone(),
            username: config.username.clone(),
        }))
    });

    let socket = UdpSocket::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for RADIUS on udp/{}", config.listen))?;
    let local = socket.local_addr()?;
    info!(
        clients = config.clients.iter().count(),
        "RADIUS listening on udp/{local}"
    );
    for client in config.clients.iter() {
        if !client.require_message_authenticator {
            warn!(client = %client.name, "client does not require Message-Authenticator: exposed to BLAST-RADIUS (CVE-2024-3596)");
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    let mut http_address = None;
    if let Some((addr, handle)) = metrics {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on tcp/{addr}"))?;
        let bound = listener.local_addr()?;
        http_address = Some(bound);
        info!("HTTP listening on http://{bound}");
        if config.portal.enabled {
            info!("enrollment portal on http://{bound}/enroll");
        }
        let upkeep = handle.clone();
        let router = crate::http::router(crate::http::HttpState {
            metrics: handle,
            store: store.clone(),
            health: carry.health.clone(),
            oob: oob.clone(),
            primary: Some(primary.clone()),
            admin,
            portal,
        });
        let http_token = token.clone();
        tasks.spawn(async move {
            if let Err(error) = crate::http::serve(listener, router, http_token).await {
                warn!(%error, "HTTP listener failed");
            }
        });
        // Histograms need periodic upkeep in the exporter.
        let upkeep_token = token.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => upkeep.run_upkeep(),
                    _ = upkeep_token.cancelled() => return,
                }
            }
        });
    }
    tasks.spawn(wait_for_signal(token.clone()));
    // The ntfy reply relay: answers come back over a connection we open.
    let mut relay = None;
    if let (Some(push), Some(oob)) = (&config.push, pipeline.out_of_band())
        && let Some(relay_key) = reload::RelayKey::of(push)
    {
        let cancel = token.child_token();
        if build_out_of_band_relay(push, oob, cancel.clone())? {
            info!("push: ntfy reply relay started");
            relay = Some(reload::Relay {
                key: relay_key,
                cancel,
            });
        }
    }

    let options = ServerOptions {
        max_in_flight: config.max_in_flight,
        duplicate_ttl: config.duplicate_ttl,
        workers: Some(tokio::runtime::Handle::current()),
        ..ServerOptions::default()
    };
    // RadSec (RFC 6614) is bound here, so that a reload can replace its TLS
    // configuration (certificates, CA bundle, CRLs); it is served below.
    let radsec_bound = match &config.radsec {
        None => None,
        Some(radsec) => {
            let (listener, tls) = crate::radius::radsec::bind(radsec).await?;
            Some((listener, Arc::new(Live::new(tls))))
        }
    };
    let running = Arc::new(reload::Running {
        radsec_tls: radsec_bound.as_ref().map(|(_, tls)| tls.clone()),
        carry: std::sync::Mutex::new(carry.after(&pipeline)),
        started: config,
        store,
        key,
        audit,
        pipeline: live_pipeline,
        routes: routes.clone(),
        oob,
        relay: std::sync::Mutex::new(relay),
        shutdown: token.clone(),
    });
    drop(pipeline);
    tasks.spawn(reload::on_hangup(running.clone(), hangup));

    // The receive loop gets a thread (and a small runtime) of its own: requests
    // run on the worker threads, and a burst of datagrams is read off the
    // socket at once even while every worker is busy, instead of overflowing
    // the kernel's receive buffer (measured: 46 of 300 simultaneous requests
    // lost when the loop shared the workers).
    let socket = socket.into_std()?;
    // RadSec (RFC 6614): a TLS listener beside UDP, on the same routes.
    let radsec = match (radsec_bound, &running.started.radsec) {
        (None, _) | (_, None) => None,
        (Some((listener, tls)), Some(radsec)) => {
            use crate::radius::radsec::{RadsecOptions, serve};
            info!("RadSec listening on tcp/{}", listener.local_addr()?);
            let limits = (running.started.max_in_flight, running.started.duplicate_ttl);
            let options = RadsecOptions::from_config(radsec, limits.0, limits.1);
            let (routes, token) = (routes.clone(), token.clone());
            Some(tokio::spawn(serve(listener, tls, routes, options, token)))
        }
    };
    let radius_token = token.clone();
    let (finished, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("radius-rx".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let socket = UdpSocket::from_std(socket)?;
                        serve_radius(socket, routes, options, radius_token).await
                    })
                });
            let _ = finished.send(outcome);
        })
        .context("cannot start the RADIUS receive thread")?;
    // Both sockets are bound: datagrams and connections queue in the kernel
    // from here on, so systemd may start what depends on rampart.
    notify::ready(&match http_address {
        Some(http) => format!("serving RADIUS on udp/{local}, HTTP on {http}"),
        None => format!("serving RADIUS on udp/{local}"),
    });
    result
        .await
        .context("RADIUS receive thread ended")?
        .context("RADIUS listener failed")?;
    token.cancel();
    if let Some(radsec) = radsec {
        // Its in-flight requests finish and their replies are written first.
        let _ = radsec.await;
    }
    tasks.shutdown().await;
    // Every pipeline (and its audit handle) is gone with the RADIUS thread and
    // the tasks: the writer flushes what is queued and ends.
    drop(running);
    let _ = audit_task.await;
    let _ = monitor_task.await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
        _ = token.cancelled() => return,
    }
    notify::stopping();
    token.cancel();
}

/// Installs the Prometheus recorder with real histogram buckets for latencies.
fn install_metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ],
        )
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// The address a client should use to reach a listener bound to `listen`.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        ip if ip.is_unspecified() && listen.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], listen.port()))
        }
        ip if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}
