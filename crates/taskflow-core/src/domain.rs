//! Domain types: a task, its id, title, payload and status, each valid by construction.
//!
//! Requests and messages become these types at the edge (parse, don't validate), so the rest of
//! the code never handles an unchecked title or a status string.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A task's id: a UUID, written in its hyphenated lowercase form (CHAR(36) in MySQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new, random id. Version 7 UUIDs sort by creation time, which keeps InnoDB's primary key
    /// inserts append-only instead of scattering them over the whole index.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| DomainError::InvalidTaskId(s.chars().take(64).collect()))
    }
}

/// A task's title: 1 to 255 characters (the `VARCHAR(255)` column), not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: String) -> Result<Self, DomainError> {
        if raw.trim().is_empty() {
            return Err(DomainError::EmptyTitle);
        }
        let chars = raw.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(DomainError::TitleTooLong { chars });
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task's payload: a JSON object, or nothing. Arrays, strings and numbers are refused so that
/// the worker can always look for the `message` field.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Payload(Option<serde_json::Map<String, serde_json::Value>>);

impl Payload {
    pub fn parse(raw: serde_json::Value) -> Result<Self, DomainError> {
        match raw {
            serde_json::Value::Null => Ok(Self(None)),
            serde_json::Value::Object(map) => Ok(Self(Some(map))),
            other => Err(DomainError::PayloadNotObject(json_kind(&other))),
        }
    }

    pub fn none() -> Self {
        Self(None)
    }

    /// A top-level field of the payload.
    pub fn get(&self, field: &str) -> Option<&serde_json::Value> {
        self.0.as_ref()?.get(field)
    }

    /// The `message` field the worker turns into the task's result, if the payload has one.
    /// A message that is not a string is used as its JSON text.
    pub fn message(&self) -> Option<String> {
        let value = self.0.as_ref()?.get("message")?;
        Some(match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    pub fn to_value(&self) -> serde_json::Value {
        self.0
            .clone()
            .map_or(serde_json::Value::Null, serde_json::Value::Object)
    }

    /// The payload as stored in the JSON column, or `None` for SQL NULL.
    pub fn to_json_text(&self) -> Option<String> {
        self.0
            .as_ref()
            .map(|map| serde_json::to_string(map).expect("a JSON map always serialises"))
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Where a task is in its life: `PENDING → PROCESSING → DONE | FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(salvo_oapi::ToSchema))]
#[cfg_attr(feature = "openapi", salvo(schema(name = "TaskStatus")))]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Pending,
    Processing,
    Done,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [Self::Pending, Self::Processing, Self::Done, Self::Failed];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }

    /// Whether a task may move from `self` to `next`. A PENDING task fails directly when it is
    /// dead-lettered before any attempt could start; a FAILED task becomes PENDING again only
    /// when an operator retries it.
    pub fn can_become(&self, next: TaskStatus) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Processing)
                | (Self::Pending, Self::Failed)
                | (Self::Processing, Self::Done)
                | (Self::Processing, Self::Failed)
                | (Self::Failed, Self::Pending)
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStatus(s.chars().take(32).collect()))
    }
}

/// A task as stored and as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub task_id: TaskId,
    pub title: Title,
    pub payload: Payload,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload's message once DONE, the failure reason once FAILED.
    pub message: Option<String>,
    /// When a delayed task was asked to run (`POST /tasks` with `run_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
}

impl Task {
    /// When the outbox relay should publish the task: a delayed task at its `run_at` (the fast
    /// path leaves it alone), any other once the fast path after the commit had its grace.
    pub fn dispatch_due_at(&self, grace: std::time::Duration) -> DateTime<Utc> {
        match self.run_at {
            Some(at) if self.is_delayed() => at,
            _ => self.created_at + grace,
        }
    }

    /// Whether the task waits for its `run_at`, so the fast path leaves it to the relay.
    pub fn is_delayed(&self) -> bool {
        self.run_at.is_some_and(|at| at > self.created_at)
    }
}

/// How one processing attempt ended: `RETRY` is a transient failure that was retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(salvo_oapi::ToSchema))]
#[cfg_attr(feature = "openapi", salvo(schema(name = "Outcome")))]
#[serde(rename_all = "UPPERCASE")]
pub enum AttemptOutcome {
    Done,
    Failed,
    Retry,
}

impl AttemptOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Retry => "RETRY",
        }
    }
}

impl FromStr for AttemptOutcome {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Done, Self::Failed, Self::Retry]
            .into_iter()
            .find(|outcome| outcome.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStatus(s.chars().take(32).collect()))
    }
}

/// One processing attempt of a task, for its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<String>,
}

/// A task with its attempts, as `GET /tasks/{task_id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub attempts: Vec<Attempt>,
}

