//! The admin's commands that match the JSON admin API: show a user, unlock,
//! reset a factor, app passwords, invitations, the "not enrolled" list and
//! the audit log. They open the same store as the daemon and share
//! [`crate::admin`] with the API, so both report the same things.

use anyhow::{Context, bail};

use super::{checked_user_name, now};
use crate::admin;
use crate::config::Config;
use crate::factor::app_password;
use crate::store::StoreError;
use crate::text::Escaped;

/// `rampart user show NAME`: the user's state as JSON (the API's format).
pub async fn user_show(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    let Some(summary) = store.user(&user).await? else {
        bail!("no user {user}");
    };
    let mut value = admin::summary_json(store.as_ref(), &summary, now()).await?;
    value["app_passwords"] = serde_json::json!(
        store
            .app_passwords(&user)
            .await?
            .into_iter()
            .map(|p| serde_json::json!({"label": p.label, "created_at": p.created_at, "last_used": p.last_used}))
            .collect::<Vec<_>>()
    );
    value["recent"] = serde_json::json!(
        store
            .audit(Some(&user), 0, i64::MAX, 20)
            .await?
            .iter()
            .map(admin::audit_json)
            .collect::<Vec<_>>()
    );
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// `rampart user unlock NAME`
pub async fn user_unlock(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    if store.unlock(&user).await? {
        println!("{user} unlocked");
    } else {
        println!("{user} was not locked; failure count cleared");
    }
    Ok(())
}

/// `rampart user reset NAME FACTOR`
pub async fn user_reset(config: &Config, name: &str, factor: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    match admin::reset_factor(store.as_ref(), &user, factor).await {
        Ok(removed) => {
            println!(
                "{factor} of {user} reset ({removed} removed); they enroll again on the portal"
            );
            Ok(())
        }
        Err(admin::OpError::Store(StoreError::NoSuchUser(_))) => bail!("no user {user}"),
        Err(e) => Err(e.into()),
    }
}

/// `rampart user unenrolled`
pub async fn user_unenrolled(config: &Config) -> anyhow::Result<()> {
    let (store, _) = crate::app::open_store(config).await?;
    let primary = crate::app::build_primary(config, store.clone())?;
    let group = config.admin.enrollment_group.as_deref();
    let (source, users) = admin::unenrolled(store.as_ref(), primary.as_ref(), group).await?;
    for user in &users {
        println!("{}", Escaped(user));
    }
    eprintln!(
        "{} user(s) without a second factor (from the {source}{})",
        users.len(),
        group.map(|g| format!(", group {g}")).unwrap_or_default()
    );
    Ok(())
}

/// `rampart app-password add NAME LABEL`: prints the password once.
pub async fn app_password_add(config: &Config, name: &str, label: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    if label.is_empty() || label.len() > 64 || label.chars().any(char::is_control) {
        bail!("label: 1 to 64 printable characters, e.g. outlook-laptop");
    }
    let (store, key) = crate::app::open_store(config).await?;
    let password = app_password::generate();
    let hash = app_password::hash(&key, &user, password.expose());
    match store.add_app_password(&user, label, &hash, now()).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            bail!("{user} already has an app password {label:?}; revoke it first")
        }
        Err(e) => return Err(e.into()),
    }
    println!("{}", password.expose());
    eprintln!(
        "App password {label:?} for {user}: type it in the app instead of the password (no code needed).\n\
         It is shown only now. It works only through clients with allow_app_passwords = true."
    );
    Ok(())
}

/// `rampart app-password list NAME`
pub async fn app_password_list(config: &Config, name: &str) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    for p in store.app_passwords(&user).await? {
        println!(
            "{:<24} created {} last used {}",
            p.label,
            super::format_time(Some(p.created_at)),
            super::format_time(p.last_used)
        );
    }
    Ok(())
}

/// `rampart app-password revoke NAME [LABEL]`
pub async fn app_password_revoke(
    config: &Config,
    name: &str,
    label: Option<&str>,
) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let (store, _) = crate::app::open_store(config).await?;
    let revoked = store.revoke_app_password(&user, label).await?;
    if revoked == 0 && label.is_some() {
        bail!("{user} has no app password {:?}", label.unwrap_or_default());
    }
    println!("{revoked} app password(s) of {user} revoked");
    Ok(())
}

/// Where `rampart invite` mails the link.
pub enum InviteTo {
    /// `--email ADDR`.
    Address(String),
    /// `--email-from-directory`: the user's `email_attribute`.
    Directory,
}

/// `rampart invite NAME [--email ADDR | --email-from-directory] [--hours N]`:
/// prints the link; with an address and `[smtp]`, also mails it.
pub async fn invite(
    config: &Config,
    name: &str,
    to: Option<InviteTo>,
    hours: Option<u64>,
) -> anyhow::Result<()> {
    let user = checked_user_name(name)?;
    let Some(base) = &config.public_url else {
        bail!("set [http] public_url (the portal's address): invitation links point there");
    };
    let mailer = match (&to, &config.smtp) {
        (Some(_), None) => bail!("e-mailing the link needs an [smtp] section"),
        (Some(_), Some(smtp)) => Some(crate::mail::Mailer::new(smtp)?),
        (None, _) => None,
    };
    let hours = hours.unwrap_or(config.admin.invitation_hours).clamp(1, 720);
    let (store, key) = crate::app::open_store(config).await?;
    // The address before the invitation: none is created for nobody to receive.
    let email = match to {
        Some(InviteTo::Address(address)) => Some(address),
        Some(InviteTo::Directory) => {
            let primary = crate::app::build_primary(config, store.clone())?;
            Some(admin::directory_email(primary.as_ref(), &user).await?)
        }
        None => None,
    };
    let email = email.as_deref();
    let invitation = crate::invite::create(&store, &key, &user, hours, base, now()).await?;
    println!("{}", invitation.url.expose());
    eprintln!(
        "Single-use enrollment link for {user}, valid {hours} hour(s). Give it only to {user}."
    );
    if let (Some(to), Some(mailer)) = (email, mailer) {
        crate::invite::email(&mailer, to, &invitation, &config.admin.organisation)
            .await
            .context("the invitation was created but the e-mail failed")?;
        eprintln!("e-mailed to {to}");
    }
    Ok(())
}

