//! `/tasks`: create a task, read one, list them newest first, retry a failed one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use salvo::http::ParseError;
use salvo::http::mime;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db::{self, RetryOutcome};
use taskflow_core::domain::{Payload, Task, TaskId, TaskStatus, Title, now_micros};

use crate::dispatch;
use crate::error::{ApiError, ErrorEnvelope};
use crate::schema::{NewTask, TaskBody, TaskDetailBody};
use crate::state::AppState;

pub fn router() -> Router {
    Router::with_path("tasks")
        .post(create_task)
        .get(crate::list::list_tasks)
        .push(
            Router::with_path("{task_id}")
                .get(get_task)
                .push(Router::with_path("retry").post(retry_task)),
        )
}

/// A task was created: 201 with it. A replay of an `Idempotency-Key` answers with the first
/// request's body as it was stored, marked `Idempotent-Replayed: true`.
pub enum Created {
    New(TaskBody),
    Replayed(String),
}

impl Scribe for Created {
    fn render(self, res: &mut Response) {
        res.status_code(StatusCode::CREATED);
        match self {
            Self::New(body) => res.render(Json(body)),
            Self::Replayed(stored) => {
                res.add_header("idempotent-replayed", "true", true)
                    .expect("a valid header");
                res.add_header("content-type", "application/json; charset=utf-8", true)
                    .expect("a valid header");
                res.write_body(stored).expect("a body not yet written");
            }
        }
    }
}

impl salvo::oapi::EndpointOutRegister for Created {
    fn register(components: &mut salvo::oapi::Components, operation: &mut salvo::oapi::Operation) {
        operation.responses.insert(
            "201",
            salvo::oapi::Response::new("The task, PENDING.").add_content(
                "application/json",
                <TaskBody as salvo::oapi::ToSchema>::to_schema(components),
            ),
        );
    }
}

/// Create a task.
///
/// Inserts the task as PENDING and due for dispatch (one statement, shared with the requests
/// that arrive together) and answers with the task once that is committed; its PENDING event and
/// `task.created` message go out right after, without the client waiting for the broker. A
/// publish that fails is left to the outbox relay: a 201 always means the task will be
/// dispatched.
///
/// With a `run_at` in the future, the task stays PENDING until then and is published by the
/// outbox relay once due (so the delay survives restarts); a `run_at` in the past runs now.
///
/// With an `Idempotency-Key` header, a retry of the same request (same key, same body) within
/// 24 hours creates nothing and answers with the first answer, marked `Idempotent-Replayed:
/// true`: a client may retry safely after a lost answer, a 504 or a timeout.
#[endpoint(
    tags("tasks"),
    parameters(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 visible ASCII characters; the same key and body within 24 hours replay the first answer.")),
    request_body(content = NewTask, content_type = "application/json", description = "The task to run."),
    responses(
        (status_code = 400, description = "Malformed JSON, or an Idempotency-Key that is empty, longer than 255 bytes or not visible ASCII.", body = ErrorEnvelope),
        (status_code = 401, description = "API_TOKEN is set and the bearer token is missing or wrong.", body = ErrorEnvelope),
        (status_code = 413, description = "Body larger than MAX_BODY_BYTES.", body = ErrorEnvelope),
        (status_code = 415, description = "Content type is not application/json.", body = ErrorEnvelope),
        (status_code = 422, description = "Title, payload or run_at breaks a rule (`field` names it), or the Idempotency-Key was used with another body.", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached; nothing was stored.", body = ErrorEnvelope),
        (status_code = 504, description = "The database did not confirm the INSERT: the task may exist (the message names its id).", body = ErrorEnvelope),
    )
)]
async fn create_task(req: &mut Request, depot: &mut Depot) -> Result<Created, ApiError> {
    let state = AppState::from_depot(depot);
    require_json(req)?;
    let key = idempotency_key(req)?;
    let limit = state.settings.max_body_bytes;
    let body = req
        .payload_with_max_size(limit)
        .await
        .map_err(|err| match err {
            ParseError::PayloadTooLarge => ApiError::PayloadTooLarge { limit },
            other => ApiError::bad_request(format!("cannot read the request body: {other}"), None),
        })?;
    let request_hash: [u8; 32] = Sha256::digest(body).into();
    let now = now_micros();
    let (title, payload, run_at) = parse_new_task(body, now, state.settings.max_delay)?;
    let task = Task {
        task_id: TaskId::new(),
        title,
        payload,
        status: TaskStatus::Pending,
        created_at: now,
        updated_at: now,
        finished_at: None,
        message: None,
        run_at,
    };
    // A delayed task is published by the relay once due: its row says when.
    let message = (!task.is_delayed()).then(|| TaskCreated {
        task_id: task.task_id,
        payload: task.payload.to_value(),
        requested_at: now,
    });
    let slot = dispatch::reserve_dispatch(state).await;
    let task_id = task.task_id;
    let body = TaskBody::from(task.clone());
    match &key {
        None => state.inserts.call(task.clone()).await,
        Some(key) => {
            let key = db::IdempotencyKey { key, request_hash };
            let response = serde_json::to_string(&body).expect("a task serializes");
            let grace = state.recovery.outbox_grace;
            match db::create_task_with_key(&state.pool, &task, grace, &key, &response).await {
                Ok(db::KeyedCreate::Created) => Ok(()),
                Ok(db::KeyedCreate::Replay(stored)) => return Ok(Created::Replayed(stored)),
                Ok(db::KeyedCreate::Mismatch) => {
                    return Err(ApiError::validation(
                        "this Idempotency-Key was used with a different request body",
                        None,
                    ));
                }
                Err(err) => Err(err),
            }
        }
    }
    .map_err(|err| storing_failed(task_id, err))?;
    state.metrics.tasks_created.inc();
    let event = listed_event(&task);
    dispatch::dispatch_after_commit(state, slot, event, message);
    tracing::debug!(%task_id, "task created");
    Ok(Created::New(body))
}

