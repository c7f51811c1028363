//! RADIUS: the pure codec (`packet`, `attr`, `crypto`, `request`, `reply`), the
//! client table and duplicate cache, the packet handling both transports share
//! (`exchange`), the UDP listener (`server`, the only code that touches the UDP
//! socket), the RadSec listener (`radsec`, RADIUS over TLS) and a small client
//! (`client`) for `radtest`, tests and benchmarks.

pub mod attr;
pub mod client;
pub mod clients;
pub mod crypto;
pub mod dedup;
pub mod exchange;
pub mod packet;
#[cfg(test)]
mod proptests;
pub mod radsec;
#[cfg(test)]
mod regressions;
pub mod reply;
pub mod request;
pub mod server;

pub use packet::{Attribute, Code, Packet};
pub use reply::Decision;
pub use request::AccessRequest;
pub use server::{Handler, Routes, ServerOptions, serve};
