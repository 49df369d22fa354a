//! The commit-graph, opened once per repository and reused until its files
//! change: opening maps the file and dropping unmaps it, which would
//! otherwise cost more than a short walk itself.

use super::Repo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// Repositories whose graph is kept open at once; beyond that the cache
/// starts over.
const MAX_OPEN: usize = 1024;

type Stamp = [Option<(u64, Option<SystemTime>)>; 2];
type Cached = (Stamp, Option<Arc<gix::commitgraph::Graph>>);

fn cache() -> &'static Mutex<HashMap<u64, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Cached>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The repository's commit-graph when git would use it: enabled by
/// `core.commitGraph`, not shallow, no replacements.
pub fn open(repo: &Repo) -> Option<Arc<gix::commitgraph::Graph>> {
    let g = repo.gix();
    if g.is_shallow().unwrap_or(true) {
        return None;
    }
    let info = g.objects.store_ref().path().join("info");
    let stat = |p: std::path::PathBuf| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()));
    let stamp = [stat(info.join("commit-graph")), stat(info.join("commit-graphs/commit-graph-chain"))];
    if let Some((cached, graph)) =
        cache().lock().expect("commit-graph cache lock is never poisoned").get(&repo.serial())
        && *cached == stamp
    {
        return graph.clone();
    }
    let graph = g.commit_graph_if_enabled().ok().flatten().map(Arc::new);
    let mut c = cache().lock().expect("commit-graph cache lock is never poisoned");
    if c.len() >= MAX_OPEN {
        c.clear();
    }
    c.insert(repo.serial(), (stamp, graph.clone()));
    graph
}
