//! Hot-path benchmarks: the per-request RADIUS work (decode, Message-Authenticator
//! check, User-Password reveal, signed reply; then the same through the
//! listeners' shared exchange with the duplicate cache) and TOTP verification,
//! alone and with the store's sealed-seed read and atomic replay claim.
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use rampart::factor::totp::{TotpConfig, TotpFactor, code_at};
use rampart::radius::clients::Client;
use rampart::radius::crypto::{check_request_message_authenticator, hide_password, sign_request};
use rampart::radius::dedup::DuplicateCache;
use rampart::radius::exchange::{Admission, Handler, admit, process};
use rampart::radius::reply::encode_reply;
use rampart::radius::{AccessRequest, Attribute, Code, Decision, Packet, attr};
use rampart::seal::SealKey;
use rampart::secret::Secret;
use rampart::store::{SqliteStore, Store};

const SECRET: &[u8] = b"testing123-benchmark";

fn access_request_bytes() -> Vec<u8> {
    let authenticator = [0x5a; 16];
    let hidden = hide_password(b"correct horse,123456", SECRET, &authenticator).unwrap();
    sign_request(
        Code::AccessRequest,
        1,
        &authenticator,
        &[
            Attribute::new(attr::USER_NAME, "user0001"),
            Attribute::new(attr::USER_PASSWORD, hidden),
            Attribute::new(attr::NAS_IP_ADDRESS, [192, 0, 2, 1]),
            Attribute::new(attr::CALLING_STATION_ID, "198.51.100.7"),
            Attribute::new(attr::NAS_IDENTIFIER, "vpn-1"),
        ],
        SECRET,
        true,
    )
    .unwrap()
}

fn radius(c: &mut Criterion) {
    let bytes = access_request_bytes();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let client: Arc<str> = "bench".into();
    c.bench_function("radius/decode+verify+reveal+encode_accept", |b| {
        b.iter(|| {
            let datagram = black_box(&bytes);
            let packet = Packet::decode(datagram).unwrap();
            let check = check_request_message_authenticator(datagram, SECRET);
            let request =
                AccessRequest::from_packet(&packet, SECRET, client.clone(), peer).unwrap();
            let reply = encode_reply(
                &Decision::Accept {
                    reply_message: None,
                    attributes: Vec::new(),
                },
                &packet,
                SECRET,
            )
            .unwrap();
            black_box((check, request.user_name.len(), reply))
        })
    });
    c.bench_function("radius/decode_only", |b| {
        b.iter(|| Packet::decode(black_box(&bytes)).unwrap())
    });

    // What the UDP and RadSec listeners run per request besides moving bytes:
    // the shared checks with a duplicate-cache entry, an answering handler,
    // the signed reply stored for retransmissions.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let nas = Client {
        name: client.clone(),
        network: "127.0.0.1/32".parse().unwrap(),
        secret: Secret::new(SECRET.to_vec()),
        require_message_authenticator: true,
        allow_app_passwords: false,
    };
    c.bench_function("radius/exchange admit+process (accept)", |b| {
        b.iter(|| {
            let dedup = DuplicateCache::new(Duration::from_secs(30));
            let Admission::New(request) = admit(black_box(&bytes), &nas, peer, &dedup) else {
                panic!("admitted")
            };
            runtime.block_on(process(request, &nas, peer, &AcceptAll, &dedup))
        })
    });
}

struct AcceptAll;

#[async_trait::async_trait]
impl Handler for AcceptAll {
    async fn handle(&self, request: AccessRequest) -> Decision {
        black_box(request);
        Decision::Accept {
            reply_message: None,
            attributes: Vec::new(),
        }
    }
}

fn totp(c: &mut Criterion) {
    let seed = *b"12345678901234567890";
    c.bench_function("totp/code_at", |b| {
        b.iter(|| code_at(black_box(&seed), black_box(1_700_000_000)))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A file database, as in production: the login path then runs SQLite inline.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        runtime
            .block_on(SqliteStore::open(&dir.path().join("bench.db")))
            .unwrap(),
    );
    let key = Arc::new(SealKey::from_bytes([3; 32]));
    runtime
        .block_on(store.set_totp("user0001", &key.seal(b"user0001", &seed), 0))
        .unwrap();
    let factor = TotpFactor::new(store.clone(), key, TotpConfig::default());
    // Each iteration uses the next 30 s step, so every check is a first use
    // (replay protection stays on) and ends in an atomic claim in SQLite.
    let mut now = 1_700_000_000u64;
    c.bench_function("totp/state read+verify+claim (SQLite file, WAL)", |b| {
        b.iter(|| {
            now += 30;
            let code = code_at(&seed, now);
            let outcome = runtime
                .block_on(factor.verify("user0001", &code, now))
                .unwrap();
            black_box(outcome)
        })
    });
}

criterion_group!(benches, radius, totp);
criterion_main!(benches);
