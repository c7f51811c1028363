//! Integration tests: the real `rampart` binary on loopback, driven by the real
//! `radclient` (freeradius-utils) and by rampart's own Rust client. One test
//! binary for the whole suite (each file under tests/ would link its own).

mod admin;
mod bulk_import;
mod common;
mod config_errors;
mod duo;
mod faults;
mod ldap;
mod ldap_backend;
mod load_smoke;
mod login;
mod operations;
mod ops;
mod portal;
mod push;
mod radsec;
mod several_nodes;
mod twilio_e2e;
mod twilio_phone;
mod twilio_pin;
mod twilio_sms;
mod upstream;
mod wire;
