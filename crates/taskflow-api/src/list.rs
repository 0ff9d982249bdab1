//! `GET /tasks`: the list, newest first, narrowed by status, title prefix, creation time or ids,
//! with keyset paging.

use chrono::{DateTime, Utc};
use salvo::http::header::{HeaderValue, LINK};
use salvo::oapi::extract::QueryParam;
use salvo::prelude::*;
use taskflow_core::db::{self, Cursor, ListFilter};
use taskflow_core::domain::{TaskId, TaskStatus};

use crate::error::{ApiError, ErrorEnvelope};
use crate::schema::TaskBody;
use crate::state::AppState;

/// The response header that carries the cursor of the next page, when there is one.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// The most tasks `ids` may name.
const MAX_IDS: usize = 100;

/// List tasks, newest first.
///
/// Keyset paging: when more tasks follow, the `x-next-cursor` header (and a `Link: rel="next"`)
/// gives the `before` of the next page. The filters combine.
#[endpoint(
    tags("tasks"),
    parameters(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50; with `ids`, their count)."),
        ("status" = Option<String>, Query, description = "PENDING, PROCESSING, DONE or FAILED."),
        ("before" = Option<String>, Query, description = "A cursor from x-next-cursor."),
        ("title_prefix" = Option<String>, Query, description = "Titles starting with this text (1 to 255 characters)."),
        ("created_after" = Option<String>, Query, description = "Created at or after this RFC 3339 time."),
        ("created_before" = Option<String>, Query, description = "Created before this RFC 3339 time."),
        ("ids" = Option<String>, Query, description = "Only these tasks: 1 to 100 comma-separated UUIDs."),
    ),
    responses(
        (status_code = 400, description = "A bad parameter; `field` names it.", body = ErrorEnvelope),
        (status_code = 401, description = "Reads need the token (API_TOKEN_READS).", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached.", body = ErrorEnvelope),
    )
)]
#[allow(clippy::too_many_arguments)] // one per query parameter, as the OpenAPI document lists them
pub async fn list_tasks(
    limit: QueryParam<String, false>,
    status: QueryParam<String, false>,
    before: QueryParam<String, false>,
    title_prefix: QueryParam<String, false>,
    created_after: QueryParam<String, false>,
    created_before: QueryParam<String, false>,
    ids: QueryParam<String, false>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<Vec<TaskBody>>, ApiError> {
    let state = AppState::from_depot(depot);
    let filter = ListFilter {
        status: status
            .into_inner()
            .map(|raw| raw.parse::<TaskStatus>())
            .transpose()
            .map_err(|err| ApiError::bad_request(err.to_string(), Some("status")))?,
        before: before
            .into_inner()
            .map(|raw| raw.parse::<Cursor>())
            .transpose()
            .map_err(|()| {
                ApiError::bad_request("before must be a cursor from x-next-cursor", Some("before"))
            })?,
        title_prefix: title_prefix
            .into_inner()
            .map(|raw| {
                let length = raw.chars().count();
                (1..=255).contains(&length).then_some(raw).ok_or_else(|| {
                    ApiError::bad_request(
                        "title_prefix must be 1 to 255 characters",
                        Some("title_prefix"),
                    )
                })
            })
            .transpose()?,
        created_after: time(created_after.into_inner(), "created_after")?,
        created_before: time(created_before.into_inner(), "created_before")?,
        ids: ids.into_inner().map(|raw| parse_ids(&raw)).transpose()?,
    };
    let limit = match limit.into_inner() {
        None => filter
            .ids
            .as_ref()
            .map_or(DEFAULT_LIMIT, |ids| ids.len() as u32),
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

    // One row more than asked tells whether another page follows.
    let mut tasks = db::list_tasks(&state.pool, &filter, limit + 1).await?;
    if tasks.len() > limit as usize {
        tasks.truncate(limit as usize);
        let cursor = Cursor::after(tasks.last().expect("limit is at least 1")).to_string();
        let headers = res.headers_mut();
        headers.insert(
            NEXT_CURSOR_HEADER,
            HeaderValue::from_str(&cursor).expect("cursor is ASCII"),
        );
        let link = format!("</tasks?{}>; rel=\"next\"", next_query(req, limit, &cursor));
        headers.insert(LINK, HeaderValue::from_str(&link).expect("link is ASCII"));
    }
    Ok(Json(tasks.into_iter().map(Into::into).collect()))
}

fn time(raw: Option<String>, field: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(&raw)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request(format!("{field} must be an RFC 3339 time"), Some(field))
            })
    })
    .transpose()
}

fn parse_ids(raw: &str) -> Result<Vec<TaskId>, ApiError> {
    let ids = raw
        .split(',')
        .map(|id| id.trim().parse::<TaskId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ApiError::bad_request(format!("ids: {err}"), Some("ids")))?;
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(
            format!("ids names at most {MAX_IDS} tasks"),
            Some("ids"),
        ));
    }
    Ok(ids)
}

/// The query of the next page: this one's filters, its limit and the new cursor.
fn next_query(req: &Request, limit: u32, cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string());
    query.append_pair("before", cursor);
    for (name, value) in req.queries().iter() {
        if name != "limit" && name != "before" {
            query.append_pair(name, value);
        }
    }
    query.finish()
}