/// The PENDING event of a task the API just wrote, with what the dashboard's list shows of it.
fn listed_event(task: &Task) -> StatusEvent {
    StatusEvent {
        title: Some(task.title.as_str().to_owned()),
        run_at: task.run_at.filter(|_| task.is_delayed()),
        ..StatusEvent::new(task.task_id, task.status, task.updated_at)
    }
}

/// The longest `Idempotency-Key` accepted, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The request's `Idempotency-Key`, if it has one: 1 to 255 visible ASCII characters.
fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let field = Some("Idempotency-Key");
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "more than one Idempotency-Key",
            field,
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::bad_request(
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"),
            field,
        ));
    }
    if !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be visible ASCII characters",
            field,
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// A failed INSERT says "nothing stored" (503) only when it never reached the database, or the
/// database refused it; a connection that broke after the statement left, or a commit never
/// confirmed, may have stored the task, and the client is told so.
fn storing_failed(task_id: TaskId, err: anyhow::Error) -> ApiError {
    if db::write_never_sent(&err) {
        ApiError::Unavailable(err)
    } else if db::refused_by_database(&err) {
        ApiError::Internal(err)
    } else {
        ApiError::OutcomeUnknown {
            task_id,
            cause: err,
        }
    }
}

/// Read a task, with its attempts.
#[endpoint(
    tags("tasks"),
    parameters(("task_id" = String, Path, description = "The task's UUID.")),
    responses(
        (status_code = 400, description = "The id is not a UUID.", body = ErrorEnvelope),
        (status_code = 401, description = "Reads need the token (API_TOKEN_READS).", body = ErrorEnvelope),
        (status_code = 404, description = "No such task.", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached.", body = ErrorEnvelope),
    )
)]
async fn get_task(
    task_id: PathParam<String>,
    depot: &mut Depot,
) -> Result<Json<TaskDetailBody>, ApiError> {
    let state = AppState::from_depot(depot);
    let id = parse_task_id(&task_id)?;
    let task = db::get_task_detail(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    Ok(Json(task.into()))
}

/// Retry a FAILED task.
///
/// An operator's replay after a fix: the task becomes PENDING again (announced like any status
/// change) and is dispatched again.
#[endpoint(
    tags("tasks"),
    parameters(("task_id" = String, Path, description = "The task's UUID.")),
    responses(
        (status_code = 400, description = "The id is not a UUID.", body = ErrorEnvelope),
        (status_code = 401, description = "The bearer token is missing or wrong.", body = ErrorEnvelope),
        (status_code = 404, description = "No such task.", body = ErrorEnvelope),
        (status_code = 409, description = "The task is not FAILED.", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached.", body = ErrorEnvelope),
    )
)]
async fn retry_task(
    task_id: PathParam<String>,
    depot: &mut Depot,
) -> Result<Json<TaskBody>, ApiError> {
    let state = AppState::from_depot(depot);
    let id = parse_task_id(&task_id)?;
    let slot = dispatch::reserve_dispatch(state).await;
    let task = match db::retry_task(&state.pool, id, state.recovery.outbox_grace).await? {
        RetryOutcome::Retried(task) => task,
        RetryOutcome::NotFailed(status) => {
            return Err(ApiError::Conflict(format!(
                "only FAILED tasks can be retried; this one is {status}"
            )));
        }
        RetryOutcome::NotFound => return Err(ApiError::NotFound("task")),
    };
    let event = listed_event(&task);
    let message = TaskCreated {
        task_id: id,
        payload: task.payload.to_value(),
        requested_at: task.updated_at,
    };
    dispatch::dispatch_after_commit(state, slot, event, Some(message));
    tracing::info!(task_id = %id, "task retried by an operator");
    Ok(Json(task.into()))
}

fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|err| ApiError::bad_request(format!("{err}"), Some("task_id")))
}

fn require_json(req: &Request) -> Result<(), ApiError> {
    let is_json = req.content_type().is_some_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Turns a `POST /tasks` body into a valid title, payload and `run_at`: bad JSON syntax is 400,
/// anything well formed that breaks a rule is 422 and names the field.
fn parse_new_task(
    body: &[u8],
    now: DateTime<Utc>,
    max_delay: Duration,
) -> Result<(Title, Payload, Option<DateTime<Utc>>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("body is not valid JSON: {err}"), None))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::validation(
            "body must be a JSON object with a title",
            None,
        ));
    };
    let title = match fields.remove("title") {
        None | Some(Value::Null) => {
            return Err(ApiError::validation("title is required", Some("title")));
        }
        Some(Value::String(title)) => title,
        Some(_) => {
            return Err(ApiError::validation(
                "title must be a string",
                Some("title"),
            ));
        }
    };
    let title =
        Title::parse(title).map_err(|err| ApiError::validation(err.to_string(), Some("title")))?;
    let payload = Payload::parse(fields.remove("payload").unwrap_or(Value::Null))
        .map_err(|err| ApiError::validation(err.to_string(), Some("payload")))?;
    let run_at = match fields.remove("run_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => Some(parse_run_at(&raw, now, max_delay)?),
        Some(_) => {
            return Err(ApiError::validation(
                "run_at must be an RFC 3339 time string",
                Some("run_at"),
            ));
        }
    };
    Ok((title, payload, run_at))
}

/// An RFC 3339 time no further ahead than `MAX_DELAY`, in UTC and truncated to microseconds as
/// the database keeps it. A time in the past (since 1970) is accepted: the task runs now.
fn parse_run_at(
    raw: &str,
    now: DateTime<Utc>,
    max_delay: Duration,
) -> Result<DateTime<Utc>, ApiError> {
    let field = Some("run_at");
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|err| {
            ApiError::validation(format!("run_at is not an RFC 3339 time: {err}"), field)
        })?
        .with_timezone(&Utc);
    let at = DateTime::from_timestamp_micros(at.timestamp_micros())
        .ok_or_else(|| ApiError::validation("run_at is out of range", field))?;
    // MySQL's DATETIME starts at year 1000; a past this far off is a mistake, not a schedule.
    if at < DateTime::UNIX_EPOCH {
        return Err(ApiError::validation(
            "run_at must be after 1970-01-01T00:00:00Z",
            field,
        ));
    }
    let latest = now + max_delay;
    if at > latest {
        return Err(ApiError::validation(
            format!("run_at may be at most MAX_DELAY ({max_delay:?}) ahead, i.e. before {latest}"),
            field,
        ));
    }
    Ok(at)
}
