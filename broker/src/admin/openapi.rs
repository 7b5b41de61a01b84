//! `GET /v1/openapi.json`: the OpenAPI 3 description of every endpoint. A unit test
//! (admin/tests.rs) keeps it equal to the router: same paths, same methods, and
//! schemathesis checks the responses against it in CI.

use axum::Json;
use serde_json::{json, Value};

use super::messages::{PEEK_LIMIT_DEFAULT, PEEK_LIMIT_MAX};
use crate::storage::{accepted_topic_configs, ConfigValues, MAX_PARTITIONS_PER_TOPIC};

/// The JSON schema of one accepted topic config's value: exactly the values the
/// broker accepts (`storage/topic_config.rs`), so generated valid values are accepted
/// and others refused with 400.
fn topic_config_value_schema(name: &str, values: ConfigValues, effect: &str) -> Value {
    let pattern = |p: &str| json!({"type": "string", "pattern": p, "description": effect});
    match (name, values) {
        (_, ConfigValues::OneOf(values)) => {
            json!({"type": "string", "enum": values, "description": effect})
        }
        (_, ConfigValues::ListOf(_)) => json!({
            "type": "string",
            "enum": ["delete", "compact", "compact,delete", "delete,compact"],
            "description": effect
        }),
        (_, ConfigValues::Ratio) => pattern(r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"),
        // [-1, i64::MAX], [0, ..], [1, ..]: up to 18 digits always fit an i64.
        (
            _,
            ConfigValues::Int {
                min: -1,
                max: i64::MAX,
            },
        ) => pattern("^(-1|[0-9]{1,18})$"),
        (
            _,
            ConfigValues::Int {
                min: 0,
                max: i64::MAX,
            },
        ) => pattern("^[0-9]{1,18}$"),
        (
            _,
            ConfigValues::Int {
                min: 1,
                max: i64::MAX,
            },
        ) => pattern("^[1-9][0-9]{0,17}$"),
        // [0, i32::MAX]: up to 9 digits.
        (_, ConfigValues::Int { min: 0, .. }) => pattern("^[0-9]{1,9}$"),
        // segment.bytes: [1024, i32::MAX], up to 9 digits.
        (_, ConfigValues::Int { min: 1024, .. }) => {
            pattern("^([1-9][0-9]{4,8}|[2-9][0-9]{3}|1[1-9][0-9]{2}|10[3-9][0-9]|102[4-9])$")
        }
        (other, values) => {
            // A new range needs its pattern here; until then the name is documented
            // without one (the server still checks).
            tracing::warn!(
                config = other,
                ?values,
                "no OpenAPI pattern for topic config"
            );
            json!({"type": "string", "description": effect})
        }
    }
}

/// The `configs` object of a new topic: the topic configs the broker accepts, each
/// with the values it accepts (any other name or value is refused with 400).
fn topic_configs_schema() -> Value {
    let properties: serde_json::Map<String, Value> = accepted_topic_configs()
        .map(|s| {
            (
                s.name.to_string(),
                topic_config_value_schema(s.name, s.values, s.effect),
            )
        })
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "description": "Kafka topic configs, honoured as in Kafka or refused (docs/topic-configs.md)."
    })
}

pub(super) async fn document() -> Json<Value> {
    Json(spec())
}

/// A Kafka topic name that can exist: `[a-zA-Z0-9._-]{1,249}` except `.` and `..`.
const TOPIC_NAME_PATTERN: &str = r"^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\.\.[a-zA-Z0-9._-]{1,247})$";
/// Group states as Kafka names them.
const GROUP_STATES: [&str; 5] = [
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
];
/// Padded standard base64.
const BASE64_PATTERN: &str = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn error_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// What every request body is: JSON. The declared type is not checked for requests
/// without browser headers (`curl -d` labels JSON as a form); a browser must say
/// `application/json` (415 otherwise), and from another origin it is refused (403).
const BODY_RULE: &str = "A JSON document. Requests without browser headers (no Origin, no Sec-Fetch-*) are parsed as JSON whatever their Content-Type, so `curl -d '{...}'` works; a browser request must declare application/json (415 otherwise).";

fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "description": BODY_RULE,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// A static console file: 200 with its media type.
fn console_file(summary: &str, operation_id: &str, media_type: &str) -> Value {
    json!({"get": {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"200": {
            "description": "The file, with a strict Content-Security-Policy.",
            "content": {media_type: {"schema": {"type": "string"}}}
        }}
    }})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string", "minLength": 1}
    })
}

