//! The operations endpoint of `sluice run --http ADDR`: Prometheus metrics
//! at `/metrics`, liveness at `/healthz`, readiness at `/readyz`, and what
//! runs at `/api/status` (pipelines, plugin versions, assigned partitions,
//! reload history; see [`crate::status`]). Read-only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::status::{Probe, Status, StatusView, now_ms};

/// Binds `addr` and serves until `stop` is cancelled. Binding errors are
/// returned at once, so a taken port fails `sluice run` at start.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Status>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for --http: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "serving /metrics, /healthz, /readyz and /api/status");
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/status", get(status_json))
        .with_state(status);
    Ok(tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the HTTP endpoint failed");
        }
    }))
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::global().encode(),
    )
}

async fn healthz(State(status): State<Arc<Status>>) -> (StatusCode, String) {
    probe_answer(status.liveness(now_ms()), "ok")
}

async fn readyz(State(status): State<Arc<Status>>) -> (StatusCode, String) {
    probe_answer(status.readiness(now_ms()), "ready")
}

/// 200 with `ok`, or 503 with the reasons, one per line.
fn probe_answer(probe: Probe, ok: &str) -> (StatusCode, String) {
    match probe {
        Ok(()) => (StatusCode::OK, format!("{ok}\n")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn status_json(State(status): State<Arc<Status>>) -> Json<StatusView> {
    Json(status.view())
}
