//! TaskFlow's integration suite: one binary, one harness (`taskflow_tests`), real services.

mod api_errors;
mod contracts;
mod pipeline;
