//! `taskflow-api [serve]` runs the API; `taskflow-api migrate` applies the database migrations
//! and exits (the deployment's migration job).

use std::process::ExitCode;

use taskflow_api::Api;
use taskflow_core::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_core::telemetry::init("info,sqlx=warn,lapin=warn");
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    match run(&command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "taskflow-api {command} failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &str) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match command {
        "serve" => {
            Api::build(&settings)
                .await?
                .run(taskflow_core::shutdown_signal())
                .await
        }
        "migrate" => {
            taskflow_core::db::create_database_if_missing(&settings.db).await?;
            let pool = taskflow_core::db::connect(&settings.db).await?;
            let applied = taskflow_core::db::migrate(&pool).await?;
            tracing::info!(?applied, "migrations applied");
            Ok(())
        }
        other => anyhow::bail!("unknown command `{other}` (expected `serve` or `migrate`)"),
    }
}
