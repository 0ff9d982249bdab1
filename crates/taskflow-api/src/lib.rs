//! TaskFlow's API: REST routes for tasks, the `/ws` status stream and `/healthz`.
//!
//! Start-up is split so the tests start exactly what production starts: [`Api::build`] connects
//! to the services and binds the port (0 picks a free one), [`Api::run`] serves until the
//! shutdown future resolves.

mod error;
mod health;
mod state;
mod tasks;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use salvo::catcher::Catcher;
use salvo::conn::tcp::TcpAcceptor;
use salvo::cors::{AllowHeaders, AllowMethods, AllowOrigin, Cors};
use salvo::http::Method;
use salvo::prelude::*;
use taskflow_core::amqp::{self, TaskPublisher};
use taskflow_core::config::{ApiSettings, Settings};
use taskflow_core::db;
use taskflow_core::status_bus::StatusPublisher;
use tokio::sync::watch;

pub use tasks::NEXT_CURSOR_HEADER;

use crate::state::AppState;
use crate::ws::Hub;

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected, bound API that has not started serving yet.
pub struct Api {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    service: Service,
    state: Arc<AppState>,
    close_clients: watch::Sender<bool>,
    relay: tokio::task::JoinHandle<()>,
}

impl Api {
    /// Connects to MySQL, RabbitMQ and Redis, declares the broker topology, subscribes to status
    /// events and binds `API_HOST:API_PORT`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.db).await?;
        let broker = amqp::connect(&settings.amqp).await?;
        let publisher = TaskPublisher::new(&broker, &settings.amqp).await?;
        let statuses = StatusPublisher::connect(&settings.redis).await?;
        let (hub, close_clients, relay) = Hub::start(settings.redis.clone(), &settings.api).await;
        let state = Arc::new(AppState {
            settings: settings.api.clone(),
            pool,
            broker,
            publisher,
            statuses,
            hub,
        });

        let address = format!("{}:{}", settings.api.host, settings.api.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let acceptor = TcpAcceptor::try_from(listener).context("accepting on the listener")?;
        Ok(Self {
            acceptor,
            local_addr,
            service: service(state.clone()),
            state,
            close_clients,
            relay,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish,
    /// and closes every WebSocket with 1001.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let server = Server::new(self.acceptor);
        let handle = server.handle();
        let close_clients = self.close_clients;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests and closing WebSockets");
            let _ = close_clients.send(true);
            handle.stop_graceful(DRAIN_TIMEOUT);
        });
        tracing::info!(address = %self.local_addr, "API listening");
        server.serve(self.service).await;
        self.relay.abort();
        self.state.pool.close().await;
        Ok(())
    }
}

fn service(state: Arc<AppState>) -> Service {
    let cors = cors(&state.settings);
    let router = Router::new()
        .hoop(salvo::affix_state::inject(state))
        .push(tasks::router())
        .push(ws::router())
        .push(health::router());
    Service::new(router)
        .hoop(cors)
        .catcher(Catcher::default().hoop(error::envelope_catcher))
}

fn cors(settings: &ApiSettings) -> salvo::cors::CorsHandler {
    let origins = &settings.cors_allow_origins;
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| origin.parse().ok()))
    };
    Cors::new()
        .allow_origin(allow_origin)
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
        ]))
        .allow_headers(AllowHeaders::list([
            salvo::http::header::CONTENT_TYPE,
            salvo::http::header::AUTHORIZATION,
        ]))
        .expose_headers(vec![NEXT_CURSOR_HEADER, "link"])
        .into_handler()
}
