//! `taskflow-test-services`: starts MySQL, RabbitMQ and Redis in containers with the
//! integration harness's own code, prints their URLs (`TEST_DB_URL=…`, …, then `READY`), and
//! keeps them until Ctrl-C or SIGTERM, when it removes them. `cargo xtask up` uses it where a
//! Docker engine is reachable.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let (services, containers) = match taskflow_tests::services::start_containers().await {
        Ok(started) => started,
        Err(err) => {
            eprintln!("cannot start the containers: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("TEST_DB_URL={}", services.mysql);
    println!("TEST_RABBITMQ_URL={}", services.rabbitmq);
    println!("TEST_REDIS_URL={}", services.redis);
    println!("READY");
    taskflow_core::shutdown_signal().await;
    // Dropping the handles removes the containers.
    drop(containers);
    ExitCode::SUCCESS
}
