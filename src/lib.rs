//! rampart: a RADIUS MFA proxy. NAS devices (VPN concentrators, RD Gateway via
//! NPS) send Access-Requests; rampart checks the password, then a second
//! factor, and only then answers Access-Accept.
//!
//! Layout: `radius` is the wire (pure codec + the one socket owner), `pipeline`
//! is the request path, `auth` and `factor` are backends behind small traits,
//! `store` persists enrollment, `config` reads and validates the file, `app`
//! wires it together, `cli` is the admin's command line and `portal` the
//! users' self-enrollment pages.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod factor;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod invite;
pub mod live;
pub mod mail;

pub mod pipeline;
pub mod portal;
pub mod radius;
pub mod seal;
pub mod secret;
pub mod session;
pub mod store;
pub mod text;
pub mod username;
