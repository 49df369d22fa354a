//! The pack-objects cache (`[pack_objects_cache]`): generated packs, keyed
//! by what determines their bytes, kept as files so that concurrent and
//! repeated fetches of the same state are served by streaming a file
//! instead of running git again.
//!
//! One generation per key: the first request starts a producer task that
//! writes the entry's file; it and every later request for the key follow
//! the file as it grows (readers never run git). The producer does not
//! belong to any request, so a client hanging up does not cut the pack
//! short for the others. A failed generation leaves the index at once and
//! is never served. Entries expire `max_age` after their creation; a
//! janitor removes expired entries and stray files, and keeps the bytes on
//! disk under `max_size` (a Cairn extension) by evicting the entries used
//! least recently. Removing a file is safe while readers stream it: they
//! keep their open descriptor.
//!
//! Keys seen fewer than `min_occurrences` times are not stored at all (as
//! upstream: unique fetches gain nothing from the cache); those requests
//! get a pack generated straight into their output.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

/// Produces one pack into the writer it is given; returns the bytes written.
pub trait Producer: Send + 'static {
    fn produce<'a>(
        self: Box<Self>,
        out: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>;
}

/// Why a lookup did not deliver a whole pack.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("create cache entry")]
    Create(#[source] std::io::Error),
    #[error("read cache entry")]
    Read(#[source] std::io::Error),
    #[error("cache entry ended early")]
    Truncated,
    /// Writing to the requester failed (it went away).
    #[error("write response")]
    Write(#[source] std::io::Error),
    #[error("generate pack: {0}")]
    Generate(String),
}

/// What a lookup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes written to the requester.
    pub served: u64,
    /// Whether this request started the generation (a miss).
    pub created: bool,
}

/// Settings, from `[pack_objects_cache]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub max_age: Duration,
    pub max_size: u64,
    pub min_occurrences: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabels {
    dir: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnabledLabels {
    dir: String,
    max_age: String,
}

/// Upstream's pack-objects and streamcache metrics.
#[derive(Debug, Clone, Default)]
struct CacheMetrics {
    served: Counter,
    generated: Counter,
    lookups: Family<ResultLabels, Counter>,
    index_entries: Family<DirLabels, Gauge>,
    disk_usage: Family<DirLabels, Gauge>,
    removed: Family<DirLabels, Counter>,
    dir: DirLabels,
}

impl CacheMetrics {
    fn index_entries(&self, n: usize) {
        self.index_entries.get_or_create(&self.dir).set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// How far a generation got.
#[derive(Debug, Clone, Default)]
struct Progress {
    len: u64,
    /// `Some` once the producer finished; `Err` holds its failure.
    done: Option<Result<(), Arc<str>>>,
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    created: Instant,
    last_used: Mutex<Instant>,
    progress: watch::Sender<Progress>,
}

impl Entry {
    fn snapshot(&self) -> Progress {
        self.progress.borrow().clone()
    }

    fn finished_ok(&self) -> bool {
        matches!(self.progress.borrow().done, Some(Ok(())))
    }

    fn failed(&self) -> bool {
        matches!(self.progress.borrow().done, Some(Err(_)))
    }

    fn last_used(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }
}

#[derive(Debug, Default)]
struct State {
    index: HashMap<String, Arc<Entry>>,
    /// Occurrence counters in two generations, so frequent keys survive a
    /// rotation while the maps stay bounded.
    counts: HashMap<String, u64>,
    old_counts: HashMap<String, u64>,
    rotated: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    state: Mutex<State>,
    next_file: AtomicU64,
    metrics: CacheMetrics,
}

/// The cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct PackCache {
    inner: Arc<Inner>,
}

/// Names of entry files, so that start-up and the janitor recognise them.
const FILE_PREFIX: &str = "pack-";

impl PackCache {
    /// Creates the cache directory (wiping what a previous process left),
    /// registers the metrics and starts the janitor on the current runtime
    /// (if there is one).
    pub fn new(settings: Settings, registry: &mut Registry) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.dir)?;
        wipe(&settings.dir);
        let dir = settings.dir.display().to_string();
        let metrics = CacheMetrics { dir: DirLabels { dir: dir.clone() }, ..Default::default() };
        registry.register(
            "gitaly_pack_objects_served_bytes",
            "Number of bytes of git-pack-objects data served to clients",
            metrics.served.clone(),
        );
        registry.register(
            "gitaly_pack_objects_generated_bytes",
            "Number of bytes generated in PackObjectsHook by running git-pack-objects",
            metrics.generated.clone(),
        );
        registry.register(
            "gitaly_pack_objects_cache_lookups",
            "Number of lookups in the PackObjectsHook cache, divided by hit/miss",
            metrics.lookups.clone(),
        );
        let enabled = Family::<EnabledLabels, Gauge>::default();
        enabled
            .get_or_create(&EnabledLabels { dir: dir.clone(), max_age: settings.max_age.as_secs().to_string() })
            .set(1);
        registry.register(
            "gitaly_pack_objects_cache_enabled",
            "If set to 1, indicates that the cache for PackObjectsHook has been enabled in this process",
            enabled,
        );
        registry.register(
            "gitaly_streamcache_index_entries",
            "Number of index entries in streamcache",
            metrics.index_entries.clone(),
        );
        registry.register(
            "gitaly_streamcache_filestore_disk_usage_bytes",
            "Disk usage per filestore",
            metrics.disk_usage.clone(),
        );
        registry.register(
            "gitaly_streamcache_filestore_removed",
            "Number of files removed from streamcache via file walks",
            metrics.removed.clone(),
        );
        metrics.index_entries(0);
        let cache = Self {
            inner: Arc::new(Inner { settings, state: Mutex::default(), next_file: AtomicU64::new(0), metrics }),
        };
        let weak = Arc::downgrade(&cache.inner);
        let period = (cache.inner.settings.max_age / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Ok(cache) };
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let cache = PackCache { inner };
                tokio::task::spawn_blocking(move || cache.clean()).await.ok();
            }
        });
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.inner.settings.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an occurrence of `key`; whether it may enter the cache.
    fn occurs(&self, key: &str) -> bool {
        let min = self.inner.settings.min_occurrences;
        if min == 0 {
            return true;
        }
        let mut st = self.lock();
        let now = Instant::now();
        if st.rotated.is_none_or(|r| now.duration_since(r) > self.inner.settings.max_age) {
            st.rotated = Some(now);
            st.old_counts = std::mem::take(&mut st.counts);
        }
        let old = st.old_counts.remove(key).unwrap_or(0);
        let n = st.counts.entry(key.to_owned()).or_insert(0);
        *n += old + 1;
        *n > min
    }

    /// Writes the pack for `key` into `out`, generating it with `producer`
    /// unless a fresh entry exists or is being generated.
    pub async fn fetch(
        &self,
        key: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        producer: Box<dyn Producer>,
    ) -> Result<Fetched, CacheError> {
        let metrics = &self.inner.metrics;
        if !self.occurs(key) {
            metrics.lookups.get_or_create(&ResultLabels { result: "miss" }).inc();
            let mut counting = Counting { inner: out, n: 0, failed: false };
            let result = producer.produce(&mut counting).await;
            metrics.generated.inc_by(counting.n);
            metrics.served.inc_by(counting.n);
            return match result {
                Ok(_) => Ok(Fetched { served: counting.n, created: true }),
                Err(_) if counting.failed => Err(CacheError::Write(std::io::ErrorKind::BrokenPipe.into())),
                Err(e) => Err(CacheError::Generate(e)),
            };
        }
        let (entry, file, created) = self.open_or_create(key, producer)?;
        metrics.lookups.get_or_create(&ResultLabels { result: if created { "miss" } else { "hit" } }).inc();
        entry.touch();
        let mut counting = Counting { inner: out, n: 0, failed: false };
        let result = follow(&entry, file, &mut counting).await;
        metrics.served.inc_by(counting.n);
        result?;
        Ok(Fetched { served: counting.n, created })
    }

    /// The fresh entry for `key` with its file opened, or a new entry whose
    /// producer has been started.
    fn open_or_create(
        &self,
        key: &str,
        producer: Box<dyn Producer>,
    ) -> Result<(Arc<Entry>, std::fs::File, bool), CacheError> {
        let max_age = self.inner.settings.max_age;
        let mut st = self.lock();
        if let Some(e) = st.index.get(key).cloned() {
            if e.created.elapsed() < max_age && !e.failed() {
                // Opened under the lock: the janitor cannot remove the file in between.
                if let Ok(f) = std::fs::File::open(&e.path) {
                    return Ok((e, f, false));
                }
            }
            st.index.remove(key);
        }
        let id = self.inner.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.settings.dir.join(format!("{FILE_PREFIX}{}-{id}", std::process::id()));
        let writer =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(CacheError::Create)?;
        let reader = std::fs::File::open(&path).map_err(CacheError::Create)?;
        let now = Instant::now();
        let entry = Arc::new(Entry {
            path,
            created: now,
            last_used: Mutex::new(now),
            progress: watch::Sender::new(Progress::default()),
        });
        st.index.insert(key.to_owned(), entry.clone());
        self.inner.metrics.index_entries(st.index.len());
        drop(st);
        let cache = self.clone();
        let key = key.to_owned();
        let producing = entry.clone();
        tokio::spawn(async move {
            let mut w = EntryWriter { file: writer, entry: producing.clone() };
            let result = producer.produce(&mut w).await;
            let len = producing.snapshot().len;
            cache.inner.metrics.generated.inc_by(len);
            match result {
                Ok(_) => {
                    producing.progress.send_modify(|p| p.done = Some(Ok(())));
                    tokio::task::spawn_blocking(move || cache.enforce_size()).await.ok();
                }
                Err(e) => {
                    // Out of the index before anyone learns of the failure.
                    cache.forget(&key, &producing);
                    producing.progress.send_modify(|p| p.done = Some(Err(Arc::from(e))));
                }
            }
        });
        Ok((entry, reader, true))
    }

    /// Drops `entry` from the index (if it is still the one for `key`) and
    /// removes its file.
    fn forget(&self, key: &str, entry: &Arc<Entry>) {
        let mut st = self.lock();
        if st.index.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            st.index.remove(key);
        }
        self.inner.metrics.index_entries(st.index.len());
        drop(st);
        let _ = std::fs::remove_file(&entry.path);
    }

    /// Evicts finished entries, least recently used first, until the
    /// entries' bytes fit `max_size`.
    fn enforce_size(&self) {
        let max = self.inner.settings.max_size;
        let mut removed = Vec::new();
        let mut st = self.lock();
        let mut total: u64 = st.index.values().map(|e| e.snapshot().len).sum();
        while total > max {
            let victim = st
                .index
                .iter()
                .filter(|(_, e)| e.finished_ok())
                .min_by_key(|(_, e)| e.last_used())
                .map(|(k, e)| (k.clone(), e.clone()));
            let Some((k, e)) = victim else { break };
            st.index.remove(&k);
            total -= e.snapshot().len;
            removed.push(e);
        }
        self.inner.metrics.index_entries(st.index.len());
        drop(st);
        for e in removed {
            let _ = std::fs::remove_file(&e.path);
        }
    }

    /// The janitor's round: expired entries leave the index, files no
    /// entry owns that are older than `max_age` are removed, the size
    /// bound is enforced.
    pub fn clean(&self) {
        let max_age = self.inner.settings.max_age;
        let mut st = self.lock();
        let expired: Vec<String> =
            st.index.iter().filter(|(_, e)| e.created.elapsed() >= max_age).map(|(k, _)| k.clone()).collect();
        let mut removed = Vec::new();
        for k in expired {
            if let Some(e) = st.index.remove(&k) {
                removed.push(e.path.clone());
            }
        }
        let live: std::collections::HashSet<PathBuf> = st.index.values().map(|e| e.path.clone()).collect();
        self.inner.metrics.index_entries(st.index.len());
        drop(st);
        for p in removed {
            let _ = std::fs::remove_file(p);
        }
        let mut usage = 0u64;
        if let Ok(dir) = std::fs::read_dir(&self.inner.settings.dir) {
            for f in dir.flatten() {
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > max_age);
                if old && !live.contains(&f.path()) {
                    if std::fs::remove_file(f.path()).is_ok() {
                        self.inner.metrics.removed.get_or_create(&self.inner.metrics.dir).inc();
                    }
                } else {
                    usage += meta.len();
                }
            }
        }
        self.inner
            .metrics
            .disk_usage
            .get_or_create(&self.inner.metrics.dir)
            .set(i64::try_from(usage).unwrap_or(i64::MAX));
        self.enforce_size();
    }

    /// Number of entries in the index (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes entry files a previous process left behind.
