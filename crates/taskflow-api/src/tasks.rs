//! `/tasks`: create a task, read one, list them newest first.

use salvo::http::ParseError;
use salvo::http::header::{HeaderValue, LINK};
use salvo::http::mime;
use salvo::prelude::*;
use serde_json::Value;
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db::{self, Cursor, RetryOutcome};
use taskflow_core::domain::{Payload, Task, TaskId, TaskStatus, Title, now_micros};

use crate::dispatch;
use crate::error::ApiError;
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

/// `POST /tasks`: insert the task as PENDING with its message in the outbox (one transaction),
/// publish the message, answer 201 with the task. A failed publish is left to the relay.
#[handler]
async fn create_task(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
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
    db::create_task(&state.pool, &task, &message, state.recovery.outbox_grace).await?;
    dispatch::publish_after_commit(state, &message).await;
    tracing::info!(task_id = %task.task_id, status = %task.status, "task created");
    res.status_code(StatusCode::CREATED);
    res.render(Json(task));
    Ok(())
}

/// `GET /tasks/{task_id}`: the task and its attempts.
#[handler]
async fn get_task(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::from_depot(depot);
    let id = task_id_param(req)?;
    let task = db::get_task_detail(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    res.render(Json(task));
    Ok(())
}

/// `POST /tasks/{task_id}/retry`: an operator's replay of a FAILED task, after a fix. The task
/// becomes PENDING (announced like any status change) and is dispatched again; 409 if it is not
/// FAILED.
#[handler]
async fn retry_task(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::from_depot(depot);
    let id = task_id_param(req)?;
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
    if let Err(err) = state.statuses.publish(&event).await {
        tracing::warn!(task_id = %id, error = format!("{err:#}"), "status change not announced");
    }
    let message = TaskCreated {
        task_id: id,
        payload: task.payload.to_value(),
        requested_at: task.updated_at,
    };
    dispatch::publish_after_commit(state, &message).await;
    tracing::info!(task_id = %id, "task retried by an operator");
    res.render(Json(task));
    Ok(())
}

fn task_id_param(req: &Request) -> Result<TaskId, ApiError> {
    req.param::<String>("task_id")
        .unwrap_or_default()
        .parse()
        .map_err(|err| ApiError::bad_request(format!("{err}"), Some("task_id")))
}

/// `GET /tasks?limit=&status=&before=`: a JSON array, newest first. When more tasks follow, the
/// `x-next-cursor` header (and a `Link: rel="next"`) says where the next page starts.
#[handler]
async fn list_tasks(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::from_depot(depot);
    let limit = match req.queries().get("limit") {
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
    let status = req
        .queries()
        .get("status")
        .map(|raw| raw.parse::<TaskStatus>())
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string(), Some("status")))?;
    let before = req
        .queries()
        .get("before")
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
    res.render(Json(tasks));
    Ok(())
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
