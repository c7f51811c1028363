-- rampart store schema v2 (PostgreSQL): out-of-band factors; mirrors
-- migrations/sqlite/0002_out_of_band.sql.

-- Where a user's pushes and calls go: one row per device, several per kind
-- (a primary and a backup phone, two push topics). The target (topic URL or
-- phone number) is sealed like a TOTP seed: a push topic is a bearer secret.
CREATE TABLE devices (
    name          TEXT   NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
    kind          TEXT   NOT NULL,
    label         TEXT   NOT NULL,
    sealed_target BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (name, kind, label)
);

-- The factor used when the user types no keyword (NULL: push, phone, TOTP, SMS in that order).
ALTER TABLE accounts ADD COLUMN preferred_factor TEXT;

-- The one outstanding SMS code per user, as a keyed hash; consumed by deletion.
-- Not tied to accounts: directory users get codes to their directory number.
CREATE TABLE sms_codes (
    name       TEXT   NOT NULL PRIMARY KEY,
    hash       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
