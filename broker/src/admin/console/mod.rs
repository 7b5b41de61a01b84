//! The web console at `GET /`: one HTML page, its script, its style sheet and its
//! icon, compiled into the binary (nothing is fetched from anywhere else). The page
//! calls only the JSON API and `/metrics` on its own origin, so it adds no
//! state-changing path of its own.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles, images and
//! connections from this origin only, no inline script or style (hence the separate
//! files), no framing, no form posts, no plugins.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};

use super::Ctx;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const ICON_SVG: &str = include_str!("icon.svg");

/// The policy of every console file (and of anything they load).
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The console's routes. The OpenAPI document lists them too (admin/tests.rs).
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Ctx>)> {
    vec![
        ("/", get(index)),
        ("/console/app.js", get(script)),
        ("/console/app.css", get(style)),
        ("/console/icon.svg", get(icon)),
    ]
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change only with the binary; a restart with a new one must show it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    file("text/css; charset=utf-8", APP_CSS)
}

async fn icon() -> Response {
    file("image/svg+xml", ICON_SVG)
}