fn wipe(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Streams `entry` from `file` into `out` as far as the producer got,
/// waiting for more until it finished.
async fn follow(
    entry: &Entry,
    file: std::fs::File,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), CacheError> {
    let mut file = tokio::fs::File::from_std(file);
    let mut rx = entry.progress.subscribe();
    let mut pos = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let p = rx.borrow_and_update().clone();
        if pos < p.len {
            let want = usize::try_from(p.len - pos).unwrap_or(usize::MAX).min(buf.len());
            let n = file.read(&mut buf[..want]).await.map_err(CacheError::Read)?;
            if n == 0 {
                return Err(CacheError::Truncated);
            }
            out.write_all(&buf[..n]).await.map_err(CacheError::Write)?;
            pos += n as u64;
            continue;
        }
        match p.done {
            Some(Ok(())) => break,
            Some(Err(e)) => return Err(CacheError::Generate(e.to_string())),
            None => {
                if rx.changed().await.is_err() {
                    return Err(CacheError::Truncated);
                }
            }
        }
    }
    out.flush().await.map_err(CacheError::Write)
}

/// The producer's end of an entry: appends to the file and tells the
/// readers how far it got. Writes go to the page cache, so they are done
/// synchronously.
struct EntryWriter {
    file: std::fs::File,
    entry: Arc<Entry>,
}

