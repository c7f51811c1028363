-- rampart store schema v3 (PostgreSQL): app passwords, invitations, audit
-- log; mirrors migrations/sqlite/0003_portal_admin.sql (BIGSERIAL for the
-- audit id, SQLite's INTEGER PRIMARY KEY rowid).

-- Named app passwords (Outlook and other non-browser apps): random, shown
-- once, stored as keyed hashes. Accepted in place of password + second factor
-- only on clients with allow_app_passwords = true.
CREATE TABLE app_passwords (
    name       TEXT   NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
    label      TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_used  BIGINT,
    PRIMARY KEY (name, label)
);
CREATE UNIQUE INDEX app_passwords_hash ON app_passwords (hash);

-- Single-use enrollment invitations: the keyed hash of the link's token.
CREATE TABLE invitations (
    hash       TEXT   NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- One row per decision, written in batches off the request path.
CREATE TABLE audit (
    id       BIGSERIAL PRIMARY KEY,
    time     BIGINT  NOT NULL,
    name     TEXT    NOT NULL,
    client   TEXT    NOT NULL,
    station  TEXT,
    outcome  TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    factor   TEXT    NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX audit_name_time ON audit (name, time);
CREATE INDEX audit_time ON audit (time);
