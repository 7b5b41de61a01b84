//! The router and the OpenAPI document describe the same endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::{openapi, router, routes, AdminContext};
use crate::broker::Broker;
use crate::config::{Config, EffectiveConfig, Profile};
use crate::net::NetStats;
use crate::storage::{Storage, StorageConfig, TopicConfig};

fn context(dir: &std::path::Path) -> Arc<AdminContext> {
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    cfg.segment_bytes = 1 << 20;
    let storage = Storage::open(StorageConfig::from_config(&cfg)).expect("open storage");
    let kafka_addr = cfg.listen;
    let broker = Broker::new(
        EffectiveConfig::new(cfg, Vec::new()),
        Arc::new(storage),
        Arc::new(crate::group::Coordinator::in_memory(crate::group::no_wake())),
        crate::group::no_wake(),
        ("127.0.0.1".into(), 9092),
    );
    Arc::new(AdminContext {
        broker: Arc::new(broker),
        net: NetStats::default(),
        kafka_addr,
        advertised: "127.0.0.1:9092".into(),
        admin_addr: kafka_addr,
        flusher: None,
    })
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

#[tokio::test(flavor = "current_thread")]
async fn openapi_document_and_router_have_the_same_paths_and_methods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path());
    let spec = openapi::spec();
    let documented = spec["paths"].as_object().expect("paths");

    let routed: BTreeSet<&str> = routes().into_iter().map(|(p, _)| p).collect();
    let in_doc: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    assert_eq!(routed, in_doc, "router paths vs document paths");

    let app = router(ctx.clone());
    for (path, ops) in documented {
        for method in METHODS {
            // A fresh topic per request: DELETE may have removed the previous one.
            let _ = ctx.broker.storage.delete_topic("t");
            ctx.broker
                .storage
                .create_topic("t", 1, TopicConfig::default())
                .expect("create topic");
            let uri = path.replace("{name}", "t").replace("{id}", "g");
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let status = app
                .clone()
                .oneshot(request)
                .await
                .expect("response")
                .status();
            let in_document = ops.get(method.as_str().to_ascii_lowercase()).is_some();
            assert_eq!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                in_document,
                "{method} {path}: router answered {status}, document has it: {in_document}"
            );
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_documented_response_schema_reference_resolves() {
    let spec = openapi::spec();
    let text = spec.to_string();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\"$ref\":\"#/components/") {
        rest = &rest[at + "\"$ref\":\"#/components/".len()..];
        let end = rest.find('"').expect("end of ref");
        let (kind, name) = rest[..end].split_once('/').expect("kind/name");
        assert!(
            spec["components"][kind].get(name).is_some(),
            "dangling reference {kind}/{name}"
        );
    }
}

#[test]
fn host_guard_accepts_ip_literals_localhost_and_configured_names_only() {
    use super::host_allowed;
    let none: &[String] = &[];
    for ok in [
        "127.0.0.1",
        "127.0.0.1:8080",
        "10.1.2.3:80",
        "[::1]",
        "[::1]:8080",
        "localhost",
        "LOCALHOST:8080",
        "localhost.:8080",
        "app.localhost:3000",
    ] {
        assert!(host_allowed(ok, None, none), "{ok} refused");
    }
    for bad in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "[::1",
        "[evil]:80",
        "",
    ] {
        assert!(!host_allowed(bad, None, none), "{bad} allowed");
    }
    assert!(host_allowed("broker.dev:8080", Some("broker.dev"), none));
    let configured = vec!["Dev.Box".to_string()];
    assert!(host_allowed("dev.box:8080", None, &configured));
    assert!(!host_allowed("other.box", None, &configured));
    assert!(host_allowed("anything.example", None, &["*".to_string()]));
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn console_files_are_embedded_and_served_under_a_strict_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = router(context(dir.path()));
    for (path, media_type, needle) in [
        ("/", "text/html", "/console/app.js"),
        ("/console/app.js", "text/javascript", "/v1/config"),
        ("/console/app.css", "text/css", "body"),
        ("/console/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let (status, headers, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let content_type = headers["content-type"].to_str().expect("ascii");
        assert!(
            content_type.starts_with(media_type),
            "{path}: {content_type}"
        );
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(body.contains(needle), "{path} does not contain {needle:?}");
    }
    // No inline script or style in the page, and nothing loaded from elsewhere.
    let (_, _, html) = send(
        &app,
        Request::get("/").body(Body::empty()).expect("request"),
    )
    .await;
    assert!(!html.contains("<style"), "inline style element");
    assert!(!html.contains(" style="), "inline style attribute");
    assert!(!html.contains("<script>"), "inline script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference"
    );
}

#[test]
fn same_origin_is_the_host_the_request_was_sent_to() {
    use super::same_origin;
    let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", "localhost:8080".parse().expect("value"));
    assert!(same_origin("http://localhost:8080", &headers, addr));
    assert!(same_origin("http://127.0.0.1:8080", &headers, addr));
    for other in [
        "http://localhost:8081",
        "http://127.0.0.1:3000",
        "https://localhost:8080",
        "http://localhost:8080.evil.example",
        "null",
        "",
    ] {
        assert!(!same_origin(other, &headers, addr), "{other}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn bodies_without_browser_headers_are_json_whatever_their_declared_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path());
    let app = router(ctx.clone());
    let put = |headers: &[(&str, &str)], body: &str| {
        let mut request = Request::put("/v1/config");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from(body.to_string())).expect("request")
    };
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, _, body) = send(&app, put(&[form], r#"{"loop_timeout_ms":7}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ctx.broker.live.loop_timeout_ms(), 7);
    // A browser must say application/json, even from the console's own origin...
    let own = [
        ("host", "127.0.0.1:9092"),
        ("origin", "http://127.0.0.1:9092"),
        form,
    ];
    let (status, _, body) = send(&app, put(&own, r#"{"loop_timeout_ms":8}"#)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // ...and from any other origin it is refused before the body is looked at.
    let evil = [
        ("host", "127.0.0.1:9092"),
        ("origin", "http://127.0.0.1:3000"),
        ("content-type", "application/json"),
    ];
    let (status, _, body) = send(&app, put(&evil, r#"{"loop_timeout_ms":9}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let cross = [
        ("sec-fetch-site", "cross-site"),
        ("content-type", "application/json"),
    ];
    let (status, _, body) = send(&app, put(&cross, r#"{"loop_timeout_ms":9}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        ctx.broker.live.loop_timeout_ms(),
        7,
        "a refused request changed state"
    );
}
