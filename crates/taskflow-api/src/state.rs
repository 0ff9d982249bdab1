//! What every handler shares, handed to them through the Depot.

use std::sync::Arc;

use anyhow::Context as _;
use salvo::Depot;
use sqlx::MySqlPool;
use taskflow_core::amqp::TaskPublisher;
use taskflow_core::config::ApiSettings;
use taskflow_core::status_bus::StatusPublisher;

use crate::ws::Hub;

pub struct AppState {
    pub settings: ApiSettings,
    pub pool: MySqlPool,
    pub broker: lapin::Connection,
    pub publisher: TaskPublisher,
    pub statuses: StatusPublisher,
    pub hub: Arc<Hub>,
}

impl AppState {
    /// The state injected by the router's `affix_state` hoop; its absence is a wiring bug.
    pub fn from_depot(depot: &Depot) -> &Arc<AppState> {
        depot
            .get_typed::<Arc<AppState>>()
            .expect("AppState is injected at the router root")
    }

    /// A broker round trip: open and close a channel.
    pub async fn ping_broker(&self) -> anyhow::Result<()> {
        let channel = self
            .broker
            .create_channel()
            .await
            .context("opening a channel")?;
        channel
            .close(200, "health check".into())
            .await
            .context("closing the channel")?;
        Ok(())
    }
}
