//! The controllers' Prometheus metrics, served by `rotor serve` at `/metrics`: how often each
//! controller reconciles and fails, and whether this process leads. A platform team alerts on
//! a rising error rate or on no control plane leading.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    leading: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rotor");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller (cluster, clusterswap, rollout) and result (ok, error)",
            reconciles.clone(),
        );
        let leading = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "leading",
            "1 while this process runs the controllers (holds the Lease, or its store is not shared)",
            leading.clone(),
        );
        Metrics {
            registry,
            reconciles,
            leading,
        }
    }
}

impl Metrics {
    /// Counts one reconcile of `controller`.
    pub fn reconciled<T, E>(&self, controller: &'static str, result: &Result<T, E>) {
        let result = if result.is_ok() { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_controller_and_result() {
        let m = Metrics::default();
        m.reconciled::<(), ()>("cluster", &Ok(()));
        m.reconciled::<(), ()>("cluster", &Ok(()));
        m.reconciled::<(), ()>("clusterswap", &Err(()));
        m.set_leading(true);
        let text = m.encode();
        assert!(
            text.contains(r#"rotor_reconciles_total{controller="cluster",result="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rotor_reconciles_total{controller="clusterswap",result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains("rotor_leading 1"), "{text}");
    }
}
