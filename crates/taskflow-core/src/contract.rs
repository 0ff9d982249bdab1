//! The messages TaskFlow exchanges with the outside world, defined once: the RabbitMQ
//! `task.created` message, the Redis `task.status` event, and the WebSocket control message.
//!
//! Their JSON shapes are the original design's, so the Python API and worker can each be swapped
//! for ours; the integration suite pins them with snapshots.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{TaskId, TaskStatus};

/// Published by the API on `task.topic` with routing key `task.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub task_id: TaskId,
    /// The task's payload as given: an object or null. Kept as raw JSON so a message from another
    /// producer is still decoded and the worker can fail the task with a reason.
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(deserialize_with = "lenient_utc")]
    pub requested_at: DateTime<Utc>,
}

impl TaskCreated {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a TaskCreated always serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Published on the Redis channel `task.status` at every status change, and relayed unchanged to
/// every WebSocket client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub updated_at: DateTime<Utc>,
    /// The payload's message when DONE, the reason when FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Additive, so a dashboard can show a task it has not read without a request; absent from
    /// the Python services' events and from the worker's, which does not read the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When a delayed task is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// The attempt this change belongs to, when the announcer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl StatusEvent {
    /// An event with only the seed's fields; the optional ones are set by who knows them.
    pub fn new(task_id: TaskId, status: TaskStatus, updated_at: DateTime<Utc>) -> Self {
        Self {
            task_id,
            status,
            updated_at,
            message: None,
            title: None,
            run_at: None,
            attempt: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a StatusEvent always serialises")
    }
}

/// Sent to WebSocket clients when events may have been missed (the Redis subscription was
/// re-established, or the client fell too far behind): reload the state you show from the REST
/// API. It has an `event` field and no `task_id`, so clients tell it from a status event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncNotice {
    pub event: ResyncEvent,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncEvent {
    Resync,
}

impl ResyncNotice {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            event: ResyncEvent::Resync,
            reason: reason.into(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ResyncNotice always serialises")
    }
}

/// Accepts RFC 3339 with an offset (what TaskFlow writes) and the naive ISO 8601 form that
/// Python's `datetime.utcnow().isoformat()` produces, read as UTC.
fn lenient_utc<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(&raw) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| serde::de::Error::custom(format!("`{raw}` is not an ISO 8601 timestamp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_created_from_the_python_api_is_understood() {
        let raw = br#"{"task_id":"5f0c6a9e-8a59-4a8e-9d7e-2b6c3f1f2a10","payload":{"message":"hi"},"requested_at":"2025-10-13T02:30:00.123456"}"#;
        let message = TaskCreated::from_json(raw).unwrap();
        assert_eq!(message.payload["message"], "hi");
        assert_eq!(
            message.requested_at.to_rfc3339(),
            "2025-10-13T02:30:00.123456+00:00"
        );
    }

    #[test]
    fn a_status_event_without_message_has_no_message_field() {
        let event = StatusEvent::new(TaskId::new(), TaskStatus::Processing, Utc::now());
        let json = event.to_json();
        for optional in ["message", "title", "run_at", "attempt"] {
            assert!(!json.contains(optional), "{json}");
        }
    }
}
