//! The statements of the login hot path on PostgreSQL: the SQLite ones
//! (`sqlite/sql.rs`) with `$n` parameters, PostgreSQL's upsert alias, and
//! the success bookkeeping folded into one statement. Each is a single
//! statement, so each is atomic however many nodes run it at once.

/// Lockout, failures, last login, enrollment and account existence of `$1`.
pub(super) const LOGIN_STATE: &str = "SELECT t.sealed_secret, t.last_step, l.failures, \
     l.locked_until, a.last_login, a.name IS NOT NULL AS has_account \
     FROM (SELECT $1::text AS name) AS q \
     LEFT JOIN totp AS t ON t.name = q.name \
     LEFT JOIN lockouts AS l ON l.name = q.name \
     LEFT JOIN accounts AS a ON a.name = q.name";

/// Compare-and-set of the last accepted TOTP step (RFC 6238 §5.2): changes
/// the row only when `$2` is newer. A concurrent claim of the same row waits
/// for this one to commit, then re-evaluates the condition on the new row
/// (READ COMMITTED, PostgreSQL docs §13.2.1), so exactly one wins.
pub(super) const CLAIM_STEP: &str = "UPDATE totp SET last_step = $2 \
     WHERE name = $1 AND (last_step IS NULL OR last_step < $2)";

/// Single use: the DELETE is the check.
pub(super) const CONSUME_RECOVERY_CODE: &str =
    "DELETE FROM recovery_codes WHERE name = $1 AND hash = $2";

/// One more failure for `$1`; at `$2` failures, lock until `$3` and reset the
/// count to 0 (which tells the caller this call locked). `INSERT ... ON
/// CONFLICT DO UPDATE` is atomic in PostgreSQL (docs, INSERT: "ON CONFLICT DO
/// UPDATE guarantees an atomic INSERT or UPDATE outcome"), so concurrent
/// failures at several nodes are neither lost nor each trigger the lock.
pub(super) const RECORD_FAILURE: &str = "INSERT INTO lockouts AS l (name, failures, locked_until, last_failure) \
     VALUES ($1, CASE WHEN 1 >= $2 THEN 0 ELSE 1 END, CASE WHEN 1 >= $2 THEN $3 ELSE NULL END, $4) \
     ON CONFLICT (name) DO UPDATE SET \
     failures = CASE WHEN l.failures + 1 >= $2 THEN 0 ELSE l.failures + 1 END, \
     locked_until = CASE WHEN l.failures + 1 >= $2 THEN $3 ELSE l.locked_until END, \
     last_failure = $4 \
     RETURNING failures, locked_until";

/// Forgets lockout rows whose lock is over (`$1` = now) and whose last
/// failure is older than `$2`: what a spray of invented names leaves behind.
pub(super) const PURGE_LOCKOUTS: &str = "DELETE FROM lockouts \
     WHERE (locked_until IS NULL OR locked_until <= $1) \
     AND COALESCE(last_failure, 0) < $2";

/// The health probe's write (one row per node).
pub(super) const HEARTBEAT: &str = "INSERT INTO heartbeat (node, at) VALUES ($1, $2) \
     ON CONFLICT (node) DO UPDATE SET at = excluded.at";

/// After a success: failures reset, an expired lock cleared (an active one
/// kept), and the login time recorded, in one statement (a data-modifying
/// CTE runs in the same snapshot and commit as the main statement), so one
/// round trip instead of a four-message transaction.
/// [`CLAIM_STEP`] and, when it wins and `$3` is not null, [`RECORD_SUCCESS`]
/// at `$3`: one statement, one round trip per TOTP login (the CTEs see the
/// claim's RETURNING; all run in the statement's one transaction).
pub(super) const CLAIM_LOGIN: &str = "WITH claimed AS (UPDATE totp SET last_step = $2 \
     WHERE name = $1 AND (last_step IS NULL OR last_step < $2) RETURNING name), \
     reset AS (UPDATE lockouts SET failures = 0, \
     locked_until = CASE WHEN locked_until <= $3 THEN NULL ELSE locked_until END \
     WHERE name IN (SELECT name FROM claimed) AND $3::bigint IS NOT NULL), \
     seen AS (UPDATE accounts SET last_login = $3 \
     WHERE name IN (SELECT name FROM claimed) AND $3::bigint IS NOT NULL) \
     SELECT count(*) AS claimed FROM claimed";

pub(super) const RECORD_SUCCESS: &str = "WITH reset AS (UPDATE lockouts SET failures = 0, \
     locked_until = CASE WHEN locked_until <= $2 THEN NULL ELSE locked_until END \
     WHERE name = $1) \
     UPDATE accounts SET last_login = $2 WHERE name = $1";
