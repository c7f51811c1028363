//! The self-enrollment portal, driven in-process through its axum Router
//! (`tower::ServiceExt::oneshot`, no socket): arbitrary methods, paths, query
//! strings, headers (cookies, X-Forwarded-For) and form bodies against every
//! handler, with and without a signed-in session and a valid CSRF token.
//! No request may panic or answer 500.
//!
//! Input: up to 4 steps separated by a line `--`. A step is a request line
//! `METHOD /path?query FLAGS`, header lines, a blank line and the body.
//! FLAGS: `S` sends the input's signed-in session, `P` the session the
//! previous step's response set, `C` puts the matching CSRF token first in
//! the body. Every input gets a fresh user, signed in before its steps.
#![no_main]

mod portal_harness;

use libfuzzer_sys::fuzz_target;
use portal_harness::{Harness, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    Harness::with(|harness| {
        let signed = harness.sign_in();
        let mut previous: Option<String> = None;
        for step in text.split("\n--\n").take(4) {
            let (head, body) = step.split_once("\n\n").unwrap_or((step, ""));
            let mut lines = head.lines();
            let mut words = lines.next().unwrap_or_default().split(' ');
            let method = words.next().unwrap_or_default();
            let target = words.next().unwrap_or("/");
            let flags = words.next().unwrap_or_default();
            let session = if flags.contains('S') {
                signed.as_ref().map(|s| s.id.clone())
            } else if flags.contains('P') {
                previous.clone()
            } else {
                None
            };
            let csrf = match &signed {
                Some(s) if flags.contains('S') => s.csrf.as_str(),
                _ => portal_harness::SIGNIN_TOKEN,
            };
            let request = Request {
                method,
                target,
                headers: lines.filter_map(|l| l.split_once(':')).collect(),
                body: body.as_bytes(),
                session: session.as_deref(),
                csrf: flags.contains('C').then_some(csrf),
            };
            if let Some(set) = harness.send(&request) {
                previous = Some(set);
            }
        }
    });
});
