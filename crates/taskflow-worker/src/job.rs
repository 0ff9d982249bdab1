//! The task itself, as the original design defines it: DONE with the payload's `message`, FAILED
//! when there is none.
//!
//! Like the Python worker, which "simulates" the job, it has knobs for exercising the failure
//! paths: a payload with `"transient_failures": n` fails its first `n` attempts with a transient
//! error (as a job calling an unavailable service would), which the worker retries with backoff
//! and, past `RETRY_MAX_ATTEMPTS`, dead-letters; `"simulated_panics": n` makes its first `n`
//! attempts panic (as a job with a bug would), which the worker must survive.

use taskflow_core::domain::{Payload, TaskStatus};

/// A failure worth retrying later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransientError(pub String);

/// Runs the task's attempt number `attempt` (1-based, counting every attempt it ever had).
pub fn run(
    payload: &serde_json::Value,
    attempt: u32,
) -> Result<(TaskStatus, String), TransientError> {
    let payload = match Payload::parse(payload.clone()) {
        Ok(payload) => payload,
        Err(err) => return Ok((TaskStatus::Failed, err.to_string())),
    };
    let failures = payload
        .get("transient_failures")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let panics = payload
        .get("simulated_panics")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if u64::from(attempt) <= panics {
        panic!("simulated panic {attempt} of {panics}");
    }
    if u64::from(attempt) <= failures {
        return Err(TransientError(format!(
            "simulated transient failure {attempt} of {failures}"
        )));
    }
    Ok(match payload.message() {
        Some(message) => (TaskStatus::Done, message),
        None => (
            TaskStatus::Failed,
            "payload has no `message` field".to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_makes_the_task_done_and_its_absence_failed() {
        assert_eq!(
            run(&json!({"message": "hi"}), 1).unwrap(),
            (TaskStatus::Done, "hi".to_owned())
        );
        assert_eq!(run(&json!({}), 1).unwrap().0, TaskStatus::Failed);
        assert_eq!(run(&json!(null), 1).unwrap().0, TaskStatus::Failed);
        assert_eq!(run(&json!([1]), 1).unwrap().0, TaskStatus::Failed);
    }

    #[test]
    fn simulated_transient_failures_end_after_their_count() {
        let payload = json!({"message": "hi", "transient_failures": 2});
        assert!(run(&payload, 1).is_err());
        assert!(run(&payload, 2).is_err());
        assert_eq!(run(&payload, 3).unwrap().0, TaskStatus::Done);
    }
}
