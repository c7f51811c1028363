//! The parsers that take attacker-controlled text but are private to their
//! modules, reachable from the cargo-fuzz targets in `fuzz/` (a separate
//! crate, so it sees only `pub` items). Everything else the targets drive is
//! already public. Not a supported interface: it may change with the code.

use crate::pipeline::{self, Asked};
use crate::secret::Secret;

/// What the appended-code parser found (`pipeline::Asked`, without secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// A code: TOTP, recovery, or a hosted passcode.
    Code(String),
    /// A factor keyword, by channel name (`push`, `phone`, `sms`).
    Keyword(&'static str),
    /// Nothing asked: the preferred factor.
    Nothing,
}

fn split_of(asked: Asked) -> Split {
    match asked {
        Asked::Code(code) => Split::Code(code.expose().clone()),
        Asked::Keyword(channel) => Split::Keyword(channel.as_str()),
        Asked::Nothing => Split::Nothing,
    }
}

/// `password,123456` → password and what was appended (the request path's parser).
pub fn split_code(
    text: &str,
    separator: &str,
    keywords: bool,
    long_codes: bool,
) -> (String, Split) {
    let (password, asked) = pipeline::split_code(text, separator, keywords, long_codes);
    (password.expose().clone(), split_of(asked))
}

/// What User-Password means when there is no password backend.
pub fn asked_alone(typed: Option<&str>, keywords: bool) -> Split {
    let typed = typed.map(|t| Secret::new(t.to_string()));
    split_of(pipeline::asked_alone(typed.as_ref(), keywords))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_code_reports_what_the_pipeline_saw() {
        assert_eq!(
            split_code("pw,1,123456", ",", true, false),
            ("pw,1".to_string(), Split::Code("123456".to_string()))
        );
        assert_eq!(
            split_code("pw,push", ",", true, false),
            ("pw".to_string(), Split::Keyword("push"))
        );
        assert_eq!(
            split_code("pw,push", ",", false, false),
            ("pw,push".to_string(), Split::Nothing)
        );
        assert_eq!(asked_alone(Some(" "), true), Split::Nothing);
        assert_eq!(asked_alone(Some("sms"), true), Split::Keyword("sms"));
        assert_eq!(
            asked_alone(Some("sms"), false),
            Split::Code("sms".to_string())
        );
    }
}
