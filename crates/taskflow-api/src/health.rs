//! `/healthz`: a real round trip to MySQL, RabbitMQ and Redis, each with a short timeout.
//! 200 when all three answer, 503 with a per-component report when one does not, and 503
//! `draining` once shutdown has begun.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use salvo::prelude::*;
use serde::Serialize;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Health {
    status: &'static str,
    components: BTreeMap<&'static str, Component>,
}

#[derive(Serialize)]
struct Component {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

pub fn router() -> Router {
    Router::with_path("healthz").get(healthz)
}

#[handler]
async fn healthz(depot: &mut Depot, res: &mut Response) {
    let state = AppState::from_depot(depot);
    let (mysql, rabbitmq, redis) = tokio::join!(
        check("mysql", taskflow_core::db::ping(&state.pool)),
        check("rabbitmq", state.broker.ping()),
        check("redis", state.statuses.ping()),
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
