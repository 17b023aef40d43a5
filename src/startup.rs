//! Builds the application: shared state, the actix-web app with its middleware and routes, and
//! the listening server.

use crate::configuration::Settings;
use crate::error::ApiError;
use crate::routes;
use actix_web::dev::Server;
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
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState::new(settings)?);
        let server = run(listener, state)?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
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
