//! The store under a running daemon: full, read-only, frozen, deleted.
