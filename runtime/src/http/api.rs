//! The JSON API behind the status page: what runs (`/api/status`), a
//! pipeline's latest dead letters, and redrive, the one route that changes
//! something (behind [`Authorized`]). Errors are `{"error": "..."}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::Authorized;
use super::{App, error};
use crate::failure::FailureKind;
use crate::status::{RecentDeadLetter, Status, StatusView};

/// What a redrive is asked to do: which of a pipeline's dead letters to run
/// through its current chain again (see [`crate::dlq::redrive`]). The body of `POST /api/pipelines/{name}/redrive`
/// (`pipeline` comes from the path).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    #[serde(skip)]
    pub pipeline: String,
    /// Only dead letters of this failure kind (`invalid`, `trap`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only those this plugin failed.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Only those that failed at or after this time, ms since the epoch.
    #[serde(default)]
    pub since: Option<i64>,
    /// Report what would be redriven, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What runs a redrive: `sluice run` supplies it. It blocks (it reads and
/// writes topics), so it runs on a blocking thread; its JSON is the answer.
pub type RedriveHook =
    Arc<dyn Fn(RedriveRequest) -> Result<serde_json::Value, RedriveFailure> + Send + Sync>;

/// Why a redrive did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveFailure {
    /// The config file has no such pipeline (a 404). The file decides, not
    /// what runs: a pipeline restarting after an edit is briefly in neither
    /// list of the status.
    UnknownPipeline(String),
    /// Anything else, with the reason (a 500).
    Failed(String),
}

pub(super) async fn status(State(status): State<Arc<Status>>) -> Json<StatusView> {
    Json(status.view())
}

/// `GET /api/pipelines/{name}/dead-letters`.
#[derive(Debug, Serialize)]
pub struct DeadLettersView {
    pub pipeline: String,
    /// Newest first, at most [`crate::status::DEAD_LETTER_HISTORY`].
    pub dead_letters: Vec<RecentDeadLetter>,
}

pub(super) async fn dead_letters(
    State(status): State<Arc<Status>>,
    Path(name): Path<String>,
) -> Response {
    match status.pipeline(&name) {
        Some(pipeline) => Json(DeadLettersView {
            pipeline: name,
            dead_letters: pipeline.dead_letters(),
        })
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no pipeline `{name}` is running"),
        ),
    }
}

/// Set while a redrive runs: one at a time, since two would write the
/// same dead letters back twice.
#[derive(Debug, Default)]
pub(super) struct Redriving(AtomicBool);

/// Clears [`Redriving`] when the redrive ends, however it ends.
struct RedriveRunning(Arc<Redriving>);

impl Drop for RedriveRunning {
    fn drop(&mut self) {
        self.0.0.store(false, Ordering::Release);
    }
}

/// `POST /api/pipelines/{name}/redrive`. The authorization comes first,
/// so nothing about pipelines or bodies is told to a caller without it.
pub(super) async fn redrive(
    _: Authorized,
    State(app): State<App>,
    Path(name): Path<String>,
    body: Result<Json<RedriveRequest>, JsonRejection>,
) -> Response {
    let Json(mut request) = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if let Some(kind) = &request.kind
        && !FailureKind::ALL.iter().any(|k| k.as_str() == kind)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown failure kind `{kind}`"),
        );
    }
    let Some(hook) = app.redrive.clone() else {
        return error(StatusCode::NOT_IMPLEMENTED, "redrive is not available");
    };
    if app.redriving.0.swap(true, Ordering::AcqRel) {
        return error(StatusCode::CONFLICT, "a redrive is already running");
    }
    let running = RedriveRunning(app.redriving.clone());
    request.pipeline = name;
    let outcome = tokio::task::spawn_blocking(move || {
        let _running = running;
        hook(request)
    })
    .await;
    match outcome {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(RedriveFailure::UnknownPipeline(why))) => error(StatusCode::NOT_FOUND, why),
        Ok(Err(RedriveFailure::Failed(why))) => error(StatusCode::INTERNAL_SERVER_ERROR, why),
        Err(panicked) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the redrive failed: {panicked}"),
        ),
    }
}
