//! Out-of-band enrollment from the command line: push targets, phone numbers,
//! the phone-call PIN, the preferred factor. Push topic URLs are bearer
//! secrets (whoever reads the topic can approve), so they are generated here
//! or read from stdin, never taken from argv, and stored sealed; PINs too are
//! read from stdin (argv shows in `ps` and shell history) and stored as keyed
//! hashes.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use subtle::ConstantTimeEq;

use super::{checked_user_name, now, read_secret, require_known_user};
use crate::config::Config;
use crate::factor::oob::e164;
use crate::factor::phone::{PinMode, pin};
use crate::store::{DeviceKind, StoreError};
use crate::text::Escaped;

/// Letters and digits for generated topic names: 22 of them are about 131 bits.
const TOPIC_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn checked_label(label: &str) -> anyhow::Result<&str> {
    if label.is_empty()
        || label.len() > 32
        || !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("invalid label {label:?}: 1 to 32 letters, digits, '-' or '_'");
    }
    Ok(label)
}

/// A fresh unguessable ntfy topic URL on `server`.
pub fn generate_topic(server: &str) -> anyhow::Result<String> {
    let server = server.trim_end_matches('/');
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        bail!("--server must be an http(s) URL such as https://ntfy.sh");
    }
    let topic: String = (0..22)
        .map(|_| {
            let index = rand::random_range(0..TOPIC_ALPHABET.len());
            TOPIC_ALPHABET[index] as char
        })
        .collect();
    Ok(format!("{server}/rampart-{topic}"))
}

/// `rampart enroll push NAME [--label L] [--server URL]`: with `--server`, a
/// new random ntfy topic on that server (printed with a QR code to subscribe
/// from the phone); without, the target URL is read from stdin.
pub async fn enroll_push(
    config: &Config,
    name: &str,
    label: &str,
    server: Option<&str>,
) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let label = checked_label(label)?;
    let url = match server {
        Some(server) => generate_topic(server)?,
        None => {
            let typed = read_secret("Push target URL (ntfy topic or webhook): ")?;
            let url = typed.expose().trim().to_string();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("the push target must be an http(s) URL; nothing changed");
            }
            url
        }
    };
    let (store, key) = crate::app::open_store(config).await?;
    require_known_user(config, store.as_ref(), &user).await?;
    let sealed = key.seal(user.as_bytes(), url.as_bytes());
    store
        .add_device(&user, DeviceKind::Push, label, &sealed, now())
        .await?;
    if server.is_some() {
        let qr = QrCode::new(url.as_bytes()).context("cannot draw the QR code")?;
        println!(
            "In the ntfy app on {user}'s phone, tap + and subscribe to this topic (scan or type it):\n"
        );
        println!("{}\n", qr.render::<Dense1x2>().quiet_zone(true).build());
        println!("{url}\n");
        println!("Keep the topic private: anyone subscribed to it can approve sign-ins.");
    }
    println!(
        "push device {label:?} enrolled for {user}. Test with: rampart radtest {user} (password,push)"
    );
    Ok(())
}

/// `rampart enroll phone NAME NUMBER [--label L]`
pub async fn enroll_phone(
    config: &Config,
    name: &str,
    number: &str,
    label: &str,
) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let label = checked_label(label)?;
    let Some(number) = e164(number) else {
        bail!("{number:?} is not an international (E.164) number such as +15551234567");
    };
    let (store, key) = crate::app::open_store(config).await?;
    require_known_user(config, store.as_ref(), &user).await?;
    let sealed = key.seal(user.as_bytes(), number.as_bytes());
    store
        .add_device(&user, DeviceKind::Phone, label, &sealed, now())
        .await?;
    println!("phone {label:?} ({number}) enrolled for {user}: calls and text codes go there");
    Ok(())
}

