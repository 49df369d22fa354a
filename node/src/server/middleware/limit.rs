//! `[[concurrency]]` limits: per RPC, per repository (keyed by relative
//! path), with a bounded queue and a maximum wait.
//!
//! A call first takes a queue ticket (there are `max_per_repo +
//! max_queue_size` per key; none left means RESOURCE_EXHAUSTED at once),
//! then waits for one of `max_per_repo` slots, at most `max_queue_wait`.
//! The slot is held until the response has been fully sent.

use crate::config::Concurrency;
use crate::error::Error;
use crate::server::metrics::{DroppedLabels, LimitLabels, Metrics};
use cairn_proto::gitaly::LimitError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// RPC that upstream limits to one call per repository unless configured:
/// two replications of the same repository would race each other.
const REPLICATE_REPOSITORY: &str = "/gitaly.RepositoryService/ReplicateRepository";

#[derive(Debug)]
struct Keyed {
    slots: Arc<Semaphore>,
    tickets: Option<Arc<Semaphore>>,
    users: usize,
}

/// The limiter of one RPC.
#[derive(Debug)]
pub struct MethodLimiter {
    service: &'static str,
    method: &'static str,
    limit: usize,
    max_queue: usize,
    max_wait: Option<Duration>,
    keys: Mutex<HashMap<String, Keyed>>,
    metrics: Metrics,
}

/// Held while a limited call runs; releases its slot and ticket on drop.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _ticket: Option<OwnedSemaphorePermit>,
    in_progress: prometheus_client::metrics::gauge::Gauge,
    release: Option<(Arc<MethodLimiter>, String)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_progress.dec();
        if let Some((limiter, key)) = self.release.take() {
            limiter.put(&key);
        }
    }
}

/// What the limiter did, for the access log.
#[derive(Debug, Clone, Default)]
pub struct LimitOutcome {
    pub key: String,
    pub queue_ms: u64,
    pub in_progress: usize,
    pub queue_length: usize,
    pub dropped: Option<&'static str>,
}

impl MethodLimiter {
    fn labels(&self) -> LimitLabels {
        LimitLabels { system: "gitaly", grpc_service: self.service, grpc_method: self.method }
    }

    fn get(&self, key: &str) -> (Arc<Semaphore>, Option<Arc<Semaphore>>, usize, usize) {
        let mut keys = self.keys.lock().expect("limiter map lock is never poisoned");
        let entry = keys.entry(key.to_owned()).or_insert_with(|| Keyed {
            slots: Arc::new(Semaphore::new(self.limit)),
            tickets: (self.max_queue > 0).then(|| Arc::new(Semaphore::new(self.limit + self.max_queue))),
            users: 0,
        });
        entry.users += 1;
        let in_progress = self.limit - entry.slots.available_permits();
        let queued = entry
            .tickets
            .as_ref()
            .map_or(0, |t| (self.limit + self.max_queue - t.available_permits()).saturating_sub(in_progress));
        (entry.slots.clone(), entry.tickets.clone(), in_progress, queued)
    }

    /// Drops a reference to a key's semaphores; the entry goes away with
    /// its last user so the map does not grow with every repository.
    fn put(&self, key: &str) {
        let mut keys = self.keys.lock().expect("limiter map lock is never poisoned");
        if let Some(e) = keys.get_mut(key) {
            e.users -= 1;
            if e.users == 0 {
                keys.remove(key);
            }
        }
    }

    fn dropped(&self, reason: &'static str) -> Error {
        self.metrics
            .requests_dropped
            .get_or_create(&DroppedLabels {
                system: "gitaly",
                grpc_service: self.service,
                grpc_method: self.method,
                reason,
            })
            .inc();
        let message = match reason {
            "max_size" => "maximum queue size reached",
            _ => "maximum time in concurrency queue reached",
        };
        Error::resource_exhausted(message).with_detail(&LimitError {
            error_message: message.to_owned(),
            retry_after: Some(prost_types::Duration::default()),
        })
    }

