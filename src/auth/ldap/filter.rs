//! Text that goes to the directory: search filters with the user name or a DN
//! put in (escaped per RFC 4515 §3, so `*)(uid=*` is a literal, never a
//! wildcard), direct-bind names from `bind_template` (DN values escaped per
//! RFC 4514 §2.4), and DN comparison for group checks.

use ldap3::{dn_escape, ldap_escape};

/// OID of Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through
/// any depth of nested groups, evaluated by the domain controller.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Checks that a filter template contains `placeholder` and parses as a filter.
pub fn check_template(template: &str, placeholder: &str) -> Result<(), String> {
    if !template.contains(placeholder) {
        return Err(format!("{template:?} must contain {placeholder}"));
    }
    // Parenthesised (RFC 4515 §3), so that several can be combined with `(|...)`.
    let parenthesised = template.starts_with('(') && template.ends_with(')');
    if !parenthesised || ldap3::parse_filter(fill(template, placeholder, "x")).is_err() {
        return Err(format!(
            "{template:?} is not an LDAP filter (RFC 4515), e.g. \"(uid={{user}})\""
        ));
    }
    Ok(())
}

/// The template with every `placeholder` replaced by the escaped `value`.
pub fn fill(template: &str, placeholder: &str, value: &str) -> String {
    template.replace(placeholder, &ldap_escape(value))
}

/// `(|F1F2...)` of several filters; the filter itself when there is one.
pub fn any_of(filters: &[String]) -> String {
    match filters {
        [one] => one.clone(),
        many => format!("(|{})", many.concat()),
    }
}

/// A filter true for an entry that is, directly or through nested groups, a
/// member of any of `groups` (Active Directory only).
pub fn in_chain(groups: &[String]) -> String {
    let each: Vec<String> = groups
        .iter()
        .map(|g| format!("(memberOf:{IN_CHAIN}:={})", ldap_escape(g.as_str())))
        .collect();
    any_of(&each)
}

/// Whether a bind template is a DN (`uid={user},ou=people,...`) rather than a
/// user principal name (`{user}@corp.example`) or down-level name (`CORP\{user}`).
fn is_dn(template: &str) -> bool {
    template.contains('=')
}

/// Checks a `bind_template`.
pub fn check_bind_template(template: &str) -> Result<(), String> {
    if !template.contains("{user}") {
        return Err(format!(
            "{template:?} must contain {{user}}, e.g. \"{{user}}@corp.example\" or \"uid={{user}},ou=people,dc=example,dc=org\""
        ));
    }
    Ok(())
}

/// The name to bind as for `user`, or `None` when the user name cannot be put
/// into this template safely: control characters anywhere, and in a UPN or
/// down-level template the template's own separators (`@`, `\`), which would let
/// a user name pick another domain.
pub fn bind_name(template: &str, user: &str) -> Option<String> {
    if user.is_empty() || user.chars().any(char::is_control) {
        return None;
    }
    if is_dn(template) {
        return Some(template.replace("{user}", &dn_escape(user)));
    }
    let literal = template.replace("{user}", "");
    if user
        .chars()
        .any(|c| (c == '@' || c == '\\') && literal.contains(c))
    {
        return None;
    }
    Some(template.replace("{user}", user))
}

/// A DN in a form for comparison: ASCII lower case (attribute names and the
/// usual values compare case-insensitively) and no spaces around unescaped `,`
/// `=` `+` (RFC 4514 §3 allows them when reading). Enough to match the group DNs
/// an admin typed against the DNs the directory returns.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut escaped = false;
    let mut after_separator = true;
    for c in dn.chars() {
        if escaped {
            out.push(c.to_ascii_lowercase());
            escaped = false;
            after_separator = false;
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                escaped = true;
                after_separator = false;
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c);
                after_separator = true;
            }
            ' ' if after_separator => {}
            _ => {
                out.push(c.to_ascii_lowercase());
                after_separator = false;
            }
        }
    }
    while out.ends_with(' ') && !out.ends_with("\\ ") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_attempts_become_literals() {
        assert_eq!(
            fill("(uid={user})", "{user}", "*)(uid=*"),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            fill("(uid={user})", "{user}", "admin)(|(uid=*"),
            "(uid=admin\\29\\28|\\28uid=\\2a)"
        );
        assert_eq!(fill("(uid={user})", "{user}", "*"), "(uid=\\2a)");
        assert_eq!(fill("(uid={user})", "{user}", "a\\b\0"), "(uid=a\\5cb\\00)");
        // Every placeholder, and the result still parses as one equality filter.
        let filter = fill("(|(uid={user})(mail={user}))", "{user}", "x)(y");
        assert_eq!(filter, "(|(uid=x\\29\\28y)(mail=x\\29\\28y))");
        assert!(ldap3::parse_filter(&filter).is_ok());
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("(uid={user})", "{user}").is_ok());
        assert!(check_template("(&(objectClass=person)(sAMAccountName={user}))", "{user}").is_ok());
        assert!(check_template("(uid=alice)", "{user}").is_err());
        assert!(check_template("uid={user}", "{user}").is_err());
        assert!(check_template("(&(uid={user})", "{user}").is_err());
        assert!(check_template(crate::auth::ldap::config::DEFAULT_GROUP_FILTER, "{dn}").is_ok());
    }

    #[test]
    fn bind_names_escape_dns_and_refuse_domain_hopping() {
        assert_eq!(
            bind_name("uid={user},ou=people,dc=example,dc=org", "a,b=c").as_deref(),
            Some("uid=a\\2cb\\3dc,ou=people,dc=example,dc=org")
        );
        assert_eq!(
            bind_name("{user}@corp.example", "alice").as_deref(),
            Some("alice@corp.example")
        );
        assert_eq!(bind_name("{user}@corp.example", "alice@evil.example"), None);
        assert_eq!(
            bind_name("CORP\\{user}", "alice").as_deref(),
            Some("CORP\\alice")
        );
        assert_eq!(bind_name("CORP\\{user}", "OTHER\\alice"), None);
        assert_eq!(
            bind_name("{user}", "alice@corp.example").as_deref(),
            Some("alice@corp.example")
        );
        assert_eq!(bind_name("{user}@corp.example", "al\nice"), None);
        assert_eq!(bind_name("{user}@corp.example", ""), None);
    }

    #[test]
    fn in_chain_filters_escape_group_dns() {
        assert_eq!(
            in_chain(&["cn=VPN (all),dc=x".into()]),
            "(memberOf:1.2.840.113556.1.4.1941:=cn=VPN \\28all\\29,dc=x)"
        );
        let two = in_chain(&["cn=a,dc=x".into(), "cn=b,dc=x".into()]);
        assert!(
            two.starts_with("(|(memberOf:") && two.ends_with("))"),
            "{two}"
        );
        assert!(ldap3::parse_filter(&two).is_ok());
    }

    #[test]
    fn dns_compare_without_case_or_spacing() {
        assert_eq!(
            normalize_dn("CN=VPN Users, OU=Groups , DC=Example,DC=org"),
            "cn=vpn users,ou=groups,dc=example,dc=org"
        );
        assert_eq!(normalize_dn("cn=a\\, b,dc=x"), "cn=a\\, b,dc=x");
        assert_ne!(normalize_dn("cn=a,dc=x"), normalize_dn("cn=b,dc=x"));
    }
}