/// `rampart enroll pin NAME`: the PIN a verification call asks for, read
/// from stdin (twice on a terminal).
pub async fn enroll_pin(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let typed = read_secret("Call PIN (4 to 8 digits): ")?;
    if std::io::stdin().is_terminal() {
        let again = read_secret("Repeat the PIN: ")?;
        if !bool::from(typed.expose().as_bytes().ct_eq(again.expose().as_bytes())) {
            bail!("the PINs do not match; nothing changed");
        }
    }
    let typed = typed.expose().trim();
    if let Err(error) = pin::check_new(typed) {
        bail!("{error}; nothing changed");
    }
    let (store, key) = crate::app::open_store(config).await?;
    require_known_user(config, store.as_ref(), &user).await?;
    store
        .set_phone_pin(&user, &pin::hash(&key, &user, typed), now())
        .await?;
    println!("call PIN set for {user}");
    match config.phone.as_ref().map(|p| p.pin) {
        Some(PinMode::Optional | PinMode::Required) => {}
        _ => println!(
            "note: [phone] pin is off, so calls do not ask for it yet; set pin = \"optional\" or \"required\""
        ),
    }
    Ok(())
}

/// `rampart enroll prefer NAME FACTOR`
pub async fn enroll_prefer(config: &Config, name: &str, factor: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let factor = match factor {
        "auto" => None,
        "push" | "phone" | "sms" | "totp" => Some(factor),
        other => bail!("unknown factor {other:?}: push, phone, sms, totp or auto"),
    };
    let (store, _) = crate::app::open_store(config).await?;
    match store.set_preferred_factor(&user, factor).await {
        Ok(()) => {
            println!(
                "{user} now signs in with {} when no keyword is typed",
                factor.unwrap_or("the default order (push, phone, totp, sms)")
            );
            Ok(())
        }
        Err(StoreError::NoSuchUser(_)) => bail!("no user {user}: enroll a factor first"),
        Err(error) => Err(error.into()),
    }
}

/// `rampart enroll remove NAME KIND LABEL`
pub async fn enroll_remove(
    config: &Config,
    name: &str,
    kind: &str,
    label: &str,
) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let Some(kind) = DeviceKind::parse(kind) else {
        bail!("unknown device kind {kind:?}: push or phone");
    };
    let (store, _) = crate::app::open_store(config).await?;
    if !store.remove_device(&user, kind, label).await? {
        bail!("{user} has no {} device {label:?}", kind.as_str());
    }
    println!("{} device {label:?} of {user} removed", kind.as_str());
    Ok(())
}

/// `rampart enroll list NAME`: devices without their targets' secrets.
pub async fn enroll_list(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, key) = crate::app::open_store(config).await?;
    let enrollment = store.out_of_band(&user).await?;
    let totp = store.totp(&user).await?.is_some();
    println!(
        "{user}: TOTP {}, preferred {}",
        if totp { "enrolled" } else { "not enrolled" },
        enrollment.preferred.as_deref().unwrap_or("auto")
    );
    for device in &enrollment.devices {
        let shown = match device.kind {
            // The number is what the admin needs to check; the topic is a secret.
            DeviceKind::Phone => key
                .open(user.as_bytes(), &device.sealed_target)
                .ok()
                .and_then(|plain| String::from_utf8(plain.to_vec()).ok())
                .unwrap_or_else(|| "(cannot open)".into()),
            DeviceKind::Push => "(topic hidden)".into(),
        };
        println!(
            "  {:<6} {:<12} {}",
            device.kind.as_str(),
            Escaped(&device.label),
            Escaped(&shown)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_topics_are_long_and_distinct() {
        let a = generate_topic("https://ntfy.example/").unwrap();
        let b = generate_topic("https://ntfy.example").unwrap();
        assert!(a.starts_with("https://ntfy.example/rampart-"));
        assert_eq!(a.len(), "https://ntfy.example/rampart-".len() + 22);
        assert_ne!(a, b);
        assert!(generate_topic("ntfy.example").is_err());
    }

    #[test]
    fn labels_are_checked() {
        assert!(checked_label("primary").is_ok());
        assert!(checked_label("my-phone_2").is_ok());
        assert!(checked_label("").is_err());
        assert!(checked_label("a b").is_err());
    }
}
