//! The PostgreSQL store against a real server (started by the integration
//! harness's `common/postgres.rs`, included here): the whole store
//! conformance suite, each case on a fresh database, then what only a
//! shared server has: two stores (two nodes' pools) racing on one database,
//! transactions rolled back by the server, the schema mirroring SQLite's,
//! and a server restart under an open store. One server for all of it,
//! since `initdb` takes a second or two.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::postgres::PgConnectOptions;

use crate::store::{PostgresStore, SqliteStore, Store, StoreConfig, StoreError, conformance};

#[path = "../../../tests/integration/common/postgres.rs"]
mod server;

// The server module picks its port through `super::ports`, as in the integration harness.
#[path = "../../../tests/integration/common/ports.rs"]
mod ports;

use server::Postgres;

async fn open(pg: &Postgres, database: &str, timeout: Duration) -> PostgresStore {
    let options = PgConnectOptions::from_str(&pg.url(database)).unwrap();
    PostgresStore::open_with(options, 8, timeout).await.unwrap()
}

/// A fresh database and a store on it.
async fn fresh(pg: &Postgres, database: &str) -> PostgresStore {
    pg.create_database(database);
    open(pg, database, Duration::from_secs(10)).await
}

#[test]
fn postgres_store() {
    let mut pg = Postgres::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut failed = conformance::run_all(|name| {
            let pg = &pg;
            async move { Arc::new(fresh(pg, name).await) as Arc<dyn Store> }
        })
        .await;
        macro_rules! case {
            ($name:ident) => {
                let store = fresh(&pg, stringify!($name)).await;
                if tokio::spawn($name(store)).await.is_err() {
                    failed.push(stringify!($name));
                }
            };
        }
        case!(writes_are_transactional);
        case!(a_failing_import_rolls_back);
        case!(schema_mirrors_sqlite);
        case!(migrations_run_once);
        two_nodes(&pg).await;
        config_and_password_file(&pg).await;
        restart(&mut pg).await;
        assert!(failed.is_empty(), "failed on PostgreSQL: {failed:?}");
    });
}

async fn exec(store: &PostgresStore, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
}

async fn writes_are_transactional(s: PostgresStore) {
    // Make the second statement of set_totp / replace_recovery_codes fail
    // after the account row was inserted (the SQLite test, with triggers
    // in PL/pgSQL).
    exec(
        &s,
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
         CREATE TRIGGER fail_totp BEFORE INSERT ON totp FOR EACH ROW EXECUTE FUNCTION fail(); \
         CREATE TRIGGER fail_codes BEFORE INSERT ON recovery_codes FOR EACH ROW \
         WHEN (NEW.hash = 'bad') EXECUTE FUNCTION fail();",
    )
    .await;
    let err = s.set_totp("alice", b"sealed-secret", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("injected failure") && !msg.contains("alice") && !msg.contains("sealed"),
        "{msg}"
    );
    assert_eq!(s.user("alice").await.unwrap(), None, "account rolled back");

    s.replace_recovery_codes("bob", &["h1".into()], 1)
        .await
        .unwrap();
    assert!(
        s.replace_recovery_codes("bob", &["n1".into(), "bad".into()], 2)
            .await
            .is_err()
    );
    assert!(!s.consume_recovery_code("bob", "n1").await.unwrap());
    assert!(s.consume_recovery_code("bob", "h1").await.unwrap());

    exec(&s, "DROP TRIGGER fail_totp ON totp").await;
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    assert!(s.user("alice").await.unwrap().unwrap().totp);
}

async fn a_failing_import_rolls_back(s: PostgresStore) {
    s.set_totp("user00000", b"kept", 1).await.unwrap();
    exec(
        &s,
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
         CREATE TRIGGER fail_import BEFORE INSERT ON totp FOR EACH ROW \
         WHEN (NEW.name = 'user07500') EXECUTE FUNCTION fail();",
    )
    .await;
    // Fails in the second chunk, after a whole chunk was written.
    let seeds: Vec<(String, Vec<u8>)> = (0..8_000)
        .map(|i| (format!("user{i:05}"), format!("sealed-{i}").into_bytes()))
        .collect();
    let err = s.import_totp(&seeds, 9).await.unwrap_err();
    assert!(!err.to_string().contains("sealed-"), "{err}");
    assert_eq!(s.list_users().await.unwrap().len(), 1, "nothing added");
    assert_eq!(
        s.totp("user00000").await.unwrap().unwrap().sealed_secret,
        b"kept"
    );
    exec(&s, "DROP TRIGGER fail_import ON totp").await;
    s.import_totp(&seeds, 9).await.unwrap();
    assert_eq!(s.list_users().await.unwrap().len(), 8_000);
}

