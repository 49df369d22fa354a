//! The health checker loop (filled in by the health/replication work).
