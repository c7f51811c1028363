//! Integration tests: the real `rampart` binary on loopback, driven by the real
//! `radclient` (freeradius-utils) and by rampart's own Rust client. One test
//! binary for the whole suite (each file under tests/ would link its own).

mod common;
mod config_errors;
mod ldap;
mod ldap_backend;
mod login;
mod operations;
mod upstream;
mod wire;
