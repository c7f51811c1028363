//! `rampart-load`: an honest load generator for benchmarking rampart against
//! FreeRADIUS and against the raw LDAP path on the same machine.
//!
//! - `radius`: closed-loop Access-Requests with Message-Authenticator, every
//!   reply verified, optional TOTP codes from deterministic per-user seeds that
//!   never reuse a (user, step) pair, since rampart's replay guard is on;
//! - `ldap`: the same login as search + bind straight against the directory;
//! - `seeds`: the `rampart enroll import` CSV for those per-user seeds;
//! - `park` and `sink`: many logins held for a push nobody answers, and the
//!   webhook receiver those pushes go to (the holding benchmark).
//!
//! Each run prints one human line (stderr) and one JSON line (stdout): req/s,
//! latency percentiles, counts per outcome, CPU of `--cpu-pid` processes.

#![forbid(unsafe_code)]

mod ldap;
mod park;
mod radius;
mod report;
mod users;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use report::{CpuProbe, Outcome, RunInfo, Window};
use users::NumberFormat;

#[derive(Parser)]
#[command(
    name = "rampart-load",
    version,
    about = "Closed-loop RADIUS / LDAP load generator for benchmarking rampart"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Access-Requests against a RADIUS server (rampart, FreeRADIUS, ...).
    Radius(RadiusArgs),
    /// Search + bind per login straight against an LDAP server.
    Ldap(LdapArgs),
    /// Print the `rampart enroll import` CSV of the per-user seeds of `--totp-key`.
    Seeds(SeedArgs),
    /// Open many logins that wait for a push (one per user) and report their answers.
    Park(ParkArgs),
    /// A webhook receiver that accepts every notification and approves nothing.
    Sink(SinkArgs),
}

#[derive(Args)]
struct ParkArgs {
    /// RADIUS server HOST:PORT.
    #[arg(long)]
    server: String,
    /// Shared secret.
    #[arg(long)]
    secret: String,
    /// Logins to open, one per user.
    #[arg(long, default_value_t = 50_000)]
    count: u64,
    /// User name format.
    #[arg(long, default_value = "park{:05}")]
    user_format: String,
    /// First user number.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// User-Password of every login (the keyword alone with `backend = "none"`).
    #[arg(long, default_value = "push")]
    typed: String,
    /// Logins sent per second.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds to wait for answers after the last send.
    #[arg(long, default_value_t = 70.0)]
    hold: f64,
}

#[derive(Args)]
struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9900")]
    listen: SocketAddr,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Args)]
struct UserArgs {
    /// Number of users (numbered from --first).
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Number of the first user.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// User name format: one placeholder {} / {:N} / {:0N} for the number.
    #[arg(long, default_value = "user{:04}")]
    user_format: String,
}

#[derive(Args)]
struct RunArgs {
    /// Requests kept outstanding.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Seconds of measured load.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop after this many requests instead (no warm-up; all counted).
    #[arg(long)]
    requests: Option<u64>,
    /// Per-request timeout in milliseconds (counted, not fatal; no retransmission).
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Report CPU of this process over the window (repeatable).
    #[arg(long = "cpu-pid", value_name = "NAME=PID")]
    cpu_pid: Vec<String>,
    /// Label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Runtime worker threads (1 = single-threaded, the lightest on a small host).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The outcome every request should have.
    #[arg(long, value_enum, default_value_t = Expect::Accept)]
    expect: Expect,
}

#[derive(Clone, Copy, ValueEnum)]
enum Expect {
    Accept,
    Reject,
}

