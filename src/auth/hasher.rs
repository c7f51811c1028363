//! Password checks under a flood. Each argon2id verification (RFC 9106) costs
//! tens of milliseconds of CPU and, with the default parameters, 19 MiB of
//! memory, by design. Run on tokio's blocking pool, a login flood started
//! hundreds of checks at once and the pool's threads kept their allocator
//! arenas full of argon2 buffers afterwards: gigabytes resident, for good.
//!
//! Here a fixed set of worker threads, one per core, each owns its argon2
//! memory and reuses it for every check (`hash_password_into_with_memory`), so
//! the memory is workers × m_cost whatever the load. Checks wait in a bounded
//! queue; one that cannot be queued, or waits past its deadline (a NAS has
//! given up on it by then), is refused and counted, never run late. Known and
//! unknown users take the same path, so their replies stay alike in time.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use zeroize::Zeroize;

use crate::secret::Secret;

/// Checks refused, by why: `queue_full` or `deadline` (waited too long).
pub const HASH_REFUSED: &str = "rampart_password_checks_refused_total";
/// Checks waiting for a worker now.
pub const HASH_QUEUED: &str = "rampart_password_checks_queued";

/// Checks that may wait per worker. At ~20 ms a check, 32 per worker is
/// ~0.7 s of work: a burst is absorbed, a flood is refused.
const QUEUE_PER_WORKER: usize = 32;
/// A check still waiting after this is refused: NAS devices resend or give
/// up after 3–5 s, and the second factor still needs its share.
const DEADLINE: Duration = Duration::from_secs(2);
/// Largest argon2 memory a stored hash may ask for (KiB). A hash asking for
/// more is refused rather than let one row decide the process's size.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Why a password could not be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Too many checks waiting, or this one waited too long.
    #[error("too many password checks at once")]
    Busy,
    /// The workers are gone (shutting down).
    #[error("password checks have stopped")]
    Stopped,
}

struct Job {
    password: Secret<Vec<u8>>,
    phc: Arc<str>,
    deadline: Instant,
    answer: oneshot::Sender<Result<bool, HashError>>,
}

/// The worker pool; clones share it.
#[derive(Clone)]
pub struct Hasher {
    queue: SyncSender<Job>,
}

impl Hasher {
    /// One worker per core (at least one).
    pub fn new() -> std::io::Result<Hasher> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Hasher::with_workers(cores)
    }

    /// `workers` threads and a queue of [`QUEUE_PER_WORKER`] checks each.
    pub fn with_workers(workers: usize) -> std::io::Result<Hasher> {
        let workers = workers.max(1);
        let (queue, jobs) = sync_channel(workers * QUEUE_PER_WORKER);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..workers {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("rampart-argon2-{index}"))
                .spawn(move || work(&jobs))?;
        }
        Ok(Hasher { queue })
    }

    /// Whether `password` matches the PHC string `phc`; refused when busy.
    pub async fn verify(&self, password: &[u8], phc: Arc<str>) -> Result<bool, HashError> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            password: Secret::new(password.to_vec()),
            phc,
            deadline: Instant::now() + DEADLINE,
            answer,
        };
        match self.queue.try_send(job) {
            Ok(()) => metrics::gauge!(HASH_QUEUED).increment(1.0),
            Err(TrySendError::Full(_)) => {
                metrics::counter!(HASH_REFUSED, "reason" => "queue_full").increment(1);
                return Err(HashError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => return Err(HashError::Stopped),
        }
        answered.await.unwrap_or(Err(HashError::Stopped))
    }
}

/// One worker: takes jobs until the pool is dropped, with its own memory.
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let Ok(receiver) = jobs.lock() else { return };
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        metrics::gauge!(HASH_QUEUED).decrement(1.0);
        if job.answer.is_closed() {
            // The request is gone (shutdown, or its task was dropped).
            continue;
        }
        let result = if Instant::now() > job.deadline {
            metrics::counter!(HASH_REFUSED, "reason" => "deadline").increment(1);
            Err(HashError::Busy)
        } else {
            Ok(verify_in(&mut memory, job.password.expose(), &job.phc))
        };
        let _ = job.answer.send(result);
    }
}

/// Verifies with `memory` as argon2's working space, growing it once to the
/// largest m_cost seen (bounded by [`MAX_M_COST_KIB`]). Malformed or
/// oversized hashes never match.
pub fn verify_in(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut computed,
        memory.as_mut_slice(),
    );
    let matches = hashed.is_ok() && bool::from(computed.as_slice().ct_eq(expected.as_bytes()));
    computed.zeroize();
    matches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::local::hash_password;

    #[test]
    fn verifies_like_the_argon2_crate_with_reused_memory() {
        let phc = hash_password("correct horse").unwrap();
        let mut memory = Vec::new();
        assert!(verify_in(&mut memory, b"correct horse", &phc));
        let size = memory.len();
        assert!(size > 0);
        assert!(!verify_in(&mut memory, b"correct hors", &phc));
        assert!(verify_in(&mut memory, b"correct horse", &phc));
        assert_eq!(memory.len(), size, "reused, not grown");
        assert!(!verify_in(&mut memory, b"x", "not a hash"));
        // A hash asking for 1 GiB is refused without allocating it.
        let greedy = phc.replace("m=19456", "m=1048576");
        assert!(!verify_in(&mut memory, b"correct horse", &greedy));
        assert_eq!(memory.len(), size);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_refused_beyond_the_queue_not_queued_without_bound() {
        let phc: Arc<str> = hash_password("pw").unwrap().into();
        let hasher = Hasher::with_workers(1).unwrap();
        let mut checks = Vec::new();
        for _ in 0..(QUEUE_PER_WORKER * 3) {
            let hasher = hasher.clone();
            let phc = phc.clone();
            checks.push(tokio::spawn(async move { hasher.verify(b"pw", phc).await }));
        }
        let mut matched = 0;
        let mut busy = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(true) => matched += 1,
                Err(HashError::Busy) => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(busy > 0, "some were refused");
        assert!(matched >= 1, "the queued ones were checked");
        assert!(
            matched <= QUEUE_PER_WORKER + 1,
            "never more than the queue and the worker: {matched}"
        );
    }
}