/// The document. Kept in code (not a file) so the constants it quotes are the real ones.
pub fn spec() -> Value {
    let topic_name = path_param(
        "name",
        "Topic name ([a-zA-Z0-9._-], at most 249 characters).",
    );
    let group_id = path_param("id", "Consumer group id.");
    let offsets_item = json!({
        "type": "object",
        "required": ["partition", "start_offset", "end_offset"],
        "properties": {
            "partition": {"type": "integer"},
            "start_offset": {"type": "integer"},
            "end_offset": {"type": "integer"}
        }
    });
    let paths = json!({
        "/": console_file("The web console (HTML): overview, topics, messages, groups, latency, live toggles. It calls only this API.", "console", "text/html"),
        "/console/app.js": console_file("The console's script.", "consoleScript", "text/javascript"),
        "/console/app.css": console_file("The console's style sheet.", "consoleStyle", "text/css"),
        "/console/icon.svg": console_file("The console's icon.", "consoleIcon", "image/svg+xml"),
        "/healthz": {"get": {
            "summary": "Liveness: answers once both listeners accept.",
            "operationId": "healthz",
            "responses": {"200": ok("Healthy.", "Health")}
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4).",
            "operationId": "metrics",
            "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }},
        "/v1/openapi.json": {"get": {
            "summary": "This document.",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }},
        "/v1/broker": {"get": {
            "summary": "Version, uptime, listeners, platform and the effective configuration (with fallbacks and live values).",
            "operationId": "getBroker",
            "responses": {"200": ok("Broker information.", "BrokerInfo")}
        }},
        "/v1/config": {
            "get": {
                "summary": "The toggles that can change while the broker runs.",
                "operationId": "getConfig",
                "responses": {"200": ok("Live configuration.", "LiveConfig")}
            },
            "put": {
                "summary": "Change live toggles. Structural keys answer 409 unless sent with their current value.",
                "operationId": "putConfig",
                "requestBody": json_body("ConfigChange"),
                "responses": {
                    "200": ok("The live configuration after the change.", "LiveConfig"),
                    "400": error_ref("BadRequest"), "403": error_ref("CrossSite"), "409": error_ref("Conflict"),
                    "413": error_ref("TooLarge"), "415": error_ref("UnsupportedMediaType")
                }
            }
        },
        "/v1/topics": {
            "get": {
                "summary": "Every topic with its partitions' start and end offsets.",
                "operationId": "listTopics",
                "responses": {"200": ok("Topics.", "TopicList")}
            },
            "post": {
                "summary": "Create a topic.",
                "operationId": "createTopic",
                "requestBody": json_body("NewTopic"),
                "responses": {
                    "201": ok("Created.", "TopicDetail"),
                    "400": error_ref("BadRequest"), "403": error_ref("CrossSite"), "409": error_ref("Conflict"),
                    "413": error_ref("TooLarge"), "415": error_ref("UnsupportedMediaType")
                }
            }
        },
        "/v1/topics/{name}": {
            "parameters": [topic_name],
            "get": {
                "summary": "A topic's partitions: start/end offsets and size on disk.",
                "operationId": "getTopic",
                "responses": {"200": ok("Topic.", "TopicDetail"), "400": error_ref("BadRequest"), "404": error_ref("NotFound")}
            },
            "delete": {
                "summary": "Delete a topic and its data.",
                "operationId": "deleteTopic",
                "responses": {"200": ok("Deleted.", "Deleted"), "400": error_ref("BadRequest"), "403": error_ref("CrossSite"), "404": error_ref("NotFound")}
            }
        },
        "/v1/topics/{name}/messages": {
            "parameters": [topic_name],
            "get": {
                "summary": "Peek at messages of one partition (compressed batches are decompressed).",
                "operationId": "peekMessages",
                "parameters": [
                    {"name": "partition", "in": "query", "required": false, "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": i32::MAX, "default": 0}},
                    {"name": "offset", "in": "query", "required": false, "description": "First offset; default and floor: the log start.", "schema": {"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX}},
                    {"name": "limit", "in": "query", "required": false, "description": format!("Most messages returned; values above {PEEK_LIMIT_MAX} are capped to it."), "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX, "default": PEEK_LIMIT_DEFAULT}}
                ],
                "responses": {"200": ok("Messages.", "Peek"), "400": error_ref("BadRequest"), "404": error_ref("NotFound")}
            },
            "post": {
                "summary": "Produce messages (proper v2 record batches, one per partition). An unknown topic is created as a Kafka Produce would create it (default_partitions, max_topics) when auto_create_topics is on; 404 naming the setting when it is off.",
                "operationId": "produceMessages",
                "requestBody": json_body("ProduceRequest"),
                "responses": {
                    "200": ok("Appended.", "Produced"),
                    "400": error_ref("BadRequest"), "403": error_ref("CrossSite"), "404": error_ref("NotFound"),
                    "409": {"description": "The topic's configs refuse the messages: a batch above its max.message.bytes, or a message without a key on a cleanup.policy=compact topic; or a limit stopped the auto-create.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "413": error_ref("TooLarge"), "415": error_ref("UnsupportedMediaType")
                }
            }
        },
        "/v1/groups": {"get": {
            "summary": "Consumer groups.",
            "operationId": "listGroups",
            "responses": {"200": ok("Groups.", "GroupList")}
        }},
        "/v1/groups/{id}": {
            "parameters": [group_id],
            "get": {
                "summary": "A group's state, members (with decoded assignments) and committed offsets with lag.",
                "operationId": "getGroup",
                "responses": {"200": ok("Group.", "GroupDetail"), "404": error_ref("NotFound")}
            },
            "delete": {
                "summary": "Delete an empty group and its committed offsets.",
                "operationId": "deleteGroup",
                "responses": {"200": ok("Deleted.", "GroupDeleted"), "403": error_ref("CrossSite"), "404": error_ref("NotFound"), "409": error_ref("Conflict")}
            }
        }
    });
    let responses = json!({
        "BadRequest": {"description": "A bad field or parameter (named in the message).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "NotFound": {"description": "Unknown topic, partition or group.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "Conflict": {"description": "The change conflicts with the broker's state.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "TooLarge": {"description": "The body exceeds admin_max_body_bytes (or a batch exceeds max_message_bytes).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "UnsupportedMediaType": {"description": "A browser request (it carries Origin or Sec-Fetch-*) whose body is not declared application/json.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "CrossSite": {"description": "A state-changing request a browser sent for another site: its Origin is neither the admin listener's own nor admin_cors_origin, or Sec-Fetch-Site is cross-site. Refused before anything changes.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    });
    let mut schemas = serde_json::Map::new();
    schemas.insert("Error".into(), json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}));
    schemas.insert("Health".into(), json!({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}));
    schemas.insert("LiveConfig".into(), json!({
        "type": "object",
        "required": ["loop_timeout_ms", "idle_spin_us", "busy_poll_us", "prefer_busy_poll", "flush"],
        "properties": {
            "loop_timeout_ms": {"type": "integer", "minimum": crate::config::MIN_LOOP_TIMEOUT_MS, "maximum": crate::config::MAX_LOOP_TIMEOUT_MS},
            "idle_spin_us": {"type": "integer", "minimum": 0, "maximum": crate::config::MAX_IDLE_SPIN_US},
            "busy_poll_us": {"type": "integer", "minimum": 0, "maximum": crate::config::MAX_BUSY_POLL_US},
            "prefer_busy_poll": {"type": "boolean"},
            "flush": {"type": "string", "pattern": "^(never|always|[1-9][0-9]{0,8}ms)$"}
        }
    }));
    schemas.insert("ConfigChange".into(), json!({
        "type": "object",
        "description": "Any subset of the live keys. Other configuration keys are structural: 409 unless equal to the running value; unknown keys: 400.",
        "properties": {
            "loop_timeout_ms": {"type": "integer", "minimum": crate::config::MIN_LOOP_TIMEOUT_MS, "maximum": crate::config::MAX_LOOP_TIMEOUT_MS},
            "idle_spin_us": {"type": "integer", "minimum": 0, "maximum": crate::config::MAX_IDLE_SPIN_US},
            "busy_poll_us": {"type": "integer", "minimum": 0, "maximum": crate::config::MAX_BUSY_POLL_US},
            "prefer_busy_poll": {"type": "boolean"},
            "flush": {"type": "string", "pattern": "^(never|always|[1-9][0-9]{0,8}ms)$"}
        },
        "additionalProperties": false
    }));
    schemas.insert("BrokerInfo".into(), json!({
        "type": "object",
        "required": ["version", "uptime_ms", "node_id", "cluster_id", "listeners", "data_dir", "io_threads", "platform", "topics", "effective_config", "fallbacks", "live", "changed_at_runtime"],
        "properties": {
            "version": {"type": "string"},
            "uptime_ms": {"type": "integer", "minimum": 0},
            "node_id": {"type": "integer"},
            "cluster_id": {"type": "string"},
            "listeners": {"type": "object", "required": ["kafka", "advertised", "admin"], "properties": {
                "kafka": {"type": "string"}, "advertised": {"type": "string"}, "admin": {"type": "string"}}},
            "data_dir": {"type": "string"},
            "io_threads": {"type": "integer", "minimum": 1},
            "platform": {"type": "object", "required": ["os", "arch", "kernel", "cpus"], "properties": {
                "os": {"type": "string"}, "arch": {"type": "string"},
                "kernel": {"type": "string", "nullable": true}, "cpus": {"type": "integer", "minimum": 1}}},
            "topics": {"type": "integer", "minimum": 0},
            "effective_config": {"type": "object", "description": "Every configuration key with the value in force (live keys as they are now)."},
            "fallbacks": {"type": "array", "items": {"type": "object", "required": ["key", "requested", "effective", "reason"], "properties": {
                "key": {"type": "string"}, "requested": {"type": "string"}, "effective": {"type": "string"}, "reason": {"type": "string"}}}},
            "live": {"$ref": "#/components/schemas/LiveConfig"},
            "changed_at_runtime": {"type": "array", "items": {"type": "object", "required": ["key", "startup", "current"], "properties": {
                "key": {"type": "string"}, "startup": {}, "current": {}}}}
        }
    }));
    schemas.insert("TopicList".into(), json!({"type": "object", "required": ["topics"], "properties": {"topics": {"type": "array", "items": {
        "type": "object",
        "required": ["name", "id", "partitions", "messages", "offsets"],
        "properties": {
            "name": {"type": "string"}, "id": {"type": "string", "format": "uuid"},
            "partitions": {"type": "integer", "minimum": 1},
            "messages": {"type": "integer", "minimum": 0},
            "offsets": {"type": "array", "items": offsets_item}
        }
        }}}}));
    schemas.insert("NewTopic".into(), json!({
        "type": "object", "required": ["name"], "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": TOPIC_NAME_PATTERN, "description": "[a-zA-Z0-9._-], 1 to 249 characters, not '.' or '..'."},
            "partitions": {"type": "integer", "nullable": true, "minimum": 1, "maximum": MAX_PARTITIONS_PER_TOPIC, "description": "Default (absent or null): the broker's default_partitions."},
            "configs": topic_configs_schema()
        }
    }));
    schemas.insert("TopicDetail".into(), json!({
        "type": "object", "required": ["name", "id", "partition_count", "configs", "partitions"],
        "properties": {
            "name": {"type": "string"}, "id": {"type": "string", "format": "uuid"},
            "partition_count": {"type": "integer", "minimum": 1},
            "configs": {"type": "object", "additionalProperties": {"type": "string"}},
            "partitions": {"type": "array", "items": {"type": "object", "required": ["partition", "start_offset", "end_offset", "size_bytes"], "properties": {
                "partition": {"type": "integer"}, "start_offset": {"type": "integer"}, "end_offset": {"type": "integer"}, "size_bytes": {"type": "integer", "minimum": 0}}}}
        }
    }));
    schemas.insert("Deleted".into(), json!({"type": "object", "required": ["deleted", "id"], "properties": {"deleted": {"type": "string"}, "id": {"type": "string", "format": "uuid"}}}));
    schemas.insert("Peek".into(), json!({
        "type": "object", "required": ["topic", "partition", "start_offset", "end_offset", "next_offset", "messages"],
        "properties": {
            "topic": {"type": "string"}, "partition": {"type": "integer"},
            "start_offset": {"type": "integer"}, "end_offset": {"type": "integer"}, "next_offset": {"type": "integer"},
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/PeekedMessage"}}
        }
    }));
    schemas.insert("PeekedMessage".into(), json!({
        "type": "object",
        "required": ["offset", "timestamp", "timestamp_type", "key", "key_base64", "value", "value_base64", "headers", "headers_base64"],
        "properties": {
            "offset": {"type": "integer"},
            "timestamp": {"type": "integer", "description": "ms since the epoch: create time, or the batch's log-append time."},
            "timestamp_type": {"type": "string", "enum": ["create_time", "log_append_time"]},
            "key": {"type": "string", "nullable": true}, "key_base64": {"type": "boolean"},
            "value": {"type": "string", "nullable": true}, "value_base64": {"type": "boolean"},
            "headers": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
            "headers_base64": {"type": "array", "items": {"type": "string"}, "description": "Names of headers whose values are base64 (not UTF-8)."}
        }
    }));
    schemas.insert("ProduceRequest".into(), json!({
        "type": "object", "required": ["messages"], "additionalProperties": false,
        "properties": {"messages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "key": {"type": "string", "nullable": true, "description": "UTF-8 text; null for a null key."},
                "value": {"type": "string", "nullable": true, "description": "UTF-8 text; null for a null value (tombstone)."},
                "key_b64": {"type": "string", "pattern": BASE64_PATTERN, "description": "The key's bytes as base64, instead of key."},
                "value_b64": {"type": "string", "pattern": BASE64_PATTERN, "description": "The value's bytes as base64, instead of value."},
                "headers": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
                "partition": {"type": "integer", "nullable": true, "minimum": 0, "maximum": i32::MAX, "description": "Default (absent or null): Kafka's murmur2 partitioner on the key; 0 without a key. A partition the topic does not have: 404."},
                "timestamp": {"type": "integer", "nullable": true, "minimum": 0, "maximum": i64::MAX, "description": "Create time in ms; default (absent or null): now."}
            },
            "not": {"anyOf": [{"required": ["key", "key_b64"]}, {"required": ["value", "value_b64"]}]}
        }}}
    }));
    schemas.insert("Produced".into(), json!({
        "type": "object", "required": ["topic", "base_offset", "count", "partitions"],
        "properties": {
            "topic": {"type": "string"},
            "base_offset": {"type": "integer"},
            "count": {"type": "integer", "minimum": 1},
            "partitions": {"type": "array", "items": {"type": "object", "required": ["partition", "base_offset", "count"], "properties": {
                "partition": {"type": "integer"}, "base_offset": {"type": "integer"}, "count": {"type": "integer"}}}}
        }
    }));
    schemas.insert(
        "GroupList".into(),
        json!({
            "type": "object", "required": ["groups"],
            "properties": {"groups": {"type": "array", "items": {
                "type": "object", "required": ["group_id", "state", "protocol_type", "members"],
                "properties": {
                    "group_id": {"type": "string"},
                    "state": {"type": "string", "enum": GROUP_STATES},
                    "protocol_type": {"type": "string", "nullable": true},
                    "members": {"type": "integer", "minimum": 0}
                }
            }}}
        }),
    );
    schemas.insert("GroupDetail".into(), json!({
        "type": "object",
        "required": ["group_id", "state", "generation", "protocol_type", "protocol", "leader", "members", "offsets"],
        "properties": {
            "group_id": {"type": "string"},
            "state": {"type": "string", "enum": GROUP_STATES},
            "generation": {"type": "integer"},
            "protocol_type": {"type": "string", "nullable": true},
            "protocol": {"type": "string", "nullable": true, "description": "The chosen assignor, while Stable."},
            "leader": {"type": "string", "nullable": true},
            "members": {"type": "array", "items": {
                "type": "object", "required": ["member_id", "group_instance_id", "client_id", "host", "assignment"],
                "properties": {
                    "member_id": {"type": "string"},
                    "group_instance_id": {"type": "string", "nullable": true},
                    "client_id": {"type": "string"},
                    "host": {"type": "string"},
                    "assignment": {"type": "array", "nullable": true, "description": "Decoded when the group uses the standard consumer protocol and is Stable.", "items": {
                        "type": "object", "required": ["topic", "partitions"],
                        "properties": {"topic": {"type": "string"}, "partitions": {"type": "array", "items": {"type": "integer"}}}
                    }}
                }
            }},
            "offsets": {"type": "array", "items": {
                "type": "object", "required": ["topic", "partition", "committed_offset", "metadata", "end_offset", "lag"],
                "properties": {
                    "topic": {"type": "string"},
                    "partition": {"type": "integer"},
                    "committed_offset": {"type": "integer"},
                    "metadata": {"type": "string"},
                    "end_offset": {"type": "integer", "nullable": true},
                    "lag": {"type": "integer", "nullable": true, "minimum": 0}
                }
            }}
        }
    }));
    schemas.insert("GroupDeleted".into(), json!({"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "StrikeMQ admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST administration of a StrikeMQ broker: topics, messages, consumer groups, live configuration and metrics. Errors are {\"error\": \"...\"}."
        },
        "paths": paths,
        "components": {"responses": responses, "schemas": schemas}
    })
}
