-- rampart store schema v4 (PostgreSQL): the phone-call PIN; mirrors
-- migrations/sqlite/0004_phone_pin.sql.

-- Keyed hash (SealKey::code_hash, domain "phone-pin") of the PIN a user
-- types on a verification call when [phone] pin is "optional" or
-- "required"; NULL = no PIN. Never the PIN itself: 4 to 8 digits are
-- guessed offline in moments without the key.
ALTER TABLE accounts ADD COLUMN phone_pin_hash TEXT;
