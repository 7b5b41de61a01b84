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
use crate::storage::{FlushPolicy, Storage, StorageConfig, TopicConfig};

fn context(dir: &std::path::Path) -> Arc<AdminContext> {
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    let storage = Storage::open(StorageConfig {
        data_dir: cfg.data_dir.clone(),
        segment_bytes: 1 << 20,
        index_interval_bytes: cfg.index_interval_bytes,
        flush: FlushPolicy::Never,
        segment_prefault_bytes: 0,
        segment_hugepages: false,
        segment_write: crate::storage::SegmentWrite::Mmap,
        max_batch_bytes: cfg.max_message_bytes,
        log_map: crate::storage::LogMapLayout::Global,
    })
    .expect("open storage");
    let kafka_addr = cfg.listen;
    let broker = Broker::new(
        EffectiveConfig::resolve(cfg),
        Arc::new(storage),
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
