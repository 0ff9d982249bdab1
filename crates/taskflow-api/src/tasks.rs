//! `/tasks`: create a task, read one, list them newest first, retry a failed one.

use salvo::http::ParseError;
use salvo::http::header::{HeaderValue, LINK};
use salvo::http::mime;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde_json::Value;
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db::{self, Cursor, RetryOutcome};
use taskflow_core::domain::{Payload, Task, TaskId, TaskStatus, Title, now_micros};

use crate::dispatch;
use crate::error::{ApiError, ErrorEnvelope};
use crate::schema::{NewTask, TaskBody, TaskDetailBody};
use crate::state::AppState;

/// The response header that carries the cursor of the next page, when there is one.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub fn router() -> Router {
    Router::with_path("tasks")
        .post(create_task)
        .get(list_tasks)
        .push(
            Router::with_path("{task_id}")
                .get(get_task)
                .push(Router::with_path("retry").post(retry_task)),
        )
}

/// A task was created: 201 with it.
pub struct Created(TaskBody);

impl Scribe for Created {
    fn render(self, res: &mut Response) {
        res.status_code(StatusCode::CREATED);
        res.render(Json(self.0));
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
#[endpoint(
    tags("tasks"),
    request_body(content = NewTask, content_type = "application/json", description = "The task to run."),
    responses(
        (status_code = 400, description = "Malformed JSON.", body = ErrorEnvelope),
        (status_code = 401, description = "API_TOKEN is set and the bearer token is missing or wrong.", body = ErrorEnvelope),
        (status_code = 413, description = "Body larger than MAX_BODY_BYTES.", body = ErrorEnvelope),
        (status_code = 415, description = "Content type is not application/json.", body = ErrorEnvelope),
        (status_code = 422, description = "Title or payload breaks a rule; `field` names it.", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached; nothing was stored.", body = ErrorEnvelope),
    )
)]
async fn create_task(req: &mut Request, depot: &mut Depot) -> Result<Created, ApiError> {
    let state = AppState::from_depot(depot);
    require_json(req)?;
    let limit = state.settings.max_body_bytes;
    let body = req
        .payload_with_max_size(limit)
        .await
        .map_err(|err| match err {
            ParseError::PayloadTooLarge => ApiError::PayloadTooLarge { limit },
            other => ApiError::bad_request(format!("cannot read the request body: {other}"), None),
        })?;
    let (title, payload) = parse_new_task(body)?;

    let now = now_micros();
    let task = Task {
        task_id: TaskId::new(),
        title,
        payload,
        status: TaskStatus::Pending,
        created_at: now,
        updated_at: now,
        finished_at: None,
        message: None,
    };
    let message = TaskCreated {
        task_id: task.task_id,
        payload: task.payload.to_value(),
        requested_at: now,
    };
    let slot = dispatch::reserve_dispatch(state).await;
    state.inserts.call(task.clone()).await?;
    state.metrics.tasks_created.inc();
    let event = StatusEvent {
        task_id: task.task_id,
        status: task.status,
        updated_at: task.updated_at,
        message: None,
    };
    dispatch::dispatch_after_commit(state, slot, event, message);
    tracing::debug!(task_id = %task.task_id, "task created");
    Ok(Created(task.into()))
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
    let event = StatusEvent {
        task_id: id,
        status: task.status,
        updated_at: task.updated_at,
        message: None,
    };
    let message = TaskCreated {
        task_id: id,
        payload: task.payload.to_value(),
        requested_at: task.updated_at,
    };
    dispatch::dispatch_after_commit(state, slot, event, message);
    tracing::info!(task_id = %id, "task retried by an operator");
    Ok(Json(task.into()))
}

fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|err| ApiError::bad_request(format!("{err}"), Some("task_id")))
}

/// List tasks, newest first.
///
/// Keyset paging: when more tasks follow, the `x-next-cursor` header (and a `Link: rel="next"`)
/// gives the `before` of the next page.
#[endpoint(
    tags("tasks"),
    parameters(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)."),
        ("status" = Option<String>, Query, description = "PENDING, PROCESSING, DONE or FAILED."),
        ("before" = Option<String>, Query, description = "A cursor from x-next-cursor."),
    ),
    responses(
        (status_code = 400, description = "A bad limit, status or cursor; `field` names it.", body = ErrorEnvelope),
        (status_code = 401, description = "Reads need the token (API_TOKEN_READS).", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached.", body = ErrorEnvelope),
    )
)]
async fn list_tasks(
    limit: QueryParam<String, false>,
    status: QueryParam<String, false>,
    before: QueryParam<String, false>,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<Vec<TaskBody>>, ApiError> {
    let state = AppState::from_depot(depot);
    let limit = match limit.into_inner() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                    Some("limit"),
                )
            })?,
    };
    let status = status
        .into_inner()
        .map(|raw| raw.parse::<TaskStatus>())
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string(), Some("status")))?;
    let before = before
        .into_inner()
        .map(|raw| raw.parse::<Cursor>())
        .transpose()
        .map_err(|()| {
            ApiError::bad_request("before must be a cursor from x-next-cursor", Some("before"))
        })?;

    // One row more than asked tells whether another page follows.
    let mut tasks = db::list_tasks(&state.pool, status, before, limit + 1).await?;
    if tasks.len() > limit as usize {
        tasks.truncate(limit as usize);
        let cursor = Cursor::after(tasks.last().expect("limit is at least 1")).to_string();
        let mut next = format!("</tasks?limit={limit}&before={cursor}");
        if let Some(status) = status {
            next.push_str(&format!("&status={status}"));
        }
        next.push_str(">; rel=\"next\"");
        let headers = res.headers_mut();
        headers.insert(
            NEXT_CURSOR_HEADER,
            HeaderValue::from_str(&cursor).expect("cursor is ASCII"),
        );
        headers.insert(LINK, HeaderValue::from_str(&next).expect("link is ASCII"));
    }
    Ok(Json(tasks.into_iter().map(Into::into).collect()))
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

/// Turns a `POST /tasks` body into a valid title and payload: bad JSON syntax is 400, anything
/// well formed that breaks a rule is 422 and names the field.
fn parse_new_task(body: &[u8]) -> Result<(Title, Payload), ApiError> {
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
    Ok((title, payload))
}
