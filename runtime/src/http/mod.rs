//! The HTTP endpoint of `sluice run --http ADDR`: the status page at `/`
//! ([`page`]), its JSON API under `/api/` ([`api`]), and for orchestrators
//! and Prometheus `/healthz`, `/readyz` and `/metrics` ([`probes`]).
//!
//! Reading is open to anyone who can reach the address. The one route that
//! changes something, redrive, needs a token ([`auth`]); without one the
//! endpoint is read-only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::status::Status;

pub mod api;
pub mod auth;
mod page;
mod probes;

pub use api::{RedriveFailure, RedriveHook, RedriveRequest};
pub use auth::Token;

/// What the endpoint may do beyond reading.
#[derive(Default)]
pub struct HttpOptions {
    /// Unlocks the routes that change things; `None`: read-only.
    pub token: Option<Token>,
    /// Runs a redrive; `None`: redrive answers 501.
    pub redrive: Option<RedriveHook>,
}

/// What every handler may extract.
#[derive(Clone)]
struct App {
    status: Arc<Status>,
    token: Option<Token>,
    redrive: Option<RedriveHook>,
    redriving: Arc<api::Redriving>,
}

impl FromRef<App> for Arc<Status> {
    fn from_ref(app: &App) -> Self {
        app.status.clone()
    }
}

impl FromRef<App> for Option<Token> {
    fn from_ref(app: &App) -> Self {
        app.token.clone()
    }
}

/// A JSON error answer.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    #[derive(serde::Serialize)]
    struct Error {
        error: String,
    }
    let body = Error {
        error: message.into(),
    };
    (code, axum::Json(body)).into_response()
}

/// Every route. `docs/operations.md` lists them too.
pub fn router(status: Arc<Status>, options: HttpOptions) -> Router {
    let app = App {
        status,
        token: options.token,
        redrive: options.redrive,
        redriving: Arc::default(),
    };
    Router::new()
        .route("/", get(page::html))
        .route(page::SCRIPT, get(page::script))
        .route(page::STYLE, get(page::style))
        .route("/api/status", get(api::status))
        .route("/api/pipelines/{name}/dead-letters", get(api::dead_letters))
        .route("/api/pipelines/{name}/redrive", post(api::redrive))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics_text))
        .with_state(app)
}