/// Why a value is not a valid part of a task. The messages are safe to show to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a valid task id (expected a UUID)")]
    InvalidTaskId(String),
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("title must be at most 255 characters (got {chars})")]
    TitleTooLong { chars: usize },
    #[error("payload must be a JSON object or null (got {0})")]
    PayloadNotObject(&'static str),
    #[error("`{0}` is not a task status (expected PENDING, PROCESSING, DONE or FAILED)")]
    InvalidStatus(String),
}

/// How far the database's clock is ahead of this host's, in microseconds (see [`now_micros`]).
static CLOCK_OFFSET_MICROS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Sets the offset [`now_micros`] adds to this host's clock: the database's clock minus ours.
pub fn set_clock_offset(offset: chrono::TimeDelta) {
    let micros = offset.num_microseconds().unwrap_or(0);
    CLOCK_OFFSET_MICROS.store(micros, std::sync::atomic::Ordering::Relaxed);
}

/// The time on the database's clock, to the microsecond, as `DATETIME(6)` stores it (so a value
/// read back equals the one written). Every timestamp TaskFlow writes comes from here, so status
/// changes made on different hosts order by one clock even when a host's clock is behind.
pub fn now_micros() -> DateTime<Utc> {
    let offset = CLOCK_OFFSET_MICROS.load(std::sync::atomic::Ordering::Relaxed);
    let now = Utc::now().timestamp_micros().saturating_add(offset);
    DateTime::from_timestamp_micros(now).expect("now is in range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_title_of_1_to_255_chars_with_a_visible_char_is_accepted(
            title in "[a-zA-Z0-9 äöü🦀]{0,254}[a-zA-Z0-9äöü🦀]"
        ) {
            let parsed = Title::parse(title.clone()).unwrap();
            prop_assert_eq!(parsed.as_str(), title.as_str());
        }

        #[test]
        fn any_title_over_255_chars_is_refused(title in "[a-z🦀]{256,400}") {
            let refused = matches!(Title::parse(title), Err(DomainError::TitleTooLong { .. }));
            prop_assert!(refused);
        }

        #[test]
        fn any_whitespace_title_is_refused(title in "[ \t\n]{0,20}") {
            prop_assert_eq!(Title::parse(title), Err(DomainError::EmptyTitle));
        }

        #[test]
        fn any_json_that_is_not_an_object_or_null_is_refused_as_payload(
            value in prop_oneof![
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                ".*".prop_map(serde_json::Value::from),
                prop::collection::vec(any::<i32>(), 0..4).prop_map(serde_json::Value::from),
            ]
        ) {
            let refused = matches!(Payload::parse(value), Err(DomainError::PayloadNotObject(_)));
            prop_assert!(refused);
        }

        #[test]
        fn a_status_parses_back_from_its_own_name(index in 0usize..4) {
            let status = TaskStatus::ALL[index];
            prop_assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(status));
        }

        #[test]
        fn every_legal_walk_is_a_sequence_of_runs_that_each_end_at_most_once(
            walk in prop::collection::vec(0usize..4, 1..12)
        ) {
            // Follow only the legal steps of a random walk. Whatever the order, the path splits
            // into runs PENDING [→ PROCESSING] [→ DONE|FAILED], a new run starting only after
            // FAILED (an operator's retry), and nothing ever follows DONE.
            let mut path = vec![TaskStatus::Pending];
            for next in walk.into_iter().map(|i| TaskStatus::ALL[i]) {
                let current = *path.last().unwrap();
                if current.can_become(next) {
                    path.push(next);
                }
            }
            for pair in path.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                prop_assert!(from != TaskStatus::Done, "nothing follows DONE: {:?}", path);
                prop_assert!(from != to);
                if to == TaskStatus::Pending {
                    prop_assert_eq!(from, TaskStatus::Failed);
                }
                if to == TaskStatus::Processing {
                    prop_assert_eq!(from, TaskStatus::Pending);
                }
                if to.is_terminal() {
                    prop_assert!(!from.is_terminal());
                }
            }
        }
    }

    #[test]
    fn done_is_final_and_failed_can_only_be_retried() {
        for next in TaskStatus::ALL {
            assert!(!TaskStatus::Done.can_become(next), "DONE -> {next}");
            assert_eq!(
                TaskStatus::Failed.can_become(next),
                next == TaskStatus::Pending,
                "FAILED -> {next}"
            );
        }
    }

    #[test]
    fn the_payload_message_is_read_as_text() {
        let payload = Payload::parse(serde_json::json!({"message": "hi"})).unwrap();
        assert_eq!(payload.message().as_deref(), Some("hi"));
        let payload = Payload::parse(serde_json::json!({"message": 42})).unwrap();
        assert_eq!(payload.message().as_deref(), Some("42"));
        assert_eq!(Payload::none().message(), None);
    }
}
