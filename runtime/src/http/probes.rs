//! What orchestrators and Prometheus ask: liveness (`/healthz`), readiness
//! (`/readyz`), both answered by [`crate::status`], and the metrics
//! (`/metrics`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::clock::now_ms;
use crate::metrics;
use crate::status::{Probe, Status};

pub(super) async fn metrics_text() -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::global().encode(),
    )
}

pub(super) async fn healthz(State(status): State<Arc<Status>>) -> (StatusCode, String) {
    probe_answer(status.liveness(now_ms()), "ok")
}

pub(super) async fn readyz(State(status): State<Arc<Status>>) -> (StatusCode, String) {
    probe_answer(status.readiness(now_ms()), "ready")
}

/// 200 with `ok`, or 503 with the reasons, one per line.
fn probe_answer(probe: Probe, ok: &str) -> (StatusCode, String) {
    match probe {
        Ok(()) => (StatusCode::OK, format!("{ok}\n")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}