/// The endpoint, serving.
pub struct Serving {
    /// The address it listens on (the port filled in when asked for 0).
    pub local: SocketAddr,
    /// Ends once the stop token is cancelled and requests are done.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and serves until `stop` is cancelled. Binding errors are
/// returned at once, so a taken port fails `sluice run` at start.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Status>,
    options: HttpOptions,
    stop: CancellationToken,
) -> anyhow::Result<Serving> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for --http: {e}"))?;
    let local = listener.local_addr()?;
    if !addr.ip().is_loopback() && options.token.is_none() {
        tracing::warn!(
            address = %local,
            "the HTTP endpoint listens beyond this host without a token: anyone who reaches it \
             reads the status page, dead-letter previews included; redrive stays off until \
             --http-token or SLUICE_HTTP_TOKEN is set"
        );
    }
    tracing::info!(
        address = %local,
        read_only = options.token.is_none(),
        "serving the status page at /, the API at /api/, and /healthz, /readyz, /metrics"
    );
    let app = router(status, options);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the HTTP endpoint failed");
        }
    });
    Ok(Serving { local, task })
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::config::PipelineConfig;
    use crate::status::{Coordinates, PipelineStatus};

    /// A server on a loopback port, over real HTTP.
    struct Server {
        base: String,
        stop: CancellationToken,
        /// Runs the server; dropped with it.
        _runtime: tokio::runtime::Runtime,
        agent: ureq::Agent,
    }

    impl Server {
        fn start(options: HttpOptions) -> Server {
            let status = Arc::new(Status::default());
            let config = PipelineConfig::new("orders", vec!["in".into()], Vec::new(), "out", "dlq");
            let pipeline = Arc::new(PipelineStatus::new(&config, Vec::new()));
            let failure = crate::failure::Failure::new(
                crate::failure::FailureKind::Invalid,
                "value is not JSON",
            );
            let culprit = crate::envelope::Culprit {
                pipeline: "orders",
                plugin: "order-enrich",
                digest: "sha256:00",
            };
            let event = crate::plugin::Event {
                topic: "in".into(),
                partition: 0,
                offset: 3,
                timestamp_ms: None,
                key: None,
                value: Some(b"<script>x</script>".to_vec()),
                headers: Vec::new(),
            };
            let dlq = Coordinates {
                topic: "dlq".into(),
                partition: 0,
                offset: 0,
            };
            pipeline.dead_lettered(
                &crate::envelope::DeadLetter::new(&event, &failure, &culprit, 1),
                dlq,
            );
            status.started(pipeline);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            let stop = CancellationToken::new();
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            let serving = runtime
                .block_on(serve(addr, status, options, stop.clone()))
                .expect("serving");
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent();
            Server {
                base: format!("http://{}", serving.local),
                stop,
                _runtime: runtime,
                agent,
            }
        }

        /// Status, `WWW-Authenticate`, body.
        fn post(
            &self,
            path: &str,
            authorization: Option<&str>,
            body: &str,
        ) -> (u16, Option<String>, String) {
            let mut request = self
                .agent
                .post(format!("{}{path}", self.base))
                .content_type("application/json");
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            let mut response = request.send(body).expect("an answer");
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = response.body_mut().read_to_string().expect("a body");
            (response.status().as_u16(), challenge, text)
        }

        /// Status, `Content-Type`, `Content-Security-Policy`, body.
        fn get(&self, path: &str) -> (u16, String, Option<String>, String) {
            let mut response = self
                .agent
                .get(format!("{}{path}", self.base))
                .call()
                .expect("an answer");
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (kind, csp) = (
                header("content-type").unwrap_or_default(),
                header("content-security-policy"),
            );
            let text = response.body_mut().read_to_string().expect("a body");
            (response.status().as_u16(), kind, csp, text)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    const REDRIVE: &str = "/api/pipelines/orders/redrive";

    #[test]
    fn without_a_token_every_change_is_refused_and_reading_works() {
        let server = Server::start(HttpOptions::default());
        let (code, _, body) = server.post(REDRIVE, Some("Bearer anything"), r#"{"dry_run":true}"#);
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("a token is required"), "{body}");

        let (code, kind, csp, page) = server.get("/");
        assert_eq!((code, kind.as_str()), (200, "text/html; charset=utf-8"));
        let csp = csp.expect("a Content-Security-Policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            page.contains(page::SCRIPT) && page.contains(page::STYLE),
            "{page}"
        );
        for asset in [page::SCRIPT, page::STYLE] {
            let (code, _, _, body) = server.get(asset);
            assert!(code == 200 && !body.is_empty(), "{asset}: {code}");
        }
        let (code, _, _, body) = server.get("/api/status");
        assert_eq!(code, 200);
        let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(status["pipelines"][0]["name"], "orders");
        let (code, _, _, body) = server.get("/api/pipelines/orders/dead-letters");
        assert_eq!(code, 200);
        let view: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let latest = &view["dead_letters"][0];
        assert_eq!(latest["kind"], "invalid");
        assert_eq!(latest["message"], "value is not JSON");
        assert_eq!(
            latest["value"]["text"], "<script>x</script>",
            "as text, unescaped"
        );
        assert_eq!(server.get("/api/pipelines/nope/dead-letters").0, 404);
        assert_eq!(server.get("/healthz").0, 200);
    }

    #[test]
    fn with_a_token_a_change_needs_the_right_bearer() {
        let seen: Arc<Mutex<Vec<RedriveRequest>>> = Arc::default();
        let log = seen.clone();
        let hook: RedriveHook = Arc::new(move |request| {
            if request.pipeline != "orders" {
                return Err(RedriveFailure::UnknownPipeline(format!(
                    "no pipeline `{}`",
                    request.pipeline
                )));
            }
            let dry_run = request.dry_run;
            log.lock().push(request);
            Ok(serde_json::json!({"redriven": 2, "dry_run": dry_run}))
        });
        let server = Server::start(HttpOptions {
            token: Some(Token::new("s3cret").expect("a token")),
            redrive: Some(hook),
        });
        let body = r#"{"kind":"invalid","plugin":"order-enrich","since":5,"dry_run":true}"#;
        let wrongs = [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
            Some("s3cret"),
        ];
        for wrong in wrongs {
            let (code, challenge, text) = server.post(REDRIVE, wrong, body);
            assert_eq!(code, 401, "{wrong:?}: {text}");
            assert_eq!(challenge.as_deref(), Some("Bearer"));
        }
        assert!(seen.lock().is_empty(), "refused before the hook");

        let (code, _, text) = server.post(REDRIVE, Some("Bearer s3cret"), body);
        assert_eq!(code, 200, "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
            serde_json::json!({"redriven": 2, "dry_run": true})
        );
        assert_eq!(
            seen.lock().as_slice(),
            [RedriveRequest {
                pipeline: "orders".into(),
                kind: Some("invalid".into()),
                plugin: Some("order-enrich".into()),
                since: Some(5),
                dry_run: true,
            }]
        );

        let right = Some("Bearer s3cret");
        let (code, _, text) = server.post("/api/pipelines/nope/redrive", right, "{}");
        assert_eq!(code, 404, "{text}");
        let (code, _, text) = server.post(REDRIVE, right, r#"{"kind":"bogus"}"#);
        assert_eq!(code, 400, "{text}");
        let (code, _, text) = server.post(REDRIVE, right, r#"{"dry_run":"yes"}"#);
        assert_eq!(code, 422, "{text}");
    }

    #[test]
    fn with_a_token_and_no_redrive_supplied_it_is_not_available() {
        let server = Server::start(HttpOptions {
            token: Some(Token::new("s3cret").expect("a token")),
            redrive: None,
        });
        let (code, _, text) = server.post(REDRIVE, Some("Bearer s3cret"), "{}");
        assert_eq!(code, 501, "{text}");
        assert!(text.contains("redrive is not available"), "{text}");
    }
}
