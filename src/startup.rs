//! Builds the application: shared state, the actix-web app with its middleware and routes, and
//! the listening server.

use crate::auth::Authenticator;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::routes;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;
use vcf_engine::knowledge::Knowledge;

/// State shared by all workers.
pub struct AppState {
    pub settings: Settings,
    pub knowledge: Arc<Knowledge>,
}

impl AppState {
    pub fn new(settings: Settings) -> anyhow::Result<AppState> {
        let knowledge = crate::knowledge_source::load(&settings)?;
        Ok(AppState {
            settings,
            knowledge: Arc::new(knowledge),
        })
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the server.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let authenticator = web::Data::new(build_authenticator(&settings)?);
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState::new(settings)?);
        let server = run(listener, state, authenticator)?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    authenticator: web::Data<Authenticator>,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // security (issue 5): JWT verification of /cds-services calls.
            .app_data(authenticator.clone())
            .wrap(from_fn(crate::auth::middleware::require_auth))
            .route("/healthz", web::get().to(routes::health::healthz))
            .route("/readyz", web::get().to(routes::health::readyz))
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .run();
    Ok(server)
}

async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.path()))
        .error_response()
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
