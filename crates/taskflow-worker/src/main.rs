//! `taskflow-worker`: runs the worker until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use taskflow_core::config::Settings;
use taskflow_worker::Worker;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_core::telemetry::init("info,sqlx=warn,lapin=warn");
    let result = async {
        let settings = Settings::from_env()?;
        Worker::build(&settings)
            .await?
            .run(taskflow_core::shutdown_signal())
            .await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "taskflow-worker failed");
            ExitCode::FAILURE
        }
    }
}
