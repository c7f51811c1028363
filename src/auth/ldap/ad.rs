//! Active Directory bind failures. AD answers every failed simple bind with
//! result code 49 (invalidCredentials, RFC 4511 §4.1.9) and puts the real
//! reason in the diagnostic message as a Win32 error code after `data`:
//! `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563`.
//! This module reads that code and turns it into an outcome with a reason for
//! the audit log and, where it helps the user, a Reply-Message.

use crate::auth::PrimaryOutcome;

/// The hexadecimal code after `data ` in an AD diagnostic message.
pub fn data_code(diagnostic: &str) -> Option<u32> {
    let start = diagnostic.find("data ")? + "data ".len();
    let digits: String = diagnostic[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    if digits.is_empty() {
        return None;
    }
    u32::from_str_radix(&digits, 16).ok()
}

fn denied(reason: &'static str, message: &str) -> PrimaryOutcome {
    PrimaryOutcome::Denied {
        reason,
        message: Some(message.to_string()),
    }
}

/// The outcome of a bind refused with invalidCredentials, from its diagnostic.
/// Codes 530–773 are only returned when the password was right (AD checks the
/// password first), so telling the user is safe; 775 (locked out) is returned
/// whatever the password.
pub fn invalid_credentials(diagnostic: &str) -> PrimaryOutcome {
    match data_code(diagnostic) {
        // ERROR_NO_SUCH_USER
        Some(0x525) => PrimaryOutcome::UnknownUser,
        // ERROR_INVALID_LOGON_HOURS
        Some(0x530) => denied(
            "ad_not_permitted_now",
            "You are not allowed to sign in at this time.",
        ),
        // ERROR_INVALID_WORKSTATION
        Some(0x531) => denied(
            "ad_not_permitted_here",
            "You are not allowed to sign in from this workstation.",
        ),
        // ERROR_PASSWORD_EXPIRED
        Some(0x532) => denied(
            "ad_password_expired",
            "Your password has expired. Change it, then sign in again.",
        ),
        // ERROR_ACCOUNT_DISABLED
        Some(0x533) => denied(
            "ad_account_disabled",
            "Your account is disabled. Contact your administrator.",
        ),
        // ERROR_ACCOUNT_EXPIRED
        Some(0x701) => denied(
            "ad_account_expired",
            "Your account has expired. Contact your administrator.",
        ),
        // ERROR_PASSWORD_MUST_CHANGE
        Some(0x773) => denied(
            "ad_must_change_password",
            "You must change your password before signing in. Change it, then sign in again.",
        ),
        // ERROR_ACCOUNT_LOCKED_OUT
        Some(0x775) => denied(
            "ad_locked_out",
            "Your account is locked. Try again later or contact your administrator.",
        ),
        // 52e (ERROR_LOGON_FAILURE), another code, or no code (OpenLDAP).
        _ => PrimaryOutcome::BadPassword,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostic(code: &str) -> String {
        format!(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\0"
        )
    }

    fn reason(outcome: PrimaryOutcome) -> String {
        match outcome {
            PrimaryOutcome::Accepted(_) => "accepted".into(),
            PrimaryOutcome::UnknownUser => "unknown_user".into(),
            PrimaryOutcome::BadPassword => "bad_password".into(),
            PrimaryOutcome::Denied { reason, message } => {
                assert!(
                    message.is_some_and(|m| m.ends_with('.')),
                    "{reason} says why"
                );
                reason.into()
            }
        }
    }

    #[test]
    fn every_documented_code_has_its_own_reason() {
        for (code, expected) in [
            ("52e", "bad_password"),
            ("525", "unknown_user"),
            ("530", "ad_not_permitted_now"),
            ("531", "ad_not_permitted_here"),
            ("532", "ad_password_expired"),
            ("533", "ad_account_disabled"),
            ("701", "ad_account_expired"),
            ("773", "ad_must_change_password"),
            ("775", "ad_locked_out"),
        ] {
            assert_eq!(
                reason(invalid_credentials(&diagnostic(code))),
                expected,
                "data {code}"
            );
        }
    }

    #[test]
    fn other_forms_of_the_message_parse() {
        // Windows Server 2003 style, Samba AD, upper case hex.
        assert_eq!(
            data_code(
                "80090308: LdapErr: DSID-0C090334, comment: AcceptSecurityContext error, data 773, vece"
            ),
            Some(0x773)
        );
        assert_eq!(
            data_code(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1"
            ),
            Some(0x52e)
        );
        assert_eq!(data_code("..., data 775"), Some(0x775));
        assert_eq!(data_code("... data 52E, v3839"), Some(0x52e));
    }

    #[test]
    fn no_code_means_a_plain_wrong_password() {
        for text in ["", "Invalid credentials", "data , v1", "data zz"] {
            assert_eq!(data_code(text), None, "{text:?}");
            assert_eq!(reason(invalid_credentials(text)), "bad_password");
        }
        // An unknown code is not guessed at.
        assert_eq!(
            reason(invalid_credentials(&diagnostic("568"))),
            "bad_password"
        );
    }
}
