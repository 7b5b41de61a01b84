//! `GET /metrics`: Prometheus text exposition format 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use kafka_protocol::messages::ApiKey;

use super::Ctx;
use crate::broker::metrics::{Limit, LATENCY_BUCKET_BOUNDS_NS};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn api_label(key: Option<i16>) -> (String, String) {
    match key {
        Some(k) => {
            let name =
                ApiKey::try_from(k).map_or_else(|_| format!("Unknown{k}"), |a| format!("{a:?}"));
            (name, k.to_string())
        }
        None => ("Other".to_string(), "other".to_string()),
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&ctx))
}

pub(super) fn render(ctx: &Ctx) -> String {
    let m = &ctx.broker.metrics;
    let mut out = String::with_capacity(16 * 1024);

    // Advertised APIs always appear (at zero), others once they were seen.
    let apis: Vec<_> = m
        .apis()
        .map(|(key, stats)| (key, stats, stats.latency.snapshot()))
        .filter(|(key, _, snap)| {
            snap.count() > 0
                || key.is_some_and(|k| crate::protocol::request::supported_versions(k).is_some())
        })
        .collect();

    header(
        &mut out,
        "strikemq_requests_total",
        "counter",
        "Kafka requests handled, by API.",
    );
    for (key, _, snap) in &apis {
        let (name, k) = api_label(*key);
        let _ = writeln!(
            out,
            "strikemq_requests_total{{api=\"{name}\",api_key=\"{k}\"}} {}",
            snap.count()
        );
    }
    header(
        &mut out,
        "strikemq_request_errors_total",
        "counter",
        "Kafka requests that could not be answered (the connection was closed), by API.",
    );
    for (key, stats, _) in &apis {
        let (name, k) = api_label(*key);
        let _ = writeln!(
            out,
            "strikemq_request_errors_total{{api=\"{name}\",api_key=\"{k}\"}} {}",
            stats.errors.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "strikemq_request_duration_seconds",
        "histogram",
        "Service time of a Kafka request inside the broker (decode, handle, encode), by API.",
    );
    for (key, _, snap) in &apis {
        let (name, k) = api_label(*key);
        for (bound_ns, count) in LATENCY_BUCKET_BOUNDS_NS.iter().zip(snap.cumulative.iter()) {
            let le = *bound_ns as f64 / 1e9;
            let _ = writeln!(
                out,
                "strikemq_request_duration_seconds_bucket{{api=\"{name}\",api_key=\"{k}\",le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "strikemq_request_duration_seconds_bucket{{api=\"{name}\",api_key=\"{k}\",le=\"+Inf\"}} {}",
            snap.count()
        );
        let _ = writeln!(
            out,
            "strikemq_request_duration_seconds_sum{{api=\"{name}\",api_key=\"{k}\"}} {}",
            snap.sum_ns as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "strikemq_request_duration_seconds_count{{api=\"{name}\",api_key=\"{k}\"}} {}",
            snap.count()
        );
    }

    let counters = [
        (
            "strikemq_received_bytes_total",
            "Bytes of Kafka requests received (size prefix included).",
            m.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "strikemq_sent_bytes_total",
            "Bytes of Kafka responses produced.",
            m.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "strikemq_parked_requests_total",
            "Requests that waited for data (Fetch long-polls).",
            m.parked_total.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        &mut out,
        "strikemq_limit_hits_total",
        "counter",
        "Times a configured limit refused or closed something, by config key (docs/limits.md).",
    );
    for limit in Limit::ALL {
        let _ = writeln!(
            out,
            "strikemq_limit_hits_total{{limit=\"{}\"}} {}",
            limit.key(),
            m.limits.count(limit)
        );
    }
    let gauges = [
        (
            "strikemq_connections",
            "Open Kafka client connections.",
            ctx.net.open_connections() as f64,
        ),
        (
            "strikemq_parked_requests",
            "Requests waiting for data right now (Fetch long-polls).",
            ctx.net.parked_requests() as f64,
        ),
        (
            "strikemq_uptime_seconds",
            "Seconds since the broker started.",
            ctx.broker.started_at.elapsed().as_secs_f64(),
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }

    let mut partitions = Vec::new();
    for info in ctx.broker.storage.topics() {
        for p in 0..info.partitions {
            if let Some(partition) = ctx.broker.storage.partition(&info.name, p) {
                partitions.push((
                    escape(&info.name),
                    p,
                    partition.offsets(),
                    partition.size_bytes(),
                ));
            }
        }
    }
    header(
        &mut out,
        "strikemq_partition_end_offset",
        "gauge",
        "Next offset to be written, by partition.",
    );
    for (topic, p, o, _) in &partitions {
        let _ = writeln!(
            out,
            "strikemq_partition_end_offset{{topic=\"{topic}\",partition=\"{p}\"}} {}",
            o.log_end_offset
        );
    }
    header(
        &mut out,
        "strikemq_partition_start_offset",
        "gauge",
        "First offset still in the log, by partition.",
    );
    for (topic, p, o, _) in &partitions {
        let _ = writeln!(
            out,
            "strikemq_partition_start_offset{{topic=\"{topic}\",partition=\"{p}\"}} {}",
            o.log_start_offset
        );
    }
    header(
        &mut out,
        "strikemq_partition_size_bytes",
        "gauge",
        "Bytes on disk used by the partition's segments.",
    );
    for (topic, p, _, size) in &partitions {
        let _ = writeln!(
            out,
            "strikemq_partition_size_bytes{{topic=\"{topic}\",partition=\"{p}\"}} {size}"
        );
    }

    let coordinator = ctx.broker.groups();
    let groups = coordinator.list();
    header(
        &mut out,
        "strikemq_groups",
        "gauge",
        "Consumer groups with members or committed offsets.",
    );
    let _ = writeln!(out, "strikemq_groups {}", groups.len());
    header(
        &mut out,
        "strikemq_group_members",
        "gauge",
        "Members of a consumer group.",
    );
    for g in &groups {
        let members = coordinator.describe_any(&g.group_id).members.len();
        let _ = writeln!(
            out,
            "strikemq_group_members{{group=\"{}\"}} {members}",
            escape(&g.group_id)
        );
    }
    let offsets: Vec<_> = groups
        .iter()
        .map(|g| {
            (
                escape(&g.group_id),
                super::groups::offsets_with_lag(ctx, &g.group_id),
            )
        })
        .collect();
    header(
        &mut out,
        "strikemq_group_committed_offset",
        "gauge",
        "Offset a consumer group committed, by partition.",
    );
    for (group, list) in &offsets {
        for o in list {
            let _ = writeln!(
                out,
                "strikemq_group_committed_offset{{group=\"{group}\",topic=\"{}\",partition=\"{}\"}} {}",
                escape(&o.topic), o.partition, o.committed_offset
            );
        }
    }
    header(
        &mut out,
        "strikemq_group_lag",
        "gauge",
        "Records between a group's committed offset and the partition's end.",
    );
    for (group, list) in &offsets {
        for o in list {
            if let Some(lag) = o.lag {
                let _ = writeln!(
                    out,
                    "strikemq_group_lag{{group=\"{group}\",topic=\"{}\",partition=\"{}\"}} {lag}",
                    escape(&o.topic),
                    o.partition
                );
            }
        }
    }
    out
}
