//! Prometheus metrics (`GET /metrics`, text format 0.0.4), built with `prometheus-client`, the
//! Prometheus project's Rust client. One [`Metrics`] per application: the families below are
//! updated where things happen (HTTP middleware, hook route, FHIR fetches, JWT verification,
//! audit writer), and the audit trail's own counters are read from the store at scrape time.
//!
//! Labels are bounded sets only (route patterns, not paths; reasons and kinds from enums;
//! PAMA codes and ACR variants from the knowledge), never ids or anything from a patient.

use crate::audit::AuditStore;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern (`/cds-services/{id}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IndicatorLabels {
    pub indicator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RatingLabels {
    /// PAMA rating code (`appropriate`, `not-appropriate`, `no-criteria-apply`).
    pub pama: String,
    /// ACR variant (`V1`...), or `none`.
    pub variant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Prefetch key (`patient`, `conditions`, ...).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
    /// `timeout`, `connect`, `status`, `redirect`, `too_large`, `invalid`, `outcome`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The application's metrics.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub cards: Family<IndicatorLabels, Counter>,
    pub ratings: Family<RatingLabels, Counter>,
    pub fhir_fetches: Family<KindLabels, Counter>,
    pub fhir_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub fhir_failures: Family<FailureLabels, Counter>,
    pub audit_commit_duration: Histogram,
    pub audit_batch_size: Histogram,
    pub jwt_failures: Family<ReasonLabels, Counter>,
    /// 1 while ready, 0 while starting or draining.
    pub ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every family; `audit` is read at each scrape.
    pub fn new(audit: AuditStore) -> Metrics {
        let mut registry = Registry::with_prefix("vcf_cds");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            cards: Family::default(),
            ratings: Family::default(),
            fhir_fetches: Family::default(),
            fhir_duration: Family::new_with_constructor(latency_histogram),
            fhir_failures: Family::default(),
            audit_commit_duration: latency_histogram(),
            audit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            jwt_failures: Family::default(),
            ready: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route pattern and method",
            m.http_duration.clone(),
        );
        registry.register("cards", "CDS cards returned, by indicator", m.cards.clone());
        registry.register(
            "ratings",
            "Orders rated, by PAMA rating code and ACR variant",
            m.ratings.clone(),
        );
        registry.register(
            "fhir_fetches",
            "FHIR server fetches (searches, reads, next pages), by prefetch key",
            m.fhir_fetches.clone(),
        );
        registry.register(
            "fhir_fetch_duration_seconds",
            "FHIR server fetch latency, by prefetch key",
            m.fhir_duration.clone(),
        );
        registry.register(
            "fhir_fetch_failures",
            "FHIR server fetches that failed, by prefetch key and reason",
            m.fhir_failures.clone(),
        );
        registry.register(
            "audit_commit_duration_seconds",
            "Audit group-commit transaction latency",
            m.audit_commit_duration.clone(),
        );
        registry.register(
            "audit_commit_batch_size",
            "Audit records per group-commit transaction",
            m.audit_batch_size.clone(),
        );
        registry.register(
            "jwt_failures",
            "CDS client JWTs refused, by reason",
            m.jwt_failures.clone(),
        );
        registry.register(
            "ready",
            "1 when /readyz answers 200, 0 while starting or draining",
            m.ready.clone(),
        );
        registry.register_collector(Box::new(AuditCollector(audit)));
        Metrics { registry, ..m }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }
}

/// The audit trail's counters (the ones `/audit/api/metrics` shows), read at scrape time.
#[derive(Debug)]
struct AuditCollector(AuditStore);

impl prometheus_client::collector::Collector for AuditCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.metrics();
        let counters: [(&str, &str, u64); 8] = [
            (
                "audit_records_committed",
                "Audit records committed directly to the store",
                m.records_committed,
            ),
            (
                "audit_commit_batches",
                "Audit group-commit transactions",
                m.commit_batches,
            ),
            (
                "audit_records_spooled",
                "Audit records written to the local spool because the store was unavailable",
                m.records_spooled,
            ),
            (
                "audit_records_replayed",
                "Audit records replayed from the spool into the store",
                m.records_replayed,
            ),
            (
                "audit_undelivered",
                "Responses sent before their audit records reached the store",
                m.undelivered,
            ),
            (
                "audit_volatile",
                "Audit records that could not be spooled (held in memory)",
                m.volatile,
            ),
            (
                "audit_dead_letter",
                "Spooled audit records the store refused (kept in dead-letter.jsonl)",
                m.dead_letter,
            ),
            (
                "audit_store_failures",
                "Times the audit store went from available to unavailable",
                m.store_failures,
            ),
        ];
        for (name, help, v) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(metric)?;
        }
        let gauges: [(&str, &str, i64); 3] = [
            (
                "audit_spool_backlog",
                "Audit records waiting in the spool",
                m.spool_backlog as i64,
            ),
            (
                "audit_volatile_pending",
                "Audit records currently held in memory only",
                m.volatile_pending as i64,
            ),
            (
                "audit_store_up",
                "1 when the audit store is reachable",
                i64::from(m.store_up),
            ),
        ];
        for (name, help, v) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(metric)?;
        }
        Ok(())
    }
}
