//! The admin's command line: users, enrollment and `radtest`. Passwords are read
//! from stdin (without echo on a terminal), never from argv where `ps` and shell
//! history would keep them. Bulk TOTP import lives in [`import`].

pub mod admin;
pub mod devices;
pub mod import;

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::auth::PrimaryConfig;
use crate::auth::local::hash_password;
use crate::config::Config;
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::TotpFactor;
use crate::radius::client::{RadiusClient, RequestSpec};
use crate::radius::{Code, Packet, attr};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::text::Escaped;
use crate::username::normalize;

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Reads one secret line: a no-echo prompt on a terminal, else a line of stdin.
pub fn read_secret(prompt: &str) -> anyhow::Result<Secret<String>> {
    if std::io::stdin().is_terminal() {
        return Ok(Secret::new(
            rpassword::prompt_password(prompt).context("cannot read from the terminal")?,
        ));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read stdin")?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    zeroize::Zeroize::zeroize(&mut line);
    Ok(Secret::new(trimmed))
}

pub(crate) fn checked_user_name(name: &str) -> anyhow::Result<String> {
    let user = normalize(name);
    if user.is_empty() || user.len() > 253 || user.chars().any(char::is_control) {
        bail!("invalid user name {name:?}: 1 to 253 printable characters");
    }
    Ok(user)
}

fn read_new_password() -> anyhow::Result<Secret<String>> {
    let password = read_secret("New password: ")?;
    if std::io::stdin().is_terminal() {
        let again = read_secret("Repeat password: ")?;
        if again.expose() != password.expose() {
            bail!("passwords do not match; nothing changed");
        }
    }
    if password.expose().is_empty() {
        bail!("empty password refused; nothing changed");
    }
    if password.expose().len() > 128 {
        bail!(
            "password longer than 128 bytes cannot travel in RADIUS User-Password; nothing changed"
        );
    }
    Ok(password)
}

/// `rampart user add NAME`
pub async fn user_add(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let password = read_new_password()?;
    let hash = hash_password(password.expose()).map_err(anyhow::Error::msg)?;
    let (store, _) = crate::app::open_store(config).await?;
    match store.add_user(&user, &hash, now()).await {
        Ok(()) => {
            println!("user {user} added; next: rampart enroll totp {user}");
            Ok(())
        }
        Err(StoreError::AlreadyExists(_)) => {
            bail!("user {user} already exists; use `rampart user passwd {user}`")
        }
        Err(e) => Err(e.into()),
    }
}

/// `rampart user passwd NAME`
pub async fn user_passwd(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    if store.password_hash(&user).await?.is_none() {
        bail!("no local user {user}");
    }
    let password = read_new_password()?;
    let hash = hash_password(password.expose()).map_err(anyhow::Error::msg)?;
    store.set_password(&user, &hash).await?;
    println!("password of {user} changed");
    Ok(())
}

/// `rampart user del NAME`
pub async fn user_del(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    match store.delete_user(&user).await {
        Ok(()) => {
            println!("user {user} deleted with all factors and recovery codes");
            Ok(())
        }
        Err(StoreError::NoSuchUser(_)) => bail!("no user {user}"),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn format_time(unix: Option<i64>) -> String {
    match unix {
        None => "-".into(),
        Some(t) => {
            // UTC, to the minute; no date crate needed for a listing.
            let days = t.div_euclid(86_400);
            let secs = t.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}Z",
                secs / 3600,
                secs % 3600 / 60
            )
        }
    }
}

/// Days since 1970-01-01 to (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `rampart user list`
pub async fn user_list(config: &Config) -> anyhow::Result<()> {
    let (store, _) = crate::app::open_store(config).await?;
    let users = store.list_users().await?;
    let now = now();
    println!(
        "{:<24} {:<6} {:<5} {:<9} {:<18} LAST LOGIN",
        "USER", "LOCAL", "TOTP", "RECOVERY", "LOCKED UNTIL"
    );
    for user in &users {
        let locked = user.locked_until.filter(|t| *t > now);
        println!(
            "{:<24} {:<6} {:<5} {:<9} {:<18} {}",
            Escaped(&user.name),
            if user.local_password { "yes" } else { "no" },
            if user.totp { "yes" } else { "no" },
            user.recovery_codes_left,
            format_time(locked),
            format_time(user.last_login)
        );
    }
    println!("{} user(s)", users.len());
    Ok(())
}

pub(crate) async fn require_known_user(
    config: &Config,
    store: &dyn crate::store::Store,
    user: &str,
) -> anyhow::Result<()> {
    if matches!(config.primary, PrimaryConfig::Local(_))
        && store.password_hash(user).await?.is_none()
    {
        bail!("no local user {user}: add it first with `rampart user add {user}`");
    }
    Ok(())
}

/// `rampart enroll totp NAME`
pub async fn enroll_totp(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, key) = crate::app::open_store(config).await?;
    require_known_user(config, store.as_ref(), &user).await?;
    let factor = TotpFactor::new(store, key, config.totp.clone());
    let enrollment = factor.enroll(&user, now()).await?;
    let qr = QrCode::new(enrollment.uri.expose().as_bytes()).context("cannot draw the QR code")?;
    let art = qr.render::<Dense1x2>().quiet_zone(true).build();
    println!(
        "Scan this QR code with an authenticator app (Google Authenticator, Microsoft Authenticator, Aegis, ...):\n"
    );
    println!("{art}\n");
    println!("or add the key by hand: {}", enrollment.base32.expose());
    println!("URI: {}\n", enrollment.uri.expose());
    println!(
        "Any earlier authenticator of {user} stops working now. Test with: rampart radtest {user}"
    );
    Ok(())
}

