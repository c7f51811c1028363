//! User-Password hiding (RFC 2865 §5.2): revealing arbitrary hidden octets
//! never panics and refuses impossible lengths; hiding then revealing gives
//! the password back (minus trailing NULs, which are padding on the wire).
//!
//! Input: secret length (one octet, mod 65), the secret, the 16-octet Request
//! Authenticator, then the octets used both as a hidden value and a password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::radius::crypto::{MAX_PASSWORD_LEN, hide_password, reveal_password};

fuzz_target!(|data: &[u8]| {
    let Some((&secret_len, rest)) = data.split_first() else {
        return;
    };
    let secret_len = usize::from(secret_len % 65).min(rest.len());
    let (secret, rest) = rest.split_at(secret_len);
    let Some((authenticator, payload)) = rest.split_first_chunk::<16>() else {
        return;
    };

    let revealed = reveal_password(payload, secret, authenticator);
    let good_length = (16..=MAX_PASSWORD_LEN).contains(&payload.len()) && payload.len() % 16 == 0;
    assert_eq!(revealed.is_ok(), good_length);
    if let Ok(plain) = revealed {
        assert!(plain.len() <= payload.len());
        assert!(plain.last() != Some(&0));
    }

    match hide_password(payload, secret, authenticator) {
        Ok(hidden) => {
            assert!(payload.len() <= MAX_PASSWORD_LEN);
            assert_eq!(hidden.len(), payload.len().div_ceil(16).max(1) * 16);
            let back = reveal_password(&hidden, secret, authenticator).expect("hidden reveals");
            let end = payload.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            assert_eq!(&back[..], &payload[..end]);
        }
        Err(_) => assert!(payload.len() > MAX_PASSWORD_LEN),
    }
});
