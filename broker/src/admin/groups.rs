//! `GET /v1/groups`, `GET/DELETE /v1/groups/{id}`.
//!
//! The consumer-group coordinator is not part of this build yet, so no group exists:
//! the list is empty and every group id is unknown (404). The shapes are those of the
//! OpenAPI document, ready for the coordinator's state.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::Json;
use serde::Serialize;

use super::{path_param, ApiError, ApiResult};

#[derive(Serialize)]
pub(super) struct GroupList {
    groups: Vec<GroupSummary>,
}

#[derive(Serialize)]
pub(super) struct GroupSummary {
    group_id: String,
    state: String,
    members: usize,
}

pub(super) async fn list() -> Json<GroupList> {
    Json(GroupList { groups: Vec::new() })
}

pub(super) async fn describe(id: Result<Path<String>, PathRejection>) -> ApiResult<Json<()>> {
    let id = path_param(id, "id")?;
    Err(ApiError::not_found(format!("unknown group {id:?}")))
}

pub(super) async fn delete(id: Result<Path<String>, PathRejection>) -> ApiResult<Json<()>> {
    let id = path_param(id, "id")?;
    Err(ApiError::not_found(format!("unknown group {id:?}")))
}
