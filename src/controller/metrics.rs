//! Prometheus metrics, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// `structure` or `tracker`.
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `accepted`, or why a delivery was refused (`unauthorized`, …).
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub operations: Family<TargetLabel, Counter>,
    /// Runs waiting for the engine (one run at a time writes the store).
    pub queue_depth: Gauge,
    /// Webhook deliveries, by outcome.
    pub events: Family<OutcomeLabel, Counter>,
    /// From the first event that made a synchronizer due to its pass.
    pub event_delay: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("trellis");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let operations = Family::<TargetLabel, Counter>::default();
        let queue_depth = Gauge::default();
        let events = Family::<OutcomeLabel, Counter>::default();
        let event_delay = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register("reconciles", "Reconciles, by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind and error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, by kind",
            duration.clone(),
        );
        registry.register(
            "sync_operations",
            "Operations applied, on structures and on trackers",
            operations.clone(),
        );
        registry.register(
            "queue_depth",
            "Runs waiting for their turn at the engine",
            queue_depth.clone(),
        );
        registry.register(
            "webhook_events",
            "Webhook deliveries, by outcome (accepted, or why refused)",
            events.clone(),
        );
        registry.register(
            "event_to_pass_seconds",
            "From the event that made a synchronizer due to the start of its pass",
            event_delay.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            operations,
            queue_depth,
            events,
            event_delay,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel { kind: kind.into() }
    }

    /// Counts a webhook delivery by its outcome (`accepted`, or why it was
    /// refused).
    pub fn count_event(&self, outcome: &str) {
        self.events
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts what an applied plan changed.
    pub fn count_operations(&self, summary: &crate::plan::Summary) {
        let structure = summary.add + summary.move_ + summary.remove;
        for (target, n) in [
            ("structure", structure),
            ("tracker", summary.tracker_updates),
        ] {
            self.operations
                .get_or_create(&TargetLabel {
                    target: target.into(),
                })
                .inc_by(n as u64);
        }
    }
}
