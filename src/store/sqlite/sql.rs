//! The statements of the login hot path, shared by the sqlx path (in-memory
//! databases) and the inline rusqlite path (file databases), so both run
//! exactly the same SQL.

/// Lockout, failures, last login, enrollment and account existence of `?1`.
pub(super) const LOGIN_STATE: &str = "SELECT t.sealed_secret, t.last_step, l.failures, \
     l.locked_until, a.last_login, a.name IS NOT NULL AS has_account \
     FROM (SELECT ?1 AS name) AS q \
     LEFT JOIN totp AS t ON t.name = q.name \
     LEFT JOIN lockouts AS l ON l.name = q.name \
     LEFT JOIN accounts AS a ON a.name = q.name";

/// Compare-and-set of the last accepted TOTP step (RFC 6238 §5.2): changes
/// the row only when `?2` is newer.
pub(super) const CLAIM_STEP: &str = "UPDATE totp SET last_step = ?2 \
     WHERE name = ?1 AND (last_step IS NULL OR last_step < ?2)";

/// Single use: the DELETE is the check.
pub(super) const CONSUME_RECOVERY_CODE: &str =
    "DELETE FROM recovery_codes WHERE name = ?1 AND hash = ?2";

/// One more failure for `?1` at `?4`; at `?2` failures, lock until `?3` and
/// reset the count to 0 (which tells the caller this call locked). One upsert,
/// so concurrent failures are neither lost nor each trigger the lock. Run
/// inside an explicit transaction: in autocommit, SQLite commits when the
/// statement is reset, after RETURNING has produced its row, and a failed
/// commit would go unseen (the count looks recorded, the lockout never comes).
pub(super) const RECORD_FAILURE: &str = "INSERT INTO lockouts (name, failures, locked_until, last_failure) \
     VALUES (?1, CASE WHEN 1 >= ?2 THEN 0 ELSE 1 END, CASE WHEN 1 >= ?2 THEN ?3 ELSE NULL END, ?4) \
     ON CONFLICT (name) DO UPDATE SET \
     failures = CASE WHEN lockouts.failures + 1 >= ?2 THEN 0 ELSE lockouts.failures + 1 END, \
     locked_until = CASE WHEN lockouts.failures + 1 >= ?2 THEN ?3 ELSE lockouts.locked_until END, \
     last_failure = ?4 \
     RETURNING failures, locked_until";

/// Forgets lockout rows whose lock is over (`?1` = now) and whose last
/// failure is older than `?2`: what a spray of invented names leaves behind.
pub(super) const PURGE_LOCKOUTS: &str = "DELETE FROM lockouts \
     WHERE (locked_until IS NULL OR locked_until <= ?1) \
     AND COALESCE(last_failure, 0) < ?2";

/// The health probe's write (one row per node).
pub(super) const HEARTBEAT: &str = "INSERT INTO heartbeat (node, at) VALUES (?1, ?2) \
     ON CONFLICT (node) DO UPDATE SET at = excluded.at";

/// After a success: failures reset; an expired lock cleared, an active one kept.
pub(super) const RESET_FAILURES: &str = "UPDATE lockouts SET failures = 0, \
     locked_until = CASE WHEN locked_until <= ?2 THEN NULL ELSE locked_until END \
     WHERE name = ?1";

/// After a success: the login time.
pub(super) const SET_LAST_LOGIN: &str = "UPDATE accounts SET last_login = ?2 WHERE name = ?1";

/// The factor used without a keyword.
pub(super) const PREFERRED_FACTOR: &str = "SELECT preferred_factor FROM accounts WHERE name = ?1";

/// A user's devices, ordered.
pub(super) const DEVICES: &str = "SELECT kind, label, sealed_target, created_at FROM devices \
     WHERE name = ?1 ORDER BY kind, label";
