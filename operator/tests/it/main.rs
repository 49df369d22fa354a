//! Operator tests without a cluster: CRD drift, golden builder output, the
//! rendered config files against the real loaders, examples, and reconcile
//! scenarios against an in-memory apiserver behind tower-test.

mod configs;
mod crd;
mod fake;
mod golden;
mod reconcile;
mod support;
mod validate;