/// `rampart enroll recovery NAME`
pub async fn enroll_recovery(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, key) = crate::app::open_store(config).await?;
    require_known_user(config, store.as_ref(), &user).await?;
    let codes = RecoveryCodes::new(store, key).issue(&user, now()).await?;
    println!(
        "Recovery codes for {user} (each works once, in place of a 6-digit code; earlier codes no longer work):\n"
    );
    for code in &codes {
        println!("  {}", code.expose());
    }
    println!("\nKeep them somewhere safe; they are not shown again.");
    Ok(())
}

/// `rampart radtest USER`: the admin's first check after install. Returns the
/// process exit code: 0 Accept, 1 Reject, 2 no answer.
pub async fn radtest(
    config: &Config,
    user: &str,
    server: Option<SocketAddr>,
    client_name: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let server = server.unwrap_or_else(|| crate::app::reachable(config.listen));
    let probe = std::net::UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    probe
        .connect(server)
        .with_context(|| format!("no route to {server}"))?;
    let source = probe.local_addr()?.ip();
    let client = match client_name {
        Some(name) => config.clients.iter().find(|c| &*c.name == name).with_context(|| format!("no client named {name} in {}", config.source.display()))?,
        None => config.clients.lookup(source).with_context(|| {
            format!("no [[clients]] entry in {} covers this machine's address {source}; pass --client NAME", config.source.display())
        })?,
    };
    let mut radius = RadiusClient::new(server, client.secret.expose()).await?;
    radius.timeout = timeout;
    eprintln!(
        "Sending Access-Request for {user} to {server} as client {} (Message-Authenticator signed)",
        client.name
    );
    let password = read_secret(&format!(
        "Password for {user} (append {}CODE to skip the challenge): ",
        config.policy.code_separator
    ))?;
    let mut reply = match radius
        .access_request(&RequestSpec {
            user_name: user,
            password: Some(password.expose()),
            ..Default::default()
        })
        .await
    {
        Ok(reply) => reply,
        Err(error) => {
            eprintln!(
                "{error}\nIs rampart running, and does the client secret in {} match?",
                config.source.display()
            );
            return Ok(2);
        }
    };
    if reply.code == Code::AccessChallenge {
        print_reply(&reply);
        let state = reply.attribute(attr::STATE).map(<[u8]>::to_vec);
        let code = read_secret("Code: ")?;
        reply = match radius
            .access_request(&RequestSpec {
                user_name: user,
                password: Some(code.expose()),
                state: state.as_deref(),
                ..Default::default()
            })
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                eprintln!("{error}");
                return Ok(2);
            }
        };
    }
    print_reply(&reply);
    Ok(if reply.code == Code::AccessAccept {
        0
    } else {
        1
    })
}

fn print_reply(reply: &Packet) {
    println!("{}", reply.code.name());
    for attribute in &reply.attributes {
        let name = attr::name(attribute.typ)
            .map_or_else(|| format!("Attr-{}", attribute.typ), str::to_string);
        let value = match attribute.typ {
            attr::REPLY_MESSAGE => format!("{:?}", String::from_utf8_lossy(&attribute.value)),
            attr::MESSAGE_AUTHENTICATOR => "(verified)".to_string(),
            _ => format!("0x{}", hex::encode(&attribute.value)),
        };
        println!("  {name} = {value}");
    }
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::format_time(Some(0)), "1970-01-01 00:00Z");
        assert_eq!(super::format_time(Some(1_700_000_000)), "2023-11-14 22:13Z");
        assert_eq!(super::format_time(None), "-");
    }
}
