//! TaskFlow's core: the domain, the message contracts, configuration, and the adapters for
//! MySQL ([`db`]), RabbitMQ ([`amqp`]) and Redis ([`status_bus`]).
//!
//! It knows no HTTP framework: the API and the worker are thin layers over it.

pub mod amqp;
pub mod backoff;
pub mod batch;
pub mod config;
pub mod contract;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod status_bus;
pub mod telemetry;

/// Resolves on Ctrl-C or SIGTERM: the signal both binaries shut down on.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
