//! CSRF protection for every POST. Signed-in forms carry the session's own
//! token; the sign-in and invitation forms, which come before any session,
//! use the double-submit pattern (a random cookie echoed in a hidden field).
//! Both compare in constant time. `SameSite=Strict` cookies already keep
//! other sites' forms from carrying the session; the token is the second,
//! independent check (OWASP CSRF Prevention Cheat Sheet).

use subtle::ConstantTimeEq;

/// Whether the token typed back matches the expected one. An empty expected
/// token never matches.
pub fn matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(matches("abc123", "abc123"));
        assert!(!matches("abc123", "abc124"));
        assert!(!matches("abc123", ""));
        assert!(!matches("abc123", "abc1234"));
        assert!(!matches("", ""));
    }
}
