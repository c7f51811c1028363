//! Measuring and reporting: the measured window (after warm-up), per-outcome
//! counts, latency percentiles, CPU seconds of the observed processes over the
//! window (utime + stime of every thread, from `/proc/PID/stat`, proc(5)), and
//! the two output lines: one for people (stderr), one JSON line (stdout).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

/// Linux reports utime/stime in USER_HZ ticks, 100 per second on every
/// mainstream architecture (`getconf CLK_TCK`); reading it needs libc, which
/// this crate avoids for the sake of `forbid(unsafe_code)`.
const TICKS_PER_SEC: f64 = 100.0;

/// When requests count.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Sending starts.
    pub start: Instant,
    /// Requests sent from here on are measured (after warm-up).
    pub measure: Instant,
    /// No request is sent from here on (duration mode).
    pub end: Instant,
    /// Stop after this many requests instead of at `end`; no warm-up.
    pub requests: Option<u64>,
}

impl Window {
    /// A window starting a moment from now, so every task is ready.
    pub fn new(warmup: f64, duration: f64, requests: Option<u64>) -> Window {
        let start = Instant::now() + Duration::from_millis(200);
        if requests.is_some() {
            return Window {
                start,
                measure: start,
                end: start + Duration::from_secs(24 * 3600),
                requests,
            };
        }
        let measure = start + Duration::from_secs_f64(warmup.max(0.0));
        Window {
            start,
            measure,
            end: measure + Duration::from_secs_f64(duration.max(0.0)),
            requests,
        }
    }

    /// Whether a request sent at `sent` is measured.
    pub fn counts(&self, sent: Instant) -> bool {
        sent >= self.measure && sent < self.end
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Access-Accept / successful bind.
    Accept,
    /// Access-Reject / invalid credentials or no such user.
    Reject,
    /// Access-Challenge.
    Challenge,
    /// Any other reply code.
    Other,
    /// No valid answer within the timeout.
    Timeout,
    /// Only replies that failed verification (or, for LDAP, an error).
    BadReply,
}

/// Counts and latencies of one task; merged at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent (all, warm-up included).
    pub sent: u64,
    /// Measured Access-Accepts (successful binds).
    pub accept: u64,
    /// Measured Access-Rejects (invalid credentials, no such user).
    pub reject: u64,
    /// Measured Access-Challenges.
    pub challenge: u64,
    /// Measured replies of any other code.
    pub other: u64,
    /// Measured requests without a valid answer in time.
    pub timeout: u64,
    /// Measured requests that got only replies failing verification.
    pub bad_reply: u64,
    /// Measured answers other than the expected one.
    pub unexpected: u64,
    /// Replies for which no request was waiting (after a timeout).
    pub late: u64,
    /// Times a request had to wait for a fresh TOTP step (all users used).
    pub waits: u64,
    /// Latencies of measured completions, nanoseconds.
    pub latencies: Vec<u64>,
}

impl Tally {
    /// Records a finished request if it was sent inside the window.
    pub fn record(&mut self, window: &Window, sent: Instant, outcome: Outcome, expect: Outcome) {
        if !window.counts(sent) {
            return;
        }
        let counter = match outcome {
            Outcome::Accept => &mut self.accept,
            Outcome::Reject => &mut self.reject,
            Outcome::Challenge => &mut self.challenge,
            Outcome::Other => &mut self.other,
            Outcome::Timeout => &mut self.timeout,
            Outcome::BadReply => &mut self.bad_reply,
        };
        *counter += 1;
        match outcome {
            Outcome::Timeout | Outcome::BadReply => {}
            answered => {
                if answered != expect {
                    self.unexpected += 1;
                }
                let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.latencies.push(nanos);
            }
        }
    }