#[derive(Args)]
struct RadiusArgs {
    /// RADIUS server HOST:PORT.
    #[arg(long)]
    server: String,
    /// Shared secret.
    #[arg(long)]
    secret: String,
    /// Password format ({:04} placeholder as for users); "" sends no password,
    /// only the code (rampart `backend = "none"`).
    #[arg(long, default_value = "pass{:04}")]
    password_format: String,
    /// Append ",CODE" with the user's TOTP code; seed = HMAC-SHA256(KEY, user)[..20].
    #[arg(long)]
    totp_key: Option<String>,
    /// Between password and code.
    #[arg(long, default_value = ",")]
    separator: String,
    /// Accept replies without Message-Authenticator (FreeRADIUS before 3.2.5).
    #[arg(long)]
    allow_unsigned_replies: bool,
    /// UDP sockets (each has 256 identifiers); default one per 128 outstanding.
    #[arg(long)]
    sockets: Option<usize>,
    #[command(flatten)]
    users: UserArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct LdapArgs {
    /// LDAP URL.
    #[arg(long, default_value = "ldap://127.0.0.1:3890")]
    url: String,
    /// Search base.
    #[arg(long, default_value = "ou=people,dc=example,dc=org")]
    base_dn: String,
    /// Service account DN.
    #[arg(long, default_value = "cn=radius-svc,dc=example,dc=org")]
    bind_dn: String,
    /// Service account password.
    #[arg(long, default_value = "radiussvcpw")]
    bind_password: String,
    /// User filter; {user} is replaced by the escaped user name (RFC 4515).
    #[arg(long, default_value = "(uid={user})")]
    filter: String,
    /// Password format.
    #[arg(long, default_value = "pass{:04}")]
    password_format: String,
    /// Long-lived service connections that the searches share.
    #[arg(long, default_value_t = 4)]
    search_conns: usize,
    /// Connections for user binds (default: one per outstanding login).
    #[arg(long)]
    bind_conns: Option<usize>,
    #[command(flatten)]
    users: UserArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct SeedArgs {
    /// Key the seeds derive from (same as `radius --totp-key`).
    #[arg(long)]
    totp_key: String,
    #[command(flatten)]
    users: UserArgs,
}

fn formats(users: &UserArgs, passwords: &str) -> Result<(NumberFormat, NumberFormat), String> {
    let user_format = NumberFormat::parse(&users.user_format)?;
    if !user_format.is_numbered() {
        return Err("--user-format needs a placeholder such as user{:04}".into());
    }
    if users.users == 0 {
        return Err("--users must be at least 1".into());
    }
    Ok((user_format, NumberFormat::parse(passwords)?))
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Runs the load between two CPU samples taken at the window's edges.
async fn measured<F, E>(
    run: &RunArgs,
    info: RunInfo<'_>,
    window: Window,
    load: F,
) -> Result<(), String>
where
    F: Future<Output = Result<report::Tally, E>>,
    E: std::fmt::Display,
{
    let probe = CpuProbe::new(&run.cpu_pid)?;
    let sampler = {
        let probe = probe.clone();
        let count_mode = window.requests.is_some();
        tokio::spawn(async move {
            tokio::time::sleep_until(window.measure).await;
            let before = probe.sample();
            if count_mode {
                return (before, None);
            }
            tokio::time::sleep_until(window.end).await;
            (before, Some(probe.sample()))
        })
    };
    let tally = load.await.map_err(|e| e.to_string())?;
    let finished = tokio::time::Instant::now();
    let (before, after) = sampler.await.map_err(|e| e.to_string())?;
    let after = after.unwrap_or_else(|| probe.sample());
    let (cpu, busy) = probe.between(&before, &after);
    let window_s = match window.requests {
        Some(_) => (finished - window.start).as_secs_f64(),
        None => (window.end - window.measure).as_secs_f64(),
    };
    report::print(&info, tally, window_s, cpu, busy);
    Ok(())
}

fn expect(run: &RunArgs) -> Outcome {
    match run.expect {
        Expect::Accept => Outcome::Accept,
        Expect::Reject => Outcome::Reject,
    }
}

fn radius_main(args: RadiusArgs) -> Result<(), String> {
    let (user_format, password_format) = formats(&args.users, &args.password_format)?;
    let server: SocketAddr = args
        .server
        .to_socket_addrs()
        .map_err(|e| format!("--server {}: {e}", args.server))?
        .next()
        .ok_or_else(|| format!("--server {}: no address", args.server))?;
    let run = &args.run;
    let concurrency = run.concurrency.max(1);
    let sockets = args.sockets.unwrap_or(concurrency.div_ceil(128)).max(1);
    if concurrency > sockets * 256 {
        return Err(format!(
            "--concurrency {concurrency} needs at least {} sockets (256 identifiers each)",
            concurrency.div_ceil(256)
        ));
    }
    let users = usize::try_from(args.users.users).map_err(|e| e.to_string())?;
    let window = Window::new(run.warmup, run.duration, run.requests);
    let plan = radius::Plan {
        server,
        secret: args.secret.into_bytes(),
        users: user_format,
        first: args.users.first,
        passwords: (!args.password_format.is_empty()).then_some(password_format),
        totp_key: args.totp_key.map(String::into_bytes),
        separator: args.separator,
        expect: expect(run),
        require_reply_ma: !args.allow_unsigned_replies,
        timeout: Duration::from_millis(run.timeout_ms),
        window,
    };
    let target = server.to_string();
    let info = RunInfo {
        mode: "radius",
        target: &target,
        label: &run.label,
        concurrency,
        expect: expect(run),
    };
    runtime(run.threads)
        .map_err(|e| e.to_string())?
        .block_on(measured(
            run,
            info,
            window,
            radius::run(plan, users, concurrency, sockets),
        ))
}

fn ldap_main(args: LdapArgs) -> Result<(), String> {
    let (user_format, password_format) = formats(&args.users, &args.password_format)?;
    if !args.filter.contains("{user}") {
        return Err("--filter must contain {user}".into());
    }
    let run = &args.run;
    let concurrency = run.concurrency.max(1);
    let window = Window::new(run.warmup, run.duration, run.requests);
    let plan = ldap::Plan {
        url: args.url.clone(),
        base_dn: args.base_dn,
        bind_dn: args.bind_dn,
        bind_password: args.bind_password,
        filter: args.filter,
        users: user_format,
        first: args.users.first,
        user_count: usize::try_from(args.users.users).map_err(|e| e.to_string())?,
        passwords: password_format,
        expect: expect(run),
        timeout: Duration::from_millis(run.timeout_ms),
        window,
    };
    let info = RunInfo {
        mode: "ldap",
        target: &args.url,
        label: &run.label,
        concurrency,
        expect: expect(run),
    };
    let bind_conns = args.bind_conns.unwrap_or(concurrency);
    runtime(run.threads)
        .map_err(|e| e.to_string())?
        .block_on(measured(
            run,
            info,
            window,
            ldap::run(plan, concurrency, args.search_conns, bind_conns),
        ))
}

fn seeds_main(args: SeedArgs) -> Result<(), String> {
    let (user_format, _) = formats(&args.users, "")?;
    let stdout = std::io::stdout();
    users::write_seeds(
        &mut std::io::BufWriter::new(stdout.lock()),
        &user_format,
        args.users.first,
        args.users.users,
        args.totp_key.as_bytes(),
    )
    .map_err(|e| format!("cannot write: {e}"))
}

fn park_main(args: ParkArgs) -> Result<(), String> {
    let users = NumberFormat::parse(&args.user_format)?;
    let server: SocketAddr = args
        .server
        .to_socket_addrs()
        .map_err(|e| format!("--server {}: {e}", args.server))?
        .next()
        .ok_or_else(|| format!("--server {}: no address", args.server))?;
    let started = std::time::Instant::now();
    let plan = park::ParkPlan {
        server,
        secret: args.secret.into_bytes(),
        users,
        first: args.first,
        count: args.count,
        typed: args.typed,
        rate: args.rate,
        hold: Duration::from_secs_f64(args.hold),
    };
    let tally = runtime(1)
        .map_err(|e| e.to_string())?
        .block_on(park::park(plan))
        .map_err(|e| e.to_string())?;
    let unanswered = tally.sent - tally.accepted - tally.rejected - tally.other;
    eprintln!(
        "park: sent {} accepted {} rejected {} other {} unanswered {} in {:.1} s",
        tally.sent,
        tally.accepted,
        tally.rejected,
        tally.other,
        unanswered,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{{\"mode\":\"park\",\"sent\":{},\"accepted\":{},\"rejected\":{},\"other\":{},\"unanswered\":{}}}",
        tally.sent, tally.accepted, tally.rejected, tally.other, unanswered
    );
    Ok(())
}

fn sink_main(args: SinkArgs) -> Result<(), String> {
    runtime(args.threads)
        .map_err(|e| e.to_string())?
        .block_on(park::sink(args.listen))
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Park(args) => park_main(args),
        Command::Sink(args) => sink_main(args),
        Command::Radius(args) => radius_main(args),
        Command::Ldap(args) => ldap_main(args),
        Command::Seeds(args) => seeds_main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rampart-load: {error}");
            ExitCode::from(2)
        }
    }
}
