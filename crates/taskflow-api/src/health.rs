//! Liveness and readiness.
//!
//! - `/livez`: the process is up and serving (no dependency is asked). For restart decisions.
//! - `/healthz`: a real round trip to MySQL, RabbitMQ and Redis, each with a short timeout: 200
//!   when all answer, 503 with a per-component report when one does not, and 503 `draining` once
//!   shutdown has begun. For routing decisions (readiness).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness, per dependency.
#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "Health"))]
struct Health {
    /// ok, unavailable or draining.
    status: &'static str,
    components: BTreeMap<&'static str, Component>,
}

#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "Component"))]
struct Component {
    /// up or down.
    status: &'static str,
    /// Why it is down: unreachable or timed out (details are in the server log).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "Live"))]
struct Live {
    status: &'static str,
}

pub fn router() -> Router {
    Router::new()
        .push(Router::with_path("healthz").get(healthz))
        .push(Router::with_path("livez").get(livez))
}

/// Liveness: the process serves requests.
#[endpoint(tags("operations"))]
async fn livez() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Readiness: MySQL, RabbitMQ and Redis each answer within 2 s, and the API is not draining.
#[endpoint(
    tags("operations"),
    responses(
        (status_code = 200, description = "Every dependency answered.", body = Health),
        (status_code = 503, description = "A dependency did not answer, or the API is draining.", body = Health),
    )
)]
async fn healthz(depot: &mut Depot, res: &mut Response) {
    let state = AppState::from_depot(depot);
    let (mysql, rabbitmq, redis) = tokio::join!(
        check("mysql", async {
            // Writes go through the batch writer: without it nothing accepted would be stored.
            anyhow::ensure!(state.inserts.is_running(), "the batch writer has stopped");
            taskflow_core::db::ping(&state.pool).await
        }),
        check("rabbitmq", state.broker.ping()),
        check("redis", async {
            // The subscription that feeds /ws, and the connection status changes are sent on.
            let hub = &state.hub;
            anyhow::ensure!(
                hub.subscription.alive_within(hub.subscription_window),
                "the status subscription has not answered a ping"
            );
            state.statuses.ping().await
        }),
    );
    let components = BTreeMap::from([mysql, rabbitmq, redis]);
    let healthy = components.values().all(|c| c.error.is_none());
    let status = if state.is_draining() {
        "draining"
    } else if healthy {
        "ok"
    } else {
        "unavailable"
    };
    res.status_code(if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    });
    res.render(Json(Health { status, components }));
}

async fn check(
    name: &'static str,
    probe: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, Component) {
    let error = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            tracing::warn!(
                component = name,
                error = format!("{err:#}"),
                "health check failed"
            );
            Some("unreachable")
        }
        Err(_) => {
            tracing::warn!(component = name, "health check timed out");
            Some("timed out")
        }
    };
    let status = if error.is_none() { "up" } else { "down" };
    (name, Component { status, error })
}