    /// Adds another task's tally.
    pub fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.accept += other.accept;
        self.reject += other.reject;
        self.challenge += other.challenge;
        self.other += other.other;
        self.timeout += other.timeout;
        self.bad_reply += other.bad_reply;
        self.unexpected += other.unexpected;
        self.late += other.late;
        self.waits += other.waits;
        self.latencies.extend(other.latencies);
    }

    fn answered(&self) -> u64 {
        self.accept + self.reject + self.challenge + self.other
    }

    /// Requests that did not end as expected.
    pub fn errors(&self) -> u64 {
        self.unexpected + self.timeout + self.bad_reply
    }
}

/// utime + stime of a process in ticks, all threads (proc(5) fields 14, 15).
fn cpu_ticks(pid: &str) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// (total, idle) jiffies of the whole host, from the first line of /proc/stat.
fn host_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((values.iter().sum(), values.get(3)? + values.get(4)?))
}

/// The processes whose CPU is reported: `NAME=PID` pairs plus ourselves.
#[derive(Debug, Clone)]
pub struct CpuProbe {
    targets: Vec<(String, String)>,
}

/// One reading of every target.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    ticks: Vec<Option<u64>>,
    host: Option<(u64, u64)>,
}

impl CpuProbe {
    /// From `--cpu-pid NAME=PID` arguments.
    pub fn new(specs: &[String]) -> Result<CpuProbe, String> {
        let mut targets = Vec::new();
        for spec in specs {
            let (name, pid) = spec
                .split_once('=')
                .filter(|(n, p)| !n.is_empty() && p.parse::<u32>().is_ok())
                .ok_or_else(|| format!("--cpu-pid {spec:?}: expected NAME=PID"))?;
            if cpu_ticks(pid).is_none() {
                return Err(format!("--cpu-pid {spec}: no process {pid}"));
            }
            targets.push((name.to_string(), pid.to_string()));
        }
        targets.push(("loadgen".to_string(), "self".to_string()));
        Ok(CpuProbe { targets })
    }

    /// Reads every target now.
    pub fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            ticks: self.targets.iter().map(|(_, pid)| cpu_ticks(pid)).collect(),
            host: host_ticks(),
        }
    }

    /// `{name: {cpu_s, cores}}` over the interval, plus host busy percent.
    pub fn between(&self, before: &CpuSample, after: &CpuSample) -> (Value, Option<f64>) {
        let wall = (after.at - before.at).as_secs_f64().max(1e-9);
        let mut cpu = serde_json::Map::new();
        for (i, (name, _)) in self.targets.iter().enumerate() {
            if let (Some(a), Some(b)) = (before.ticks[i], after.ticks[i]) {
                let secs = b.saturating_sub(a) as f64 / TICKS_PER_SEC;
                cpu.insert(
                    name.clone(),
                    json!({"cpu_s": round(secs, 2), "cores": round(secs / wall, 2)}),
                );
            }
        }
        let busy = match (before.host, after.host) {
            (Some((t0, i0)), Some((t1, i1))) if t1 > t0 => Some(round(
                100.0 * (1.0 - (i1 - i0) as f64 / (t1 - t0) as f64),
                1,
            )),
            _ => None,
        };
        (Value::Object(cpu), busy)
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(round(sorted[rank - 1] as f64 / 1e6, 3))
}

/// What the run was, for the report.
pub struct RunInfo<'a> {
    /// `radius` or `ldap`.
    pub mode: &'static str,
    /// Server address or URL.
    pub target: &'a str,
    /// `--label`.
    pub label: &'a str,
    /// Requests kept outstanding.
    pub concurrency: usize,
    /// The outcome every request should have.
    pub expect: Outcome,
}

