-- rampart store schema v1 (PostgreSQL), column for column the SQLite
-- migrations/sqlite/0001_init.sql, with BYTEA in place of BLOB.
-- Times are unix seconds.

-- One row per known user: local users (password_hash set) and directory
-- users that enrolled a factor here (password_hash NULL).
CREATE TABLE accounts (
    name          TEXT   NOT NULL PRIMARY KEY,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    last_login    BIGINT
);

-- The TOTP seed, sealed by the daemon (never stored in clear), and the last
-- accepted time step for the RFC 6238 replay guard.
CREATE TABLE totp (
    name          TEXT   NOT NULL PRIMARY KEY
                  REFERENCES accounts (name) ON DELETE CASCADE,
    sealed_secret BYTEA  NOT NULL,
    last_step     BIGINT,
    created_at    BIGINT NOT NULL
);

-- Keyed hashes of unused recovery codes; a code is consumed by deleting it.
CREATE TABLE recovery_codes (
    name       TEXT   NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
    hash       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, hash)
);

-- Consecutive failures and lock state. Deliberately not tied to accounts:
-- unknown names are tracked too, so probing for users cannot dodge lockout.
CREATE TABLE lockouts (
    name         TEXT    NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT
);
