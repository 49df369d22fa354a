//! The router's Prometheus metrics, with upstream Praefect's names and
//! labels, registered into a registry the server passes in; and the
//! `/db_metrics` collector, which queries PostgreSQL on each scrape.

use crate::config::Config;
use crate::db::{Db, DbError};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    pub virtual_storage: String,
    pub storage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodTypeLabels {
    pub method_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeTypeLabels {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub virtual_storage: String,
    pub gitaly_storage: String,
    pub change_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueDepthLabels {
    virtual_storage: String,
    target_node: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VirtualStorageLabels {
    virtual_storage: String,
}

/// A counter exposed under its bare name. Upstream's Go client names
/// `gitaly_praefect_read_distribution` and `gitaly_praefect_method_types`
/// without the `_total` suffix OpenMetrics counters get, and dashboards
/// query those names; so these are written untyped, as Go's text format
/// reads to Prometheus.
#[derive(Debug, Default, Clone)]
pub struct BareCounter(Counter);

impl BareCounter {
    pub fn inc(&self) -> u64 {
        self.0.inc()
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for BareCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for BareCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// Histogram buckets (`[prometheus] grpc_latency_buckets`, as upstream).
#[derive(Clone, Debug)]
pub struct Buckets(Arc<Vec<f64>>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Prometheus' default buckets, for an empty `grpc_latency_buckets`.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the router records outside the gRPC middleware.
#[derive(Clone, Debug)]
pub struct RouterMetrics {
    /// Reads routed per storage.
    pub read_distribution: Family<StorageLabels, BareCounter>,
    /// RPCs by accessor / mutator / maintenance.
    pub method_types: Family<MethodTypeLabels, BareCounter>,
    /// Seconds from a job becoming runnable to a worker starting it.
    pub replication_delay: Family<ChangeTypeLabels, Histogram, Buckets>,
    /// Seconds a job ran.
    pub replication_latency: Family<ChangeTypeLabels, Histogram, Buckets>,
    /// Jobs running on this router.
    pub replication_jobs: Family<JobLabels, Gauge>,
    /// Cairn's own: 1 when this router's last check of the node succeeded.
    /// Upstream exports no per-node health gauge in per-repository mode
    /// (its `gitaly_praefect_node_last_healthcheck_up` belongs to the legacy
    /// electors), so operators had nothing to alert on per node.
    pub node_healthy: Family<StorageLabels, Gauge>,
    /// Transactional writes that voted (`gitaly_praefect_transactions_total`).
    pub transactions: Counter,
    /// Cairn's own: voters of those writes that ended without the write
    /// (outvoted, failed, too slow) and were queued for repair.
    pub transaction_voters_outdated: Counter,
}

impl RouterMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry, latency_buckets: &[f64]) -> Self {
        let buckets = Buckets(Arc::new(if latency_buckets.is_empty() {
            DEFAULT_BUCKETS.to_vec()
        } else {
            latency_buckets.to_vec()
        }));
        let m = Self {
            read_distribution: Family::default(),
            method_types: Family::default(),
            replication_delay: Family::new_with_constructor(buckets.clone()),
            replication_latency: Family::new_with_constructor(buckets),
            replication_jobs: Family::default(),
            node_healthy: Family::default(),
            transactions: Counter::default(),
            transaction_voters_outdated: Counter::default(),
        };
        registry.register(
            "gitaly_praefect_read_distribution",
            "Counts the number of reads to each Gitaly node",
            m.read_distribution.clone(),
        );
        registry.register(
            "gitaly_praefect_method_types",
            "Counts the number of accessor, mutator and maintenance RPCs",
            m.method_types.clone(),
        );
        registry.register(
            "gitaly_praefect_replication_delay",
            "A histogram of replication job start delays",
            m.replication_delay.clone(),
        );
        registry.register(
            "gitaly_praefect_replication_latency",
            "A histogram of replication job latencies",
            m.replication_latency.clone(),
        );
        registry.register(
            "gitaly_praefect_replication_jobs",
            "Number of replication jobs in flight.",
            m.replication_jobs.clone(),
        );
        registry.register(
            "gitaly_praefect_node_healthy",
            "Whether this router's last health check of the node succeeded (1) or not (0)",
            m.node_healthy.clone(),
        );
        registry.register(
            "gitaly_praefect_transactions",
            "Number of transactional writes the router counted votes for",
            m.transactions.clone(),
        );
        registry.register(
            "gitaly_praefect_transaction_voters_outdated",
            "Voters of transactional writes that ended without the write and were queued for replication",
            m.transaction_voters_outdated.clone(),
        );
        m
    }

    /// Counts a finished transaction: `voters` took part, `updated` hold it.
    pub fn count_transaction(&self, updated: usize, voters: usize) {
        self.transactions.inc();
        self.transaction_voters_outdated.inc_by(voters.saturating_sub(updated) as u64);
    }

    /// Metrics registered nowhere, for tests and tools.
    pub fn unregistered() -> Self {
        Self::new(&mut Registry::default(), &[])
    }

    pub fn set_node_healthy(&self, virtual_storage: &str, storage: &str, healthy: bool) {
        self.node_healthy
            .get_or_create(&StorageLabels { virtual_storage: virtual_storage.to_owned(), storage: storage.to_owned() })
            .set(i64::from(healthy));
    }

    pub fn count_read(&self, virtual_storage: &str, storage: &str) {
        self.read_distribution
            .get_or_create(&StorageLabels { virtual_storage: virtual_storage.to_owned(), storage: storage.to_owned() })
            .inc();
    }

    /// `method_type`: "accessor", "mutator" or "maintenance".
    pub fn count_method_type(&self, method_type: &'static str) {
        self.method_types.get_or_create(&MethodTypeLabels { method_type }).inc();
    }
}

/// The `/db_metrics` page: replication queue depth and unavailable
/// repositories, read from PostgreSQL now, as text exposition. Every
/// configured virtual storage appears in the unavailable count, 0 included.
pub async fn db_metrics(db: &Db, config: &Config) -> Result<String, DbError> {
    let depth = db.queue_depth().await?;
    let unavailable = db.unavailable_repositories(config.failover.health_window()).await?;

    let mut registry = Registry::default();
    let queue: Family<QueueDepthLabels, Gauge> = Family::default();
    for d in depth {
        queue
            .get_or_create(&QueueDepthLabels {
                virtual_storage: d.virtual_storage,
                target_node: d.target,
                state: d.state,
            })
            .set(d.count);
    }
    let unavailable_family: Family<VirtualStorageLabels, Gauge> = Family::default();
    for vs in &config.virtual_storages {
        unavailable_family.get_or_create(&VirtualStorageLabels { virtual_storage: vs.name.clone() }).set(0);
    }
    for (virtual_storage, count) in unavailable {
        unavailable_family.get_or_create(&VirtualStorageLabels { virtual_storage }).set(count);
    }
    registry.register("gitaly_praefect_replication_queue_depth", "Number of jobs in the replication queue", queue);
    registry.register(
        "gitaly_praefect_unavailable_repositories",
        "Number of repositories that have no healthy, up to date replicas.",
        unavailable_family,
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_upstream() {
        let mut registry = Registry::default();
        let m = RouterMetrics::new(&mut registry, &[0.1, 1.0]);
        m.count_read("default", "gitaly-1");
        m.count_method_type("mutator");
        m.replication_delay.get_or_create(&ChangeTypeLabels { r#type: "update" }).observe(0.5);
        m.replication_jobs
            .get_or_create(&JobLabels {
                virtual_storage: "default".into(),
                gitaly_storage: "gitaly-2".into(),
                change_type: "update",
            })
            .inc();
        m.set_node_healthy("default", "gitaly-1", true);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(
            out.contains("gitaly_praefect_read_distribution{virtual_storage=\"default\",storage=\"gitaly-1\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("gitaly_praefect_method_types{method_type=\"mutator\"} 1\n"), "{out}");
        assert!(out.contains("gitaly_praefect_replication_delay_bucket{le=\"1.0\",type=\"update\"} 1"), "{out}");
        assert!(
            out.contains(
                "gitaly_praefect_replication_jobs{virtual_storage=\"default\",gitaly_storage=\"gitaly-2\",change_type=\"update\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("gitaly_praefect_node_healthy{virtual_storage=\"default\",storage=\"gitaly-1\"} 1"),
            "{out}"
        );
    }
}
