//! User-name normalisation: one spelling per person, used for the store, the
//! lockout counter and the audit log alike. Surrounding space is trimmed and
//! case folded, as Windows and most directories treat names case-insensitively.

/// The normalised form of a user name.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn trims_and_folds_case() {
        assert_eq!(super::normalize("  Alice "), "alice");
    }
}
