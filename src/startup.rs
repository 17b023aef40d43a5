//! Builds the application: the actix-web app with its middleware and routes, and the listening
//! server. The shared state lives in [`crate::state`].

use crate::auth::Authenticator;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};
use std::net::TcpListener;
use std::time::Duration;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    /// The separate `metrics_listen` server, if configured.
    metrics_server: Option<(u16, Server)>,
    audit: crate::audit::AuditStore,
    lifecycle: web::Data<Lifecycle>,
    metrics: web::Data<Metrics>,
    grace: Duration,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let authenticator = build_authenticator(&settings)?;
        let jwt_failures = authenticator.failure_metrics();
        let authenticator = web::Data::new(authenticator);
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match &settings.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr)?),
            None => None,
        };
        let audit = crate::audit::AuditStore::open(&settings).await?;
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let state = web::Data::new(AppState::new(settings, audit.clone())?);
        let lifecycle = web::Data::new(Lifecycle::default());
        let metrics = web::Data::new(Metrics::new(audit.clone(), jwt_failures));
        tracing::info!(
            address = %listener.local_addr()?,
            knowledge = %state.knowledge.version,
            "vcf-cds listening"
        );
        let server = run(
            listener,
            state,
            authenticator,
            lifecycle.clone(),
            metrics.clone(),
            grace,
        )?;
        let metrics_server = match metrics_listener {
            Some(l) => {
                let addr = l.local_addr()?;
                tracing::info!(address = %addr, "metrics listening");
                Some((addr.port(), metrics_only(l, metrics.clone())?))
            }
            None => None,
        };
        Ok(Application {
            port,
            server,
            metrics_server,
            audit,
            lifecycle,
            metrics,
            grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `metrics_listen` port, when configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(p, _)| *p)
    }

    /// Serves until SIGTERM/SIGINT (or the server stops otherwise): readiness turns 503, the
    /// listener stops accepting, in-flight requests get `shutdown_grace_ms` to finish (then
    /// open connections are closed), and the audit writer and spool are flushed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let metrics_server = self
            .metrics_server
            .map(|(_, s)| (s.handle(), tokio::spawn(s)));
        self.lifecycle.set_ready();
        self.metrics.ready.set(1);
        let result = tokio::select! {
            joined = &mut server => joined,
            signal = shutdown_signal() => {
                self.lifecycle.set_draining();
                self.metrics.ready.set(0);
                tracing::info!(
                    signal,
                    grace_ms = self.grace.as_millis() as u64,
                    "shutting down: not ready, no new connections, finishing in-flight requests"
                );
                if tokio::time::timeout(self.grace, handle.stop(true)).await.is_err() {
                    tracing::warn!("shutdown grace period over: closing open connections");
                    handle.stop(false).await;
                }
                server.await
            }
        };
        let result = result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        // In-flight calls have their records committed; replay the spool and close the store.
        self.audit.shutdown().await;
        if let Some((handle, task)) = metrics_server {
            handle.stop(false).await;
            let _ = task.await;
        }
        tracing::info!("vcf-cds stopped");
        result
    }
}

/// The first SIGTERM or SIGINT.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// The `metrics_listen` server: `GET /metrics` only, one worker.
fn metrics_only(listener: TcpListener, metrics: web::Data<Metrics>) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(routes::metrics::metrics_open))
            .default_service(web::to(|req: actix_web::HttpRequest| async move {
                ApiError::not_found(format!(
                    "only GET /metrics is served here, not {}",
                    req.path().chars().take(200).collect::<String>()
                ))
                .error_response()
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// CORS: an explicit origin allowlist, never `*`, no credentials (CDS clients send the JWT in
/// `Authorization`, which does not need cookies). Preflight is answered here, before any
/// authentication.
fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static(crate::request_id::HEADER),
        ])
        // Browser clients may read the request id of an answer.
        .expose_headers([header::HeaderName::from_static(crate::request_id::HEADER)])
        .max_age(3600);
    for origin in &settings.cors_origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}

