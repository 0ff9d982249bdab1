//! What every handler shares, handed to them through the Depot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use salvo::Depot;
use sqlx::MySqlPool;
use taskflow_core::amqp::Broker;
use taskflow_core::batch::Batcher;
use taskflow_core::config::{ApiSettings, RecoverySettings};
use taskflow_core::domain::Task;
use taskflow_core::status_bus::StatusPublisher;
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::ApiMetrics;
use crate::ws::Hub;

pub struct AppState {
    pub settings: ApiSettings,
    pub recovery: RecoverySettings,
    pub pool: MySqlPool,
    pub broker: Arc<Broker>,
    pub statuses: StatusPublisher,
    /// Inserts new tasks, many per statement when requests arrive together.
    pub inserts: Batcher<Task, ()>,
    pub hub: Arc<Hub>,
    /// Ids of tasks whose message the broker confirmed: they are marked dispatched in batches.
    pub sent: mpsc::UnboundedSender<taskflow_core::db::DispatchMark>,
    /// One permit per dispatch that may be under way ([`crate::dispatch::dispatch_after_commit`]).
    pub dispatches: Arc<Semaphore>,
    pub metrics: Arc<ApiMetrics>,
    pub stats: crate::stats::StatsCache,
    /// Set once shutdown begins; see [`AppState::start_draining`].
    pub draining: AtomicBool,
}

impl AppState {
    /// The state injected by the router's `affix_state` hoop; its absence is a wiring bug.
    pub fn from_depot(depot: &Depot) -> &Arc<AppState> {
        depot
            .get_typed::<Arc<AppState>>()
            .expect("AppState is injected at the router root")
    }

    /// Shutdown has begun: `/healthz` says so, so load balancers stop sending requests.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
