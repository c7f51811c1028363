//! Second factors. Each factor is one file owning its config; the pipeline
//! asks [`classify`] what kind of response the user typed and hands it to the
//! matching factor. Out-of-band factors (push, SMS, phone, Duo) join here later.

pub mod app_password;
mod delivery;
pub mod duo;
pub mod oob;
pub mod phone;
pub mod push;
pub mod recovery;
pub mod sms;
pub mod totp;
pub mod twilio;

/// What a typed response looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Six digits: a TOTP code.
    Totp(String),
    /// A recovery code, normalised (lowercase letters, no separators).
    Recovery(String),
}

/// Classifies a typed response; `None` when it is neither shape.
pub fn classify(text: &str) -> Option<Response> {
    let trimmed = text.trim();
    if totp::is_code_shaped(trimmed) {
        return Some(Response::Totp(trimmed.to_string()));
    }
    recovery::normalize(trimmed).map(Response::Recovery)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert_eq!(classify(" 123456 "), Some(Response::Totp("123456".into())));
        assert_eq!(
            classify("ABCD-EFGH-JKMN"),
            Some(Response::Recovery("abcdefghjkmn".into()))
        );
        assert_eq!(classify("12345"), None);
        assert_eq!(classify("1234567"), None);
        assert_eq!(classify("hunter2"), None);
    }
}
