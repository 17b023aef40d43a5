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

/// Refused CDS client JWTs by reason (owned by the authenticator, registered here).
pub type JwtFailures = Family<ReasonLabels, Counter>;

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
    pub jwt_failures: JwtFailures,
    /// 1 while ready, 0 while starting or draining.
    pub ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every family; `audit` is read at each scrape; `jwt_failures` comes from the
    /// authenticator.
    pub fn new(audit: AuditStore, jwt_failures: JwtFailures) -> Metrics {
        let mut registry = Registry::with_prefix("vcf_cds");
        let (audit_commit_duration, audit_batch_size) = audit.commit_histograms();
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            cards: Family::default(),
            ratings: Family::default(),
            fhir_fetches: Family::default(),
            fhir_duration: Family::new_with_constructor(latency_histogram),
            fhir_failures: Family::default(),
            audit_commit_duration,
            audit_batch_size,
            jwt_failures,
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

impl Metrics {
    /// Counts the cards (by indicator) and the rated orders (by PAMA code and ACR variant) of
    /// one evaluation.
    pub fn observe_evaluation(&self, evaluation: &vcf_engine::evaluate::Evaluation) {
        for card in &evaluation.response.cards {
            let indicator = serde_json::to_value(card.indicator)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            self.cards
                .get_or_create(&IndicatorLabels { indicator })
                .inc();
        }
        for order in &evaluation.orders {
            if let Some(pama) = order.pama_rating {
                self.ratings
                    .get_or_create(&RatingLabels {
                        pama: pama.code().to_owned(),
                        variant: order
                            .chosen_variant
                            .clone()
                            .unwrap_or_else(|| "none".into()),
                    })
                    .inc();
            }
        }
    }

    /// Counts one FHIR fetch for prefetch key `kind`; `failure` is its reason label, if any.
    pub fn observe_fetch(&self, kind: &str, seconds: f64, failure: Option<&str>) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.fhir_fetches.get_or_create(&labels).inc();
        self.fhir_duration.get_or_create(&labels).observe(seconds);
        if let Some(reason) = failure {
            self.fhir_failures
                .get_or_create(&FailureLabels {
                    kind: kind.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }
}

/// Counts every answered request by route pattern (`actix_web::middleware::from_fn`).
pub async fn middleware(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().cloned();
    // Bounded: arbitrary method tokens would make arbitrary series.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let (route, status) = match &res {
            Ok(r) => (r.request().match_pattern(), r.status().as_u16()),
            Err(e) => (None, e.as_response_error().status_code().as_u16()),
        };
        let route = match route {
            // The services' own paths are routes of their own (`routes::service::configure`),
            // counted under the pattern they share with any other service id.
            Some(p) if is_service_path(&p) => SERVICE_ROUTE.to_owned(),
            Some(p) => p,
            None => "unmatched".to_owned(),
        };
        m.observe_request(&route, &method, status, started.elapsed().as_secs_f64());
    }
    res
}

/// The route pattern of hook calls.
const SERVICE_ROUTE: &str = "/cds-services/{id}";

/// `/cds-services/<id>` of one of the services.
fn is_service_path(pattern: &str) -> bool {
    pattern
        .strip_prefix("/cds-services/")
        .is_some_and(|id| crate::cds::discovery::service(id).is_some())
}

/// Bounded label for a fetch error.
pub fn fetch_reason(e: &crate::cds::fetch::FetchError) -> &'static str {
    use crate::cds::fetch::FetchError;
    match e {
        FetchError::Timeout => "timeout",
        FetchError::Connect(_) => "connect",
        FetchError::Status(_) => "status",
        FetchError::Redirect => "redirect",
        FetchError::TooLarge(_) => "too_large",
        FetchError::Invalid(_) => "invalid",
    }
}

/// Bounded label for a JWT failure (no issuer names or other values from the token).
pub fn jwt_reason(f: &crate::auth::AuthFailure) -> &'static str {
    use crate::auth::AuthFailure as F;
    match f {
        F::MissingHeader => "missing_header",
        F::MultipleHeaders => "multiple_headers",
        F::NotBearer => "not_bearer",
        F::Malformed => "malformed",
        F::TooLarge => "too_large",
        F::BadHeader(_) => "bad_header",
        F::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
        F::BadClaims(_) => "bad_claims",
        F::UntrustedIssuer(_) => "untrusted_issuer",
        F::TenantMismatch => "tenant_mismatch",
        F::JkuNotAllowed => "jku_not_allowed",
        F::UnknownKid => "unknown_kid",
        F::KeysUnavailable => "keys_unavailable",
        F::KeyMismatch => "key_mismatch",
        F::BadSignature => "bad_signature",
        F::WrongAudience => "wrong_audience",
        F::Expired => "expired",
        F::NotYetValid => "not_yet_valid",
        F::IssuedInFuture => "issued_in_future",
        F::LifetimeTooLong => "lifetime_too_long",
        F::Replayed => "replayed",
        F::ReplayStoreFull => "replay_store_full",
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
