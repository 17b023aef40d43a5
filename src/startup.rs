//! Builds the application: the actix-web app with its middleware and routes, and the listening
//! server. The shared state lives in [`crate::state`].

use crate::auth::Authenticator;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;
use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};
use std::net::TcpListener;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    audit: crate::audit::AuditStore,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let authenticator = web::Data::new(build_authenticator(&settings)?);
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let audit = crate::audit::AuditStore::open(&settings).await?;
        let state = web::Data::new(AppState::new(settings, audit.clone())?);
        tracing::info!(
            address = %listener.local_addr()?,
            knowledge = %state.knowledge.version,
            "vcf-cds listening"
        );
        let server = run(listener, state, authenticator)?;
        Ok(Application {
            port,
            server,
            audit,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // In-flight calls have their records committed; replay the spool and close the store.
        self.audit.shutdown().await;
        result
    }
}

/// CORS: an explicit origin allowlist, never `*`, no credentials (CDS clients send the JWT in
/// `Authorization`, which does not need cookies). Preflight is answered here, before any
/// authentication.
fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(3600);
    for origin in &settings.cors_origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}

/// Logs one line per request: method, path (no query string: it may carry filter values),
/// status and latency. Nothing from headers or bodies.
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
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::bad_request("", format!("invalid path: {e}")).into()
            }))
            // security (issue 5): JWT verification of /cds-services calls. Innermost, so CORS
            // answers preflight first and adds its headers to 401 answers too.
            .app_data(authenticator.clone())
            .wrap(from_fn(crate::auth::middleware::require_auth))
            .wrap(cors(&state.settings))
            .wrap(from_fn(crate::cors::refusals_as_outcome))
            .wrap(from_fn(access_log))
            .route("/healthz", web::get().to(routes::health::healthz))
            .route("/readyz", web::get().to(routes::health::readyz))
            .route("/cds-services", web::get().to(routes::discovery::discovery))
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
        || req.path() == "/readyz";
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
        issuers = settings.trusted_issuers.len() + usize::from(settings.trust_sandbox),
        open_discovery = settings.open_discovery,
        "authentication configured"
    );
    Ok(authenticator)
}
