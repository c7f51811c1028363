//! The appended-code parser (`password,123456`, `password,push`), the reading
//! of User-Password without a password backend, and `classify`: arbitrary
//! text never panics, and a split always puts the text back together.
//!
//! Input: one flag octet (bit 0 keywords, bit 1 long codes, bits 2–3 the
//! separator: `,` space `+` or, for 3, the text up to the first NUL), then the
//! typed text as UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::factor::{Response, classify};
use rampart::fuzzing::{Split, asked_alone, split_code};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let keywords = flags & 1 != 0;
    let long_codes = flags & 2 != 0;
    let (separator, text) = match (flags >> 2) & 3 {
        0 => (",", rest),
        1 => (" ", rest),
        2 => ("+", rest),
        _ => rest.split_once('\0').unwrap_or((",", rest)),
    };

    let (password, split) = split_code(text, separator, keywords, long_codes);
    match &split {
        Split::Nothing => assert_eq!(password, text),
        Split::Code(code) => assert_eq!(format!("{password}{separator}{code}"), text),
        Split::Keyword(_) => {
            assert!(keywords);
            assert!(text.starts_with(&format!("{password}{separator}")));
            assert!(password.len() + separator.len() < text.len());
        }
    }
    if let Some(response) = classify(text) {
        let (Response::Totp(code) | Response::Recovery(code)) = &response;
        assert!(!code.is_empty());
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    match asked_alone(Some(text), keywords) {
        Split::Nothing => assert!(text.trim().is_empty()),
        Split::Code(code) => assert_eq!(code, text),
        Split::Keyword(_) => assert!(keywords),
    }
});
