-- rampart store schema v5 (SQLite): store health and bounded lockout rows.

-- One row per node, rewritten by its health probe: a write that proves the
-- store takes writes (not only reads) without touching any user's data.
CREATE TABLE heartbeat (
    node TEXT    NOT NULL PRIMARY KEY,
    at   BIGINT  NOT NULL
);

-- Time of the latest failure, so rows for names nobody uses any more (a
-- password spray of invented names) can be purged once their lock is over
-- and their failures are old. NULL for rows written before this version.
ALTER TABLE lockouts ADD COLUMN last_failure BIGINT;
CREATE INDEX lockouts_last_failure ON lockouts (last_failure);