impl AsyncWrite for EntryWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.file.write_all(buf)?;
        this.entry.progress.send_modify(|p| p.len += buf.len() as u64);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Counts what goes through to the requester and remembers whether writing
/// to it failed.
struct Counting<'a> {
    inner: &'a mut (dyn AsyncWrite + Unpin + Send),
    n: u64,
    failed: bool,
}

impl AsyncWrite for Counting<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut *this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.n += n as u64;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                this.failed = true;
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `data` in two halves, pausing in between, or fails after the
    /// first half.
    struct Fake {
        data: Vec<u8>,
        fail: bool,
        runs: Arc<AtomicU64>,
    }

    impl Producer for Fake {
        fn produce<'a>(
            self: Box<Self>,
            out: &'a mut (dyn AsyncWrite + Unpin + Send),
        ) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>> {
            Box::pin(async move {
                self.runs.fetch_add(1, Ordering::Relaxed);
                let half = self.data.len() / 2;
                out.write_all(&self.data[..half]).await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                if self.fail {
                    return Err("boom".to_owned());
                }
                out.write_all(&self.data[half..]).await.map_err(|e| e.to_string())?;
                Ok(self.data.len() as u64)
            })
        }
    }

    fn cache(dir: &Path, max_size: u64) -> PackCache {
        let settings = Settings { dir: dir.to_owned(), max_age: Duration::from_secs(60), max_size, min_occurrences: 0 };
        PackCache::new(settings, &mut Registry::default()).expect("cache")
    }

    fn fake(data: &[u8], fail: bool, runs: &Arc<AtomicU64>) -> Box<dyn Producer> {
        Box::new(Fake { data: data.to_vec(), fail, runs: runs.clone() })
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).expect("dir").count()
    }

    #[tokio::test]
    async fn concurrent_readers_follow_one_generation() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = cache(tmp.path(), u64::MAX);
        let runs = Arc::new(AtomicU64::new(0));
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let fetch = |c: PackCache| {
            let (runs, data) = (runs.clone(), data.clone());
            async move {
                let mut out = Vec::new();
                let f = c.fetch("k", &mut out, fake(&data, false, &runs)).await.expect("fetch");
                (f, out)
            }
        };
        let (a, b, d) = tokio::join!(fetch(c.clone()), fetch(c.clone()), fetch(c.clone()));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert_eq!([a.0.created, b.0.created, d.0.created].iter().filter(|c| **c).count(), 1);
        for (f, out) in [a, b, d] {
            assert_eq!(out, data);
            assert_eq!(f.served, data.len() as u64);
        }
        assert_eq!(files(tmp.path()), 1);
    }

    #[tokio::test]
    async fn failed_generations_are_never_served() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = cache(tmp.path(), u64::MAX);
        let runs = Arc::new(AtomicU64::new(0));
        let (mut o1, mut o2) = (Vec::new(), Vec::new());
        let (r1, r2) = tokio::join!(
            c.fetch("k", &mut o1, fake(b"0123456789", true, &runs)),
            c.fetch("k", &mut o2, fake(b"0123456789", true, &runs)),
        );
        assert!(matches!(r1, Err(CacheError::Generate(_))), "{r1:?}");
        assert!(matches!(r2, Err(CacheError::Generate(_))), "{r2:?}");
        assert_eq!(runs.load(Ordering::Relaxed), 1, "the waiting reader shared the failure");
        assert!(c.is_empty());
        assert_eq!(files(tmp.path()), 0, "the partial file is gone");
        let mut out = Vec::new();
        let f = c.fetch("k", &mut out, fake(b"0123456789", false, &runs)).await.expect("regenerated");
        assert!(f.created);
        assert_eq!(out, b"0123456789");
    }

    #[tokio::test]
    async fn size_bound_evicts_the_least_recently_used() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = cache(tmp.path(), 25);
        let runs = Arc::new(AtomicU64::new(0));
        let ten = b"0123456789";
        let mut sink = Vec::new();
        for key in ["a", "b", "a", "c"] {
            c.fetch(key, &mut sink, fake(ten, false, &runs)).await.expect("fetch");
            // Eviction runs after the producer finished.
            for _ in 0..50 {
                if c.len() <= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert_eq!(runs.load(Ordering::Relaxed), 3, "the second `a` was a hit");
        let st = c.lock();
        let mut keys: Vec<&String> = st.index.keys().collect();
        keys.sort();
        assert_eq!(keys, ["a", "c"], "`b` was used least recently");
        drop(st);
        assert_eq!(files(tmp.path()), 2);
    }

    #[tokio::test]
    async fn min_occurrences_keeps_unique_keys_out() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let settings = Settings {
            dir: tmp.path().to_owned(),
            max_age: Duration::from_secs(60),
            max_size: u64::MAX,
            min_occurrences: 1,
        };
        let c = PackCache::new(settings, &mut Registry::default()).expect("cache");
        let runs = Arc::new(AtomicU64::new(0));
        let mut out = Vec::new();
        assert!(c.fetch("k", &mut out, fake(b"ab", false, &runs)).await.expect("1").created);
        assert!(c.is_empty());
        assert!(c.fetch("k", &mut out, fake(b"ab", false, &runs)).await.expect("2").created);
        assert!(!c.fetch("k", &mut out, fake(b"ab", false, &runs)).await.expect("3").created);
        assert_eq!(out, b"ababab");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