/// What `rampart invite --unenrolled` was asked to do.
pub struct Rollout {
    /// Mail each link to the user's directory address.
    pub email_from_directory: bool,
    /// Link lifetime (default `[admin] invitation_hours`).
    pub hours: Option<u64>,
    /// List who would be invited; create nothing.
    pub dry_run: bool,
    /// Also invite users whose earlier invitation is still valid.
    pub reinvite: bool,
}

/// `rampart invite --unenrolled [--email-from-directory] [--dry-run]
/// [--reinvite]`: an invitation for every user `rampart user unenrolled`
/// lists, printed as `user<TAB>link`, or mailed to the directory's address.
/// Skipped: users without an address (no invitation is created for nobody
/// to receive) and, unless `--reinvite`, users holding a valid invitation,
/// so running it again (a weekly timer) reaches only new users.
pub async fn invite_unenrolled(config: &Config, rollout: Rollout) -> anyhow::Result<()> {
    let Rollout {
        email_from_directory,
        hours,
        dry_run,
        reinvite,
    } = rollout;
    let Some(base) = &config.public_url else {
        bail!("set [http] public_url (the portal's address): invitation links point there");
    };
    let mailer = match (email_from_directory, &config.smtp) {
        (true, None) => bail!("e-mailing the links needs an [smtp] section"),
        (true, Some(smtp)) => Some(crate::mail::Mailer::new(smtp)?),
        (false, _) => None,
    };
    let hours = hours.unwrap_or(config.admin.invitation_hours).clamp(1, 720);
    let (store, key) = crate::app::open_store(config).await?;
    let primary = crate::app::build_primary(config, store.clone())?;
    let group = config.admin.enrollment_group.as_deref();
    let (source, users) = admin::unenrolled(store.as_ref(), primary.as_ref(), group).await?;
    let pending: std::collections::HashSet<String> = match reinvite {
        true => Default::default(),
        false => store.invited_users(now()).await?.into_iter().collect(),
    };
    let (mut invited, mut mailed, mut skipped, mut failed) = (0, 0, 0, 0);
    for user in &users {
        // Names and addresses come from the directory: shown escaped.
        let shown = Escaped(user);
        if pending.contains(user) {
            eprintln!("{shown}: skipped, an earlier invitation is still valid (--reinvite)");
            skipped += 1;
            continue;
        }
        let to = match &mailer {
            None => None,
            Some(_) => match admin::directory_email(primary.as_ref(), user).await {
                Ok(address) => Some(address),
                Err(admin::OpError::BadRequest(_)) => {
                    eprintln!("{shown}: skipped, no e-mail address in the directory");
                    skipped += 1;
                    continue;
                }
                Err(error) => {
                    eprintln!("{shown}: skipped, {error}");
                    failed += 1;
                    continue;
                }
            },
        };
        if dry_run {
            match &to {
                Some(address) => println!("{shown}\t{}", Escaped(address)),
                None => println!("{shown}"),
            }
            invited += 1;
            continue;
        }
        let invitation = crate::invite::create(&store, &key, user, hours, base, now()).await?;
        invited += 1;
        match (to, &mailer) {
            (Some(to), Some(mailer)) => {
                match crate::invite::email(mailer, &to, &invitation, &config.admin.organisation)
                    .await
                {
                    Ok(()) => mailed += 1,
                    Err(error) => {
                        eprintln!(
                            "{shown}: the invitation was created but the e-mail failed: {error}"
                        );
                        failed += 1;
                    }
                }
            }
            _ => println!("{shown}\t{}", invitation.url.expose()),
        }
    }
    eprintln!(
        "{} user(s) without a second factor (from the {source}{}): {invited} {}, {mailed} e-mailed, {skipped} skipped, {failed} failed",
        users.len(),
        group.map(|g| format!(", group {g}")).unwrap_or_default(),
        if dry_run {
            "would be invited"
        } else {
            "invited"
        },
    );
    if failed > 0 {
        bail!("{failed} invitation(s) could not be sent");
    }
    Ok(())
}

/// `rampart audit [--user U] [--hours H] [--limit N]`: newest first.
pub async fn audit(
    config: &Config,
    user: Option<&str>,
    hours: u64,
    limit: u32,
) -> anyhow::Result<()> {
    let user = user.map(checked_user_name).transpose()?;
    let (store, _) = crate::app::open_store(config).await?;
    let since = now() - hours as i64 * 3600;
    for event in store.audit(user.as_deref(), since, i64::MAX, limit).await? {
        println!(
            "{} {:<20} {:<10} {:<9} {:<28} {:<12} {} {}ms",
            super::format_time(Some(event.time)),
            Escaped(&event.user),
            Escaped(&event.client),
            Escaped(&event.outcome),
            Escaped(&event.reason),
            Escaped(&event.factor),
            Escaped(event.station.as_deref().unwrap_or("-")),
            event.duration_ms
        );
    }
    Ok(())
}