async fn schema_mirrors_sqlite(s: PostgresStore) {
    // Column for column, in order, with SQLite's declared types mapped to
    // PostgreSQL's (BLOB → bytea; the audit rowid → bigint).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let sqlite = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let tables = [
        "accounts",
        "totp",
        "recovery_codes",
        "lockouts",
        "devices",
        "sms_codes",
        "app_passwords",
        "invitations",
        "audit",
    ];
    for table in tables {
        let lite: Vec<(String, String, bool)> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, type, \"notnull\" OR pk = 1 FROM pragma_table_info('{table}') ORDER BY cid"
        )))
        .fetch_all(&sqlite)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let column: String = row.get(0);
            let declared: String = row.get(1);
            let pg_type = match (table, column.as_str(), declared.as_str()) {
                ("audit", "id", "INTEGER") => "bigint",
                (_, _, "TEXT") => "text",
                (_, _, "BIGINT") => "bigint",
                (_, _, "INTEGER") => "integer",
                (_, _, "BLOB") => "bytea",
                other => panic!("unmapped SQLite type {other:?}"),
            };
            (column, pg_type.to_string(), row.get(2))
        })
        .collect();
        let pg: Vec<(String, String, bool)> = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable = 'NO' \
             FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(s.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
        assert_eq!(pg, lite, "table {table}");
    }
}

async fn migrations_run_once(s: PostgresStore) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(s.pool())
        .await
        .unwrap();
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    // Two more nodes start at once on the migrated database.
    let options = || {
        PgConnectOptions::from_str(&format!(
            "postgres://{}:{}@127.0.0.1:{}/{database}",
            server::USER,
            server::PASSWORD,
            s.pool().connect_options().get_port()
        ))
        .unwrap()
    };
    let (a, b) = tokio::join!(
        PostgresStore::open_with(options(), 2, Duration::from_secs(10)),
        PostgresStore::open_with(options(), 2, Duration::from_secs(10)),
    );
    a.unwrap();
    b.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(s.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert!(s.totp("alice").await.unwrap().is_some());
}

