//! `[duo]`: rampart's Duo Auth API v2 client against the Duo emulator
//! (`common::duo`). [`client`]: through the library API, each outcome a
//! login can have, what reached "Duo" for it, the metrics counted and the
//! logs written (never the skey or a passcode). [`emulator`]: the emulator
//! refuses unsigned, stale, mis-signed or incomplete requests as Duo does.
//! [`end_to_end`]: the real binary and the real radclient.

mod client;
mod emulator;
mod end_to_end;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use rampart::factor::duo::{DuoClient, DuoConfig};
use rampart::factor::oob::{
    Channel, HostedFactor, HostedMfa, HostedOutcome, HostedRequest, LoginContext,
};

use crate::common::duo::DuoEmulator;

pub const WRONG_SKEY: &str = "wrongSecretKey0123456789abcdefghijklmnop";

/// What one run of async code left behind: metrics text and log text.
pub struct Traces {
    pub metrics: String,
    pub logs: String,
}

impl Traces {
    /// The value of one series, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `future` on a current-thread runtime with a metrics recorder and a
/// log subscriber of its own (thread-local, so parallel tests do not mix).
pub fn run<T>(future: impl Future<Output = T>) -> (T, Traces) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || runtime.block_on(future))
    });
    let logs = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (
        output,
        Traces {
            metrics: handle.render(),
            logs,
        },
    )
}

pub fn client(emulator: &DuoEmulator, changes: serde_json::Value) -> DuoClient {
    let mut config = emulator.config_json();
    for (key, value) in changes.as_object().unwrap() {
        config[key] = value.clone();
    }
    let config: DuoConfig = serde_json::from_value(config).unwrap();
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    DuoClient::new(&config).unwrap()
}

pub fn context(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        client: "vpn".into(),
        client_address: "192.0.2.1".parse().unwrap(),
        nas_identifier: Some("asa-1".into()),
        calling_station_id: Some("203.0.113.7".into()),
        time: rampart_now(),
    }
}

pub fn rampart_now() -> u64 {
    crate::common::unix_now()
}

pub async fn login(
    client: &DuoClient,
    user: &str,
    factor: HostedFactor,
    deadline: Duration,
) -> HostedOutcome {
    let context = context(user);
    client
        .authenticate(&HostedRequest {
            context: &context,
            factor,
            deadline,
        })
        .await
}

pub const PUSH: HostedFactor = HostedFactor::Channel(Channel::Push);
pub const LONG: Duration = Duration::from_secs(20);

pub fn duo_outcome(outcome: &str) -> String {
    format!("rampart_provider_requests_total{{provider=\"duo\",outcome=\"{outcome}\"}}")
}

pub fn duo_error(reason: &str) -> String {
    format!("rampart_provider_errors_total{{provider=\"duo\",reason=\"{reason}\"}}")
}

#[track_caller]
pub fn assert_no_secrets(logs: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!logs.contains(secret), "logs contain {secret:?}:\n{logs}");
    }
}
