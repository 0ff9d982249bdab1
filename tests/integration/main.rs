//! TaskFlow's integration suite: one binary, one harness (`taskflow_tests`), real services.

mod adoption;
mod api_errors;
mod clocks;
mod contracts;
mod edges;
mod fencing;
mod guarantees;
mod idempotency;
mod listing;
mod operations;
mod outbox;
mod pipeline;
mod retention;
mod scale_out;
mod scheduling;
mod security;
mod stalls;

/// The worker binary the harness runs as a separate process.
pub const WORKER_BINARY: &str = env!("CARGO_BIN_EXE_taskflow-worker-under-test");
