//! The push provider: through the library API against the ntfy emulator, a
//! webhook receiver and a scripted phone (`ntfy`, `relay`, `answer`), and
//! end to end with the real binary and radclient (`e2e`). Shared helpers here.

mod answer;
mod e2e;
mod ntfy;
mod relay;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use rampart::factor::oob::pending::{JoinKey, Park, Parked};
use rampart::factor::oob::{Channel, LoginContext, OutOfBand, OutOfBandConfig, PushTarget};
use rampart::factor::push::PushConfig;
use rampart::seal::SealKey;
use rampart::secret::Secret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::ntfy::Ntfy;
use crate::common::unix_now;

const REPLY_TOPIC: &str = "rampart-replies-Q7m2x9K4v1Zt8b";
const ALICE_TOPIC: &str = "alice-Hk38dPq0Lm2v";
const WAIT: Duration = Duration::from_secs(10);

// ---- helpers ----

/// The test process's recorder (shared with the other in-process tests).
fn recorder() -> &'static PrometheusHandle {
    crate::common::recorder::metrics()
}

/// Tests here that read counters run one at a time.
static COUNTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn counter(series: &str) -> f64 {
    crate::common::recorder::counter(series)
}

fn refused(reason: &str) -> f64 {
    counter(&format!(
        "rampart_oob_answers_refused_total{{reason=\"{reason}\"}}"
    ))
}

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Captures this thread's logs (the tests run on a current-thread runtime,
/// so the relay's and the HTTP handlers' logs land here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

fn out_of_band(public_url: Option<String>) -> Arc<OutOfBand> {
    let config = OutOfBandConfig {
        timeout_secs: 60,
        public_url,
        ..OutOfBandConfig::default()
    };
    Arc::new(OutOfBand::new(
        config,
        Arc::new(SealKey::from_bytes(rand::random())),
    ))
}

fn context(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        client: "vpn".into(),
        client_address: "192.0.2.1".parse().unwrap(),
        nas_identifier: Some("gw1".into()),
        calling_station_id: Some("203.0.113.7".into()),
        time: unix_now(),
    }
}

fn park(oob: &OutOfBand, user: &str) -> Parked {
    let join = JoinKey {
        client: Arc::from("vpn"),
        station: Some("203.0.113.7".into()),
    };
    match oob.pending.park(user, join, Channel::Push) {
        Park::New(parked) => parked,
        _ => panic!("{user} already has a transaction"),
    }
}

fn ntfy_config(ntfy: &Ntfy, extra: Value) -> PushConfig {
    let mut config = json!({"format": "ntfy", "url": ntfy.url});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

fn target(url: String) -> PushTarget {
    PushTarget {
        url: Secret::new(url),
    }
}

/// rampart's HTTP listener (the real router) on 127.0.0.1:0, with `oob`
/// built by `make` once the address is known (it goes into public_url).
async fn http_listener(
    make: impl FnOnce(String) -> Arc<OutOfBand>,
) -> (String, Arc<OutOfBand>, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let oob = make(base.clone());
    let store = rampart::store::sqlite::SqliteStore::open_in_memory()
        .await
        .unwrap();
    let router = rampart::http::router(rampart::http::HttpState {
        oob: rampart::factor::oob::OobHandle::new(Some(oob.clone())),
        ..rampart::http::HttpState::new(recorder().clone(), Arc::new(store))
    });
    let cancel = CancellationToken::new();
    tokio::spawn(rampart::http::serve(listener, router, cancel.clone()));
    (base, oob, cancel)
}