/// Two stores with their own pools on one database, as two rampart nodes:
/// every single-use operation succeeds once, whichever node asks.
async fn two_nodes(pg: &Postgres) {
    pg.create_database("two_nodes");
    let a: Arc<dyn Store> = Arc::new(open(pg, "two_nodes", Duration::from_secs(10)).await);
    let b: Arc<dyn Store> = Arc::new(open(pg, "two_nodes", Duration::from_secs(10)).await);
    a.set_totp("alice", b"sealed", 1).await.unwrap();
    a.replace_recovery_codes("alice", &["r1".into()], 1)
        .await
        .unwrap();
    a.put_sms_code("alice", "s1", 100).await.unwrap();
    b.create_invitation("inv", "alice", 100, 1).await.unwrap();
    b.add_app_password("alice", "mail", "ap", 1).await.unwrap();

    let race = |op: fn(Arc<dyn Store>) -> tokio::task::JoinHandle<bool>| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|i| op(if i % 2 == 0 { a.clone() } else { b.clone() }))
                .collect();
            let mut wins = 0;
            for t in tasks {
                wins += usize::from(t.await.unwrap());
            }
            wins
        }
    };
    let claim =
        race(|s| tokio::spawn(async move { s.claim_totp_step("alice", 50).await.unwrap() }));
    assert_eq!(claim.await, 1, "TOTP step claimed once");
    let code = race(|s| {
        tokio::spawn(async move { s.consume_recovery_code("alice", "r1").await.unwrap() })
    });
    assert_eq!(code.await, 1, "recovery code used once");
    let sms =
        race(|s| tokio::spawn(async move { s.take_sms_code("alice", "s1", 50).await.unwrap() }));
    assert_eq!(sms.await, 1, "SMS code used once");
    let invitation = race(|s| {
        tokio::spawn(async move { s.redeem_invitation("inv", 50).await.unwrap().is_some() })
    });
    assert_eq!(invitation.await, 1, "invitation redeemed once");
    // App passwords are reusable, but every use is recorded.
    let app = race(|s| {
        tokio::spawn(async move {
            s.use_app_password("alice", "ap", 60)
                .await
                .unwrap()
                .is_some()
        })
    });
    assert_eq!(app.await, 16);
    // Failures from both nodes add up: 32 failures at threshold 8 lock 4 times.
    let locks = race(|s| {
        tokio::spawn(async move {
            s.record_failure("alice", 70, 8, 60)
                .await
                .unwrap()
                .is_some()
        })
    });
    let locks = locks.await
        + race(|s| {
            tokio::spawn(async move {
                s.record_failure("alice", 70, 8, 60)
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .await;
    assert_eq!(locks, 4);
    assert_eq!(
        b.login_state("alice", 71).await.unwrap().locked_until,
        Some(130)
    );
    b.lock_user("bob", 500).await.unwrap();
    assert_eq!(
        a.login_state("bob", 100).await.unwrap().locked_until,
        Some(500)
    );
}

/// `PostgresStore::open` from `[store]`: the password from `password_file`;
/// a wrong one fails without the password in the message.
async fn config_and_password_file(pg: &Postgres) {
    pg.create_database("from_config");
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, format!("{}\n", server::PASSWORD)).unwrap();
    let config = StoreConfig {
        url: Some(pg.url_without_password("from_config")),
        password_file: Some(password_file.display().to_string()),
        timeout_ms: Some(5000),
        ..StoreConfig::default()
    };
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let store = PostgresStore::open(&config).await.unwrap();
    store.add_user("alice", "hash", 1).await.unwrap();
    assert!(store.any_sealed_seed().await.unwrap().is_none());
    store.set_totp("alice", b"sealed", 1).await.unwrap();
    assert_eq!(
        store.any_sealed_seed().await.unwrap(),
        Some(("alice".to_string(), b"sealed".to_vec()))
    );

    std::fs::write(&password_file, "wrong-Passw0rd").unwrap();
    let err = PostgresStore::open(&config).await.unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-Passw0rd"), "{err}");
}

/// The server restarts under an open store: operations fail within the
/// timeout while it is down, succeed again without reopening the store once
/// it is back, and everything committed before is still there.
async fn restart(pg: &mut Postgres) {
    pg.create_database("restart");
    let store = open(pg, "restart", Duration::from_millis(1000)).await;
    store.set_totp("alice", b"sealed", 1).await.unwrap();
    assert!(store.claim_totp_step("alice", 7).await.unwrap());
    store.record_failure("bob", 1, 5, 60).await.unwrap();
    // Fill the pool with idle connections the restart will break.
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            let pool = store.pool().clone();
            tokio::spawn(async move {
                sqlx::query("SELECT pg_sleep(0.2)")
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for sleeper in sleepers {
        sleeper.await.unwrap();
    }
    assert_eq!(store.pool().size(), 8);

    pg.stop();
    let started = Instant::now();
    let err = store.login_state("alice", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "failed after {:?}",
        started.elapsed()
    );
    assert!(store.claim_totp_step("alice", 8).await.is_err());

    pg.start_again();
    // The first request after the restart already succeeds: broken pooled
    // connections are tested and replaced before use.
    let state = store.login_state("alice", 1).await.unwrap();
    assert_eq!(state.totp.unwrap().last_step, Some(7), "claim survived");
    assert!(!store.claim_totp_step("alice", 7).await.unwrap(), "replay");
    assert!(store.claim_totp_step("alice", 8).await.unwrap());
    assert_eq!(store.user("bob").await.unwrap(), None);
    assert_eq!(store.login_state("bob", 1).await.unwrap().failures, 1);
}