/// Prints the human line on stderr and the JSON line on stdout.
pub fn print(
    info: &RunInfo<'_>,
    mut tally: Tally,
    window_s: f64,
    cpu: Value,
    host_busy: Option<f64>,
) {
    tally.latencies.sort_unstable();
    let lat = &tally.latencies;
    let completed = tally.answered();
    let rps = round(completed as f64 / window_s.max(1e-9), 1);
    let mean = (!lat.is_empty())
        .then(|| round(lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e6, 3));
    let line = json!({
        "mode": info.mode,
        "label": info.label,
        "target": info.target,
        "concurrency": info.concurrency,
        "expect": if info.expect == Outcome::Accept { "accept" } else { "reject" },
        "window_s": round(window_s, 3),
        "sent": tally.sent,
        "completed": completed,
        "accept": tally.accept,
        "reject": tally.reject,
        "challenge": tally.challenge,
        "other": tally.other,
        "timeout": tally.timeout,
        "bad_reply": tally.bad_reply,
        "unexpected": tally.unexpected,
        "errors": tally.errors(),
        "late": tally.late,
        "waits": tally.waits,
        "rps": rps,
        "p50_ms": percentile(lat, 50.0),
        "p90_ms": percentile(lat, 90.0),
        "p99_ms": percentile(lat, 99.0),
        "max_ms": lat.last().map(|n| round(*n as f64 / 1e6, 3)),
        "mean_ms": mean,
        "cpu": cpu,
        "host_busy_pct": host_busy,
    });
    let ms = |key: &str| {
        line[key]
            .as_f64()
            .map_or_else(|| "-".to_string(), |v| format!("{v}"))
    };
    let cores: Vec<String> = line["cpu"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, v)| format!("{name}={}", v["cores"]))
        .collect();
    eprintln!(
        "{} {} {}c={}: {rps} req/s, p50 {} p90 {} p99 {} max {} ms; accept {} reject {} challenge {} timeout {} bad {} unexpected {} waits {}; cores {}{}",
        info.mode,
        info.target,
        if info.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", info.label)
        },
        info.concurrency,
        ms("p50_ms"),
        ms("p90_ms"),
        ms("p99_ms"),
        ms("max_ms"),
        tally.accept,
        tally.reject,
        tally.challenge,
        tally.timeout,
        tally.bad_reply,
        tally.unexpected,
        tally.waits,
        cores.join(" "),
        host_busy.map_or_else(String::new, |b| format!(" host {b}%")),
    );
    if tally.waits > 0 {
        eprintln!(
            "note: {} request(s) waited for a fresh 30 s TOTP step because every user had logged in during the current one; use more --users",
            tally.waits
        );
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile(&ns, 50.0), Some(50.0));
        assert_eq!(percentile(&ns, 99.0), Some(99.0));
        assert_eq!(percentile(&ns, 100.0), Some(100.0));
        assert_eq!(percentile(&[7_000], 1.0), Some(0.007));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn reads_cpu_of_a_process_whose_name_has_spaces_and_parens() {
        let line = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(stat_ticks(line), Some(325));
        assert_eq!(stat_ticks("4242 (x) S 1"), None);
        assert!(cpu_ticks("self").is_some());
        assert!(cpu_ticks("0").is_none());
        let probe = CpuProbe::new(&[format!("me={}", std::process::id())]).unwrap();
        let (cpu, _) = probe.between(&probe.sample(), &probe.sample());
        assert!(cpu["me"]["cpu_s"].is_number() && cpu["loadgen"]["cores"].is_number());
        assert!(CpuProbe::new(&["nopid".into()]).is_err());
        assert!(CpuProbe::new(&["x=4294967295".into()]).is_err());
    }

    #[tokio::test]
    async fn only_requests_sent_inside_the_window_count() {
        let window = Window::new(0.0, 60.0, None);
        let mut t = Tally::default();
        let before = window.start - Duration::from_millis(1);
        t.record(&window, before, Outcome::Accept, Outcome::Accept);
        t.record(&window, window.measure, Outcome::Accept, Outcome::Accept);
        t.record(&window, window.measure, Outcome::Reject, Outcome::Accept);
        t.record(&window, window.measure, Outcome::Timeout, Outcome::Accept);
        assert_eq!((t.accept, t.reject, t.timeout, t.unexpected), (1, 1, 1, 1));
        assert_eq!(t.errors(), 2);
        assert_eq!(t.latencies.len(), 2, "timeouts have no latency");
    }
}
