//! The status page at `/`: an HTML file, its script and its style sheet,
//! compiled into the binary (no build step, nothing fetched from
//! elsewhere). The script renders the JSON API every two seconds, setting
//! every value as text.
//!
//! The Content-Security-Policy allows only this origin's script, style and
//! API: no inline script or style, no other hosts, no framing. Should
//! markup from an event ever reach the page, the browser would run none of
//! it.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName};
use axum::response::{IntoResponse, Response};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Where the page's script and style sheet are served (the HTML names
/// them too).
pub const SCRIPT: &str = "/assets/page.js";
pub const STYLE: &str = "/assets/page.css";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
            // The assets change with the binary; an old script against a
            // new API would show nonsense.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn html() -> Response {
    asset("text/html; charset=utf-8", include_str!("page.html"))
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("page.js"))
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("page.css"))
}