    /// Waits for a slot for `key`.
    pub async fn acquire(self: &Arc<Self>, key: &str) -> (Result<Permit, Error>, LimitOutcome) {
        let start = Instant::now();
        let (slots, tickets, in_progress, queue_length) = self.get(key);
        let mut outcome = LimitOutcome { key: key.to_owned(), in_progress, queue_length, ..Default::default() };
        let fail = |outcome: &mut LimitOutcome, reason: &'static str| {
            self.put(key);
            outcome.dropped = Some(reason);
            outcome.queue_ms = start.elapsed().as_millis() as u64;
            Err(self.dropped(reason))
        };
        let ticket = match &tickets {
            None => None,
            Some(t) => match t.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return (fail(&mut outcome, "max_size"), outcome),
            },
        };
        let queued = self.metrics.limit_queued.get_or_create(&self.labels()).clone();
        queued.inc();
        let slot = match self.max_wait {
            Some(wait) => tokio::time::timeout(wait, slots.acquire_owned()).await.ok(),
            None => Some(slots.acquire_owned().await),
        };
        queued.dec();
        let slot = match slot {
            Some(Ok(s)) => s,
            // Closed semaphores never happen; treat like a timeout.
            Some(Err(_)) | None => return (fail(&mut outcome, "max_time"), outcome),
        };
        let waited = start.elapsed();
        self.metrics.limit_acquiring_seconds.get_or_create(&self.labels()).observe(waited.as_secs_f64());
        let in_progress = self.metrics.limit_in_progress.get_or_create(&self.labels()).clone();
        in_progress.inc();
        outcome.queue_ms = waited.as_millis() as u64;
        let permit =
            Permit { _slot: slot, _ticket: ticket, in_progress, release: Some((self.clone(), key.to_owned())) };
        (Ok(permit), outcome)
    }
}

/// All configured limiters, by full method name.
#[derive(Debug, Clone, Default)]
pub struct Limiters {
    by_method: Arc<HashMap<&'static str, Arc<MethodLimiter>>>,
}

impl Limiters {
    /// Builds limiters from `[[concurrency]]`, plus upstream's default of
    /// one ReplicateRepository per repository. Entries with
    /// `max_per_repo = 0` do not limit.
    pub fn new(config: &[Concurrency], metrics: &Metrics) -> Self {
        let mut by_method = HashMap::new();
        let mut add = |rpc: &str, limit: usize, max_queue: usize, max_wait: Option<Duration>| {
            let Some(facts) = cairn_proto::facts::lookup(rpc) else { return };
            if limit == 0 {
                return;
            }
            by_method.insert(
                facts.full_method,
                Arc::new(MethodLimiter {
                    service: facts.service,
                    method: facts.method,
                    limit,
                    max_queue,
                    max_wait,
                    keys: Mutex::new(HashMap::new()),
                    metrics: metrics.clone(),
                }),
            );
        };
        for c in config {
            let limit = if c.adaptive { c.initial_limit } else { c.max_per_repo };
            let wait = c.max_queue_wait.get();
            add(
                &c.rpc,
                usize::try_from(limit).unwrap_or(0),
                usize::try_from(c.max_queue_size).unwrap_or(0),
                (!wait.is_zero()).then_some(wait),
            );
        }
        if !config.iter().any(|c| c.rpc == REPLICATE_REPOSITORY) {
            add(REPLICATE_REPOSITORY, 1, 0, None);
        }
        Self { by_method: Arc::new(by_method) }
    }

    /// The limiter of `full_method`, if it is limited.
    pub fn get(&self, full_method: &str) -> Option<&Arc<MethodLimiter>> {
        self.by_method.get(full_method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GoDuration;

    fn limiters(queue: i64, wait_ms: u64) -> Limiters {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::new(&mut registry, &[0.1, 1.0]);
        Limiters::new(
            &[Concurrency {
                rpc: "/gitaly.RepositoryService/RepositorySize".into(),
                max_per_repo: 1,
                max_queue_size: queue,
                max_queue_wait: GoDuration(Duration::from_millis(wait_ms)),
                ..Default::default()
            }],
            &metrics,
        )
    }

    #[tokio::test]
    async fn queue_full_and_wait_expired() {
        let l = limiters(1, 50);
        let m = l.get("/gitaly.RepositoryService/RepositorySize").expect("configured").clone();
        let (first, _) = m.acquire("a.git").await;
        let first = first.expect("free slot");
        // Another key is independent.
        let (other, _) = m.acquire("b.git").await;
        other.expect("other key has its own slot");
        let m2 = m.clone();
        let waiter = tokio::spawn(async move { m2.acquire("a.git").await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (third, outcome) = m.acquire("a.git").await;
        assert_eq!(third.expect_err("queue is full").code(), tonic::Code::ResourceExhausted);
        assert_eq!(outcome.dropped, Some("max_size"));
        let (second, outcome) = waiter.await.expect("join");
        assert_eq!(second.expect_err("waited too long").code(), tonic::Code::ResourceExhausted);
        assert_eq!(outcome.dropped, Some("max_time"));
        drop(first);
        let (again, _) = m.acquire("a.git").await;
        again.expect("slot free again");
        assert!(m.keys.lock().expect("lock").len() <= 1, "idle keys are forgotten");
    }

    #[test]
    fn replicate_repository_has_a_default_limit() {
        let l = limiters(0, 0);
        assert!(l.get(REPLICATE_REPOSITORY).is_some());
        assert!(l.get("/gitaly.RepositoryService/RepositoryExists").is_none());
    }
}