/// Logs one line per request: method, path (no query string: it may carry filter values),
/// status and latency, inside the `request` span carrying `request_id`. Nothing else from
/// headers or bodies.
async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().chars().take(200).collect::<String>();
    let res = next.call(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match &res {
        Ok(r) => tracing::info!(%method, path, status = r.status().as_u16(), ms, "request"),
        Err(e) => tracing::info!(
            %method,
            path,
            status = e.as_response_error().status_code().as_u16(),
            ms,
            "request"
        ),
    }
    res
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    authenticator: web::Data<Authenticator>,
    lifecycle: web::Data<Lifecycle>,
    metrics: web::Data<Metrics>,
    grace: Duration,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(lifecycle.clone())
            .app_data(metrics.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::bad_request("", format!("invalid path: {e}")).into()
            }))
            // security (issue 5): JWT verification of /cds-services calls. Innermost, so CORS
            // answers preflight first and adds its headers to 401 answers too.
            .app_data(authenticator.clone())
            .wrap(from_fn(crate::auth::middleware::require_auth))
            .wrap(cors(&state.settings))
            .wrap(from_fn(crate::cors::refusals_as_outcome))
            .wrap(from_fn(crate::metrics::middleware))
            .wrap(from_fn(access_log))
            // Outermost: the id is set before the access log line and echoed on every answer.
            .wrap(from_fn(crate::request_id::middleware))
            .route("/healthz", web::get().to(routes::health::healthz))
            .route("/readyz", web::get().to(routes::health::readyz))
            .route("/openapi.json", web::get().to(routes::openapi::openapi))
            .route("/metrics", web::get().to(routes::metrics::metrics))
            .route("/cds-services", web::get().to(routes::discovery::discovery))
            .configure(routes::service::configure)
            .route(
                "/cds-services/{id}",
                web::post().to(routes::service::call_service),
            )
            .route(
                "/cds-services/{id}/feedback",
                web::post().to(routes::feedback::feedback),
            )
            .configure(routes::audit_api::configure)
            .configure(routes::dashboard::configure)
            .default_service(web::to(not_found))
    })
    // Signals are handled by `Application::run_until_stopped` (readiness first); actix's own
    // limit only backs up the grace period.
    .disable_signals()
    .shutdown_timeout(grace.as_secs().max(1) + 1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Unknown paths and methods: OperationOutcome, never an empty body or HTML.
async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let path: String = req.path().chars().take(200).collect();
    let known_path = req.path() == "/cds-services"
        || req.path().starts_with("/cds-services/")
        || req.path() == "/healthz"
        || req.path() == "/readyz"
        || req.path() == "/openapi.json"
        || req.path() == "/metrics";
    if known_path {
        ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            crate::error::IssueType::NotSupported,
            format!("{} is not supported on {path}", req.method()),
        )
        .error_response()
    } else {
        ApiError::not_found(format!("no such endpoint: {} {path}", req.method())).error_response()
    }
}

// ---- security (issue 5) ----

/// Decides the authentication mode (refusing to start when the service would be open on a
/// non-loopback address), says so loudly when authentication is off or the public sandbox key
/// is trusted, and builds the JWT verifier. Runs before the listener is bound.
pub fn build_authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let mode = crate::auth::startup_mode(settings).map_err(anyhow::Error::msg)?;
    if let Some(warning) = mode.warning(settings) {
        tracing::warn!("{warning}");
    }
    if settings.trust_sandbox {
        tracing::warn!("{}", crate::auth::sandbox::SANDBOX_WARNING);
    }
    let authenticator = Authenticator::new(settings).map_err(anyhow::Error::msg)?;
    tracing::info!(
        mode = ?authenticator.mode(),
        replay_cache = if authenticator.replay_shared() { "postgresql" } else { "memory" },
        issuers = settings.trusted_issuers.len() + usize::from(settings.trust_sandbox),
        open_discovery = settings.open_discovery,
        "authentication configured"
    );
    Ok(authenticator)
}
