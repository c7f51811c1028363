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

/// One more failure for `?1`; at `?2` failures, lock until `?3` and reset the
/// count to 0 (which tells the caller this call locked). One upsert, so
/// concurrent failures are neither lost nor each trigger the lock.
pub(super) const RECORD_FAILURE: &str = "INSERT INTO lockouts (name, failures, locked_until) \
     VALUES (?1, CASE WHEN 1 >= ?2 THEN 0 ELSE 1 END, CASE WHEN 1 >= ?2 THEN ?3 ELSE NULL END) \
     ON CONFLICT (name) DO UPDATE SET \
     failures = CASE WHEN lockouts.failures + 1 >= ?2 THEN 0 ELSE lockouts.failures + 1 END, \
     locked_until = CASE WHEN lockouts.failures + 1 >= ?2 THEN ?3 ELSE lockouts.locked_until END \
     RETURNING failures, locked_until";

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
