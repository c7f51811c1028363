//! The `rampart` binary: parses the command line, loads the configuration and
//! hands over to the library. `anyhow` lives here and in `app`, nowhere else.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use rampart::{app, cli, config};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "RADIUS MFA proxy: password + second factor for VPNs and RD Gateway"
)]
struct Args {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "config/rampart.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve,
    /// Validate the configuration and exit (0 = valid, warnings printed if
    /// any; 2 = problems printed).
    CheckConfig,
    /// Manage local users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Enroll a second factor for a user.
    Enroll {
        #[command(subcommand)]
        command: EnrollCommand,
    },
    /// Print a single-use enrollment link for a user (and e-mail it with
    /// --email or --email-from-directory), or for every user who has not
    /// enrolled yet (--unenrolled, the list of `rampart user unenrolled`).
    Invite {
        #[arg(required_unless_present = "unenrolled")]
        name: Option<String>,
        /// Invite every user without a second factor instead of one.
        #[arg(long, conflicts_with_all = ["name", "email"])]
        unenrolled: bool,
        /// With --unenrolled: list who would be invited, create nothing.
        #[arg(long, requires = "unenrolled")]
        dry_run: bool,
        /// With --unenrolled: also users whose earlier invitation is still valid.
        #[arg(long, requires = "unenrolled")]
        reinvite: bool,
        /// Send the link to this address (needs [smtp]).
        #[arg(long)]
        email: Option<String>,
        /// Send the link to the user's e-mail address in the directory
        /// ([primary] email_attribute; needs [smtp] and backend = "ldap").
        #[arg(long, conflicts_with = "email")]
        email_from_directory: bool,
        /// Hours the link stays valid (default [admin] invitation_hours).
        #[arg(long)]
        hours: Option<u64>,
    },
    /// App passwords for mail and other apps that cannot do a second factor.
    AppPassword {
        #[command(subcommand)]
        command: AppPasswordCommand,
    },
    /// The audit log, newest first.
    Audit {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// How far back.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    Radtest {
        /// User name.
        user: String,
        /// Server address; default: this configuration's listener.
        #[arg(long)]
        server: Option<SocketAddr>,
        /// Client entry whose secret to use; default: the one covering this machine.
        #[arg(long)]
        client: Option<String>,
        /// Seconds to wait per attempt.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a local user (password from stdin).
    Add { name: String },
    /// Change a local user's password (from stdin).
    Passwd { name: String },
    /// Delete a user with every factor and recovery code.
    Del { name: String },
    /// List users with their enrollment state.
    List,
    /// One user's factors, devices, app passwords and recent logins (JSON).
    Show { name: String },
    /// Clear a lockout.
    Unlock { name: String },
    /// Remove a factor so the user enrolls again: totp, recovery, push, phone or pin.
    Reset { name: String, factor: String },
    /// Users (and directory users) without any second factor.
    Unenrolled,
}

#[derive(Subcommand)]
enum AppPasswordCommand {
    /// Create one; printed once.
    Add { name: String, label: String },
    /// List a user's app passwords.
    List { name: String },
    /// Revoke one, or all without a label.
    Revoke { name: String, label: Option<String> },
}

#[derive(Subcommand)]
enum EnrollCommand {
    /// Create a TOTP seed: prints the otpauth:// URI and a QR code.
    Totp { name: String },
    /// Issue 10 single-use recovery codes (replacing earlier ones).
    Recovery { name: String },
    /// Import TOTP seeds from a CSV file of `user,base32_seed` lines (all or
    /// nothing; exit 2 with every bad line listed).
    Import { file: PathBuf },
    /// Enroll a push target: a new random ntfy topic on --server, or a URL read from stdin.
    Push {
        name: String,
        /// Device label.
        #[arg(long, default_value = "phone")]
        label: String,
        /// ntfy server to create a private topic on, e.g. https://ntfy.sh.
        #[arg(long)]
        server: Option<String>,
    },
    /// Enroll a phone number (E.164) for calls and text codes.
    Phone {
        name: String,
        number: String,
        /// `primary` is called first; add a `backup` too.
        #[arg(long, default_value = "primary")]
        label: String,
    },
    /// Set the PIN a verification call asks for (4 to 8 digits, from stdin;
    /// needs [phone] pin = "optional" or "required"). Remove it with
    /// `rampart user reset NAME pin`.
    Pin { name: String },
    /// Set the factor used when no keyword is typed: push, phone, sms, totp or auto.
    Prefer { name: String, factor: String },
    /// Remove a push or phone device.
    Remove {
        name: String,
        kind: String,
        label: String,
    },
    /// Show a user's factors and devices.
    List { name: String },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = args.command {
        // Usable, but weak: on stderr with the errors' format, exit 0.
        for line in config.warning_lines() {
            eprintln!("{line}");
        }
        println!("{}: OK", args.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            Command::Serve => {
                app::init_logging(&config.log_level, config.log_format);
                // On a worker thread, not the main thread that block_on uses:
                // the receive loop's spawned requests then start on the same
                // worker without a cross-thread wake-up per datagram.
                match tokio::spawn(app::serve(config)).await {
                    Ok(result) => result.map(|()| 0),
                    Err(error) => Err(anyhow::anyhow!("server task failed: {error}")),
                }
            }
            Command::CheckConfig => Ok(0),
            Command::User { command } => match command {
                UserCommand::Add { name } => cli::user_add(&config, &name).await.map(|()| 0),
                UserCommand::Passwd { name } => cli::user_passwd(&config, &name).await.map(|()| 0),
                UserCommand::Del { name } => cli::user_del(&config, &name).await.map(|()| 0),
                UserCommand::List => cli::user_list(&config).await.map(|()| 0),
                UserCommand::Show { name } => {
                    cli::admin::user_show(&config, &name).await.map(|()| 0)
                }
                UserCommand::Unlock { name } => {
                    cli::admin::user_unlock(&config, &name).await.map(|()| 0)
                }
                UserCommand::Reset { name, factor } => {
                    cli::admin::user_reset(&config, &name, &factor)
                        .await
                        .map(|()| 0)
                }
                UserCommand::Unenrolled => cli::admin::user_unenrolled(&config).await.map(|()| 0),
            },
            Command::Enroll { command } => match command {
                EnrollCommand::Totp { name } => cli::enroll_totp(&config, &name).await.map(|()| 0),
                EnrollCommand::Recovery { name } => {
                    cli::enroll_recovery(&config, &name).await.map(|()| 0)
                }
                EnrollCommand::Import { file } => cli::import::enroll_import(&config, &file).await,
                EnrollCommand::Push {
                    name,
                    label,
                    server,
                } => cli::devices::enroll_push(&config, &name, &label, server.as_deref())
                    .await
                    .map(|()| 0),
                EnrollCommand::Phone {
                    name,
                    number,
                    label,
                } => cli::devices::enroll_phone(&config, &name, &number, &label)
                    .await
                    .map(|()| 0),
                EnrollCommand::Pin { name } => {
                    cli::devices::enroll_pin(&config, &name).await.map(|()| 0)
                }
                EnrollCommand::Prefer { name, factor } => {
                    cli::devices::enroll_prefer(&config, &name, &factor)
                        .await
                        .map(|()| 0)
                }
                EnrollCommand::Remove { name, kind, label } => {
                    cli::devices::enroll_remove(&config, &name, &kind, &label)
                        .await
                        .map(|()| 0)
                }
                EnrollCommand::List { name } => {
                    cli::devices::enroll_list(&config, &name).await.map(|()| 0)
                }
            },
            Command::Invite {
                name: None,
                email_from_directory,
                hours,
                dry_run,
                reinvite,
                ..
            } => {
                let options = cli::admin::Rollout {
                    email_from_directory,
                    hours,
                    dry_run,
                    reinvite,
                };
                cli::admin::invite_unenrolled(&config, options)
                    .await
                    .map(|()| 0)
            }
            Command::Invite {
                name: Some(name),
                email,
                email_from_directory,
                hours,
                ..
            } => {
                let to = match (email, email_from_directory) {
                    (Some(address), _) => Some(cli::admin::InviteTo::Address(address)),
                    (None, true) => Some(cli::admin::InviteTo::Directory),
                    (None, false) => None,
                };
                cli::admin::invite(&config, &name, to, hours)
                    .await
                    .map(|()| 0)
            }
            Command::AppPassword { command } => match command {
                AppPasswordCommand::Add { name, label } => {
                    cli::admin::app_password_add(&config, &name, &label)
                        .await
                        .map(|()| 0)
                }
                AppPasswordCommand::List { name } => cli::admin::app_password_list(&config, &name)
                    .await
                    .map(|()| 0),
                AppPasswordCommand::Revoke { name, label } => {
                    cli::admin::app_password_revoke(&config, &name, label.as_deref())
                        .await
                        .map(|()| 0)
                }
            },
            Command::Audit { user, hours, limit } => {
                cli::admin::audit(&config, user.as_deref(), hours, limit)
                    .await
                    .map(|()| 0)
            }
            Command::Radtest {
                user,
                server,
                client,
                timeout,
            } => {
                cli::radtest(
                    &config,
                    &user,
                    server,
                    client.as_deref(),
                    Duration::from_secs(timeout),
                )
                .await
            }
        }
    });
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code as u8),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
