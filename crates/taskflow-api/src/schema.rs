//! The API's representations: what goes over HTTP, described for OpenAPI.
//!
//! The domain types in `taskflow-core` know no framework; its enums carry OpenAPI schemas
//! through its `openapi` feature, and the structs (whose fields are private types there) are
//! mirrored here and built from the domain's. The integration suite's snapshots pin the JSON.

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use serde::Serialize;
use taskflow_core::domain::{Attempt, AttemptOutcome, Task, TaskDetail, TaskStatus};
use uuid::Uuid;

/// A task.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "Task"))]
pub struct TaskBody {
    pub task_id: Uuid,
    /// 1 to 255 characters.
    pub title: String,
    /// A JSON object, or null.
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload's message once DONE, the failure reason once FAILED.
    pub message: Option<String>,
    /// When a delayed task was asked to run; absent for a task run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
}

impl From<Task> for TaskBody {
    fn from(task: Task) -> Self {
        let payload = match task.payload.to_value() {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        };
        Self {
            task_id: task.task_id.as_uuid(),
            title: task.title.as_str().to_owned(),
            payload,
            status: task.status,
            created_at: task.created_at,
            updated_at: task.updated_at,
            finished_at: task.finished_at,
            message: task.message,
            run_at: task.run_at,
        }
    }
}

/// One processing attempt of a task.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "Attempt"))]
pub struct AttemptBody {
    pub attempt: u32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<String>,
}

impl From<Attempt> for AttemptBody {
    fn from(attempt: Attempt) -> Self {
        Self {
            attempt: attempt.attempt,
            worker: attempt.worker,
            started_at: attempt.started_at,
            finished_at: attempt.finished_at,
            outcome: attempt.outcome,
            error: attempt.error,
        }
    }
}

/// A task with its timeline of attempts.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = "TaskDetail"))]
pub struct TaskDetailBody {
    #[serde(flatten)]
    pub task: TaskBody,
    pub attempts: Vec<AttemptBody>,
}

impl From<TaskDetail> for TaskDetailBody {
    fn from(detail: TaskDetail) -> Self {
        Self {
            task: detail.task.into(),
            attempts: detail.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// The body of `POST /tasks`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler parses it field by field for precise errors.
#[salvo(schema(name = "NewTask"))]
pub struct NewTask {
    /// 1 to 255 characters, not only whitespace.
    #[salvo(schema(example = "Example Task"))]
    pub title: String,
    /// A JSON object or null. The task is DONE with `payload.message` if present, else FAILED.
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    /// RFC 3339: run the task no earlier than this, at most `MAX_DELAY` ahead (default 30
    /// days); a past time runs it now.
    pub run_at: Option<DateTime<Utc>>,
}

/// Task counts, and what finished per minute, for the dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[salvo(schema(name = "Stats"))]
pub struct Stats {
    /// Tasks per status, every status present.
    pub counts: Counts,
    /// Tasks finished per minute over the last hour, oldest first; minutes without any are
    /// left out.
    pub finished_per_minute: Vec<MinuteCount>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[salvo(schema(name = "Counts"))]
pub struct Counts {
    pub pending: u64,
    pub processing: u64,
    pub done: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[salvo(schema(name = "MinuteCount"))]
pub struct MinuteCount {
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub done: u64,
    pub failed: u64,
}
