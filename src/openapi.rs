//! The OpenAPI 3.0 document of `/api/v1/` (served at
//! `/api/v1/openapi.json`). Written by hand beside [`crate::api`]; a test
//! checks every route of the router is described and schemathesis checks
//! the answers against it.

use serde_json::{Value, json};

fn error_responses(codes: &[&str]) -> serde_json::Map<String, Value> {
    // Any operation may meet an unreachable store.
    let codes: Vec<&str> = codes.iter().copied().chain(["503"]).collect();
    let text = |c: &str| match c {
        "400" => "bad request: the message says which field and why",
        "401" => "not authenticated",
        "403" => "the role does not allow it, or the CSRF token is missing or wrong",
        "404" => "no such object",
        "409" => "refused by the policy or the slot's state; nothing changed",
        "413" => "the request body is too large",
        "429" => "too many failed logins",
        "503" => "the store is unreachable",
        _ => "error",
    };
    codes
        .iter()
        .map(|c| {
            (
                c.to_string(),
                json!({"description": text(c), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            )
        })
        .collect()
}

fn op(summary: &str, params: Value, ok: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": ok}}}),
    );
    json!({"summary": summary, "parameters": params, "responses": responses})
}

fn write_op(
    summary: &str,
    params: Value,
    request: Option<Value>,
    ok: Value,
    created: bool,
) -> Value {
    let mut responses = error_responses(&["400", "401", "403", "404", "409", "413"]);
    let body = json!({"description": "OK", "content": {"application/json": {"schema": ok}}});
    responses.insert("200".into(), body.clone());
    if created {
        responses.insert("201".into(), body);
    }
    let mut v = json!({
        "summary": summary,
        "parameters": params,
        "responses": responses,
        "security": [{"bearer": []}, {"session": [], "csrf": []}],
    });
    if let Some(schema) = request {
        v["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    v
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn paged(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["total", "offset", "items"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
        }
    })
}

fn paging() -> Vec<Value> {
    vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": crate::api::MAX_LIMIT}),
            "at most this many items (default 100)",
        ),
        query(
            "offset",
            json!({"type": "integer", "minimum": 0, "maximum": crate::api::MAX_OFFSET}),
            "skip this many items",
        ),
    ]
}

fn slot_filter() -> Vec<Value> {
    vec![
        query(
            "type",
            json!({"type": "string"}),
            "usage type(s), comma-separated",
        ),
        query(
            "scope",
            json!({"type": "string"}),
            "global, site:NAME, pool:FQDN or server:FQDN",
        ),
    ]
}

fn with(mut a: Vec<Value>, b: Vec<Value>) -> Value {
    a.extend(b);
    Value::Array(a)
}

fn schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let opt_time = json!({"type": "string", "format": "date-time", "nullable": true});
    let opt_str = json!({"type": "string", "nullable": true});
    let cert = json!({
        "type": "object",
        "required": ["thumbprint", "subject", "not_before", "not_after", "has_private_key"],
        "properties": {
            "thumbprint": {"type": "string", "pattern": "^[0-9A-F]{40}$"},
            "sha256": {"type": "string"},
            "subject": {"type": "string"},
            "issuer": {"type": "string"},
            "sans": {"type": "array", "items": {"type": "string"}},
            "serial": {"type": "string"},
            "not_before": time,
            "not_after": time,
            "key_algorithm": {"type": "string"},
            "key_bits": {"type": "integer", "nullable": true},
            "signature_algorithm": {"type": "string"},
            "has_private_key": {"type": "boolean"},
            "friendly_name": opt_str,
            "source_file": opt_str,
            "imported_at": time,
            "chain": {"type": "array", "items": {"type": "object"}},
        }
    });
    let nullable_cert =
        json!({"allOf": [{"$ref": "#/components/schemas/Certificate"}], "nullable": true});
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "findings": {"type": "array", "items": {"type": "object", "properties": {
                    "severity": {"type": "string", "enum": ["error", "warning"]},
                    "rule": {"type": "string"},
                    "message": {"type": "string"},
                }}},
            }
        },
        "Certificate": cert,
        "Slot": {
            "type": "object",
            "required": ["scope", "type", "current", "previous", "pending", "updated_at"],
            "properties": {
                "scope": {"type": "string"},
                "type": {"type": "string"},
                "current": nullable_cert,
                "previous": nullable_cert,
                "pending": nullable_cert,
                "updated_at": time,
            }
        },
        "Job": {
            "type": "object",
            "required": ["id", "scope", "type", "thumbprint", "due_at", "state", "attempts"],
            "properties": {
                "id": {"type": "integer"},
                "scope": {"type": "string"},
                "type": {"type": "string"},
                "thumbprint": {"type": "string"},
                "due_at": time,
                "state": {"type": "string", "enum": ["scheduled", "running", "succeeded", "failed", "cancelled"]},
                "attempts": {"type": "integer", "minimum": 0},
                "started_at": opt_time,
                "finished_at": opt_time,
                "last_error": opt_str,
                "run_after": time,
                "lateness_ms": {"type": "number", "nullable": true},
                "lease_owner": opt_str,
                "lease_expires_at": opt_time,
                "created_at": time,
                "created_by": opt_str,
                "finished_by": opt_str,
            }
        },
        "AuditEntry": {
            "type": "object",
            "required": ["id", "at", "actor", "action"],
            "properties": {
                "id": {"type": "integer"},
                "at": time,
                "actor": {"type": "string"},
                "action": {"type": "string"},
                "thumbprint": opt_str,
                "detail": opt_str,
            }
        },
        "Request": {
            "type": "object",
            "required": ["id", "state", "usage_type", "scope", "csr", "created_at"],
            "properties": {
                "id": {"type": "integer"},
                "state": {"type": "string", "enum": ["pending", "completed", "cancelled"]},
                "usage_type": {"type": "string"},
                "scope": {"type": "string"},
                "csr": {"type": "string"},
                "created_at": time,
                "closed_at": opt_time,
            }
        },
        "SetBody": {
            "type": "object",
            "required": ["type", "thumbprint"],
            "additionalProperties": false,
            "properties": {
                "type": {"type": "string", "description": "usage type(s), comma-separated"},
                "scope": {"type": "string", "description": "default global"},
                "thumbprint": {"type": "string", "description": "40 hex digits, or a unique prefix of at least 8"},
                "effective_date": {"type": "string", "description": "schedule only: WHEN, as the command line's --effective-date (RFC 3339, 'YYYY-MM-DD HH:MM' in timezone, +2h)"},
                "timezone": {"type": "string", "description": "IANA zone of an effective_date without an offset (default: the configuration's)"},
                "force": {"type": "boolean"},
                "require_staged": {"type": "boolean"},
                "what_if": {"type": "boolean", "description": "say what would change, change nothing"},
            }
        },
        "SetOutcome": {
            "type": "object",
            "required": ["what_if", "changes", "certificate"],
            "properties": {
                "what_if": {"type": "boolean"},
                "effective_at": time,
                "certificate": {"$ref": "#/components/schemas/Certificate"},
                "changes": {"type": "array", "items": {"type": "object", "required": ["scope", "type", "outcome"]}},
                "warnings": {"type": "array", "items": {"type": "string"}},
            }
        },
        "Session": {
            "type": "object",
            "required": ["user", "role"],
            "properties": {
                "user": {"type": "string"},
                "role": {"type": "string", "enum": ["viewer", "operator", "admin"]},
                "csrf_token": opt_str,
                "expires_at": time,
            }
        },
    })
}

/// The document.
pub fn document() -> Value {
    let id = || vec![path_param("id", json!({"type": "integer"}))];
    let read = &["400", "401", "404"];
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "certroll",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Certificate slots (current, previous, pending per usage type and scope), rolls and their jobs. Authenticate with an API token (Authorization: Bearer TOKEN, from 'certroll user token add') or a login session (POST /api/v1/login; writes then need X-CSRF-Token). A private key never leaves over HTTP.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::api::SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
            "schemas": schemas(),
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/login": {"post": {
                "summary": "Log in: a session cookie and the CSRF token for writes",
                "security": [],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["name", "password"], "additionalProperties": false,
                    "properties": {"name": {"type": "string"}, "password": {"type": "string"}}}}}},
                "responses": {
                    "200": {"description": "logged in", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}},
                    "400": error_responses(&["400"])["400"],
                    "401": error_responses(&["401"])["401"],
                    "429": error_responses(&["429"])["429"],
                },
            }},
            "/api/v1/logout": {"post": write_op("End the login session", json!([]), None,
                json!({"type": "object", "properties": {"logged_out": {"type": "string"}}}), false)},
            "/api/v1/session": {"get": op("Who is logged in", json!([]),
                json!({"$ref": "#/components/schemas/Session"}), &["401"])},
            "/api/v1/slots": {"get": op("Slots with their current, previous and pending certificates",
                with(slot_filter(), paging()), paged("Slot"), read)},
            "/api/v1/certificates": {"get": op("Stored certificates, soonest expiry first (metadata only)",
                Value::Array(paging()), paged("Certificate"), read)},
            "/api/v1/certificates/{thumbprint}": {"get": op("One certificate",
                json!([path_param("thumbprint", json!({"type": "string"}))]),
                json!({"$ref": "#/components/schemas/Certificate"}), read)},
            "/api/v1/jobs": {"get": op("Roll jobs, newest first",
                with(vec![query("state", json!({"type": "string", "enum": ["scheduled", "running", "succeeded", "failed", "cancelled"]}), "only jobs in this state")],
                    with(slot_filter(), paging()).as_array().cloned().unwrap_or_default()),
                paged("Job"), read)},
            "/api/v1/jobs/{id}": {"get": op("One roll job", Value::Array(id()),
                json!({"$ref": "#/components/schemas/Job"}), read)},
            "/api/v1/jobs/{id}/cancel": {"post": write_op("Cancel a scheduled roll", Value::Array(id()), None,
                json!({"$ref": "#/components/schemas/Job"}), false)},
            "/api/v1/jobs/{id}/retry": {"post": write_op("Retry a failed roll", Value::Array(id()), None,
                json!({"$ref": "#/components/schemas/Job"}), false)},
            "/api/v1/history": {"get": op("The audit trail, oldest first (the newest `limit` rows)",
                with(slot_filter(), vec![paging()[0].clone()]),
                json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}}}),
                read)},
            "/api/v1/requests": {"get": op("Certificate requests with their CSRs",
                with(vec![query("state", json!({"type": "string", "enum": ["pending", "completed", "cancelled"]}), "only requests in this state")], paging()),
                paged("Request"), read)},
            "/api/v1/assign": {"post": write_op("Assign a stored certificate now (set)", json!([]),
                Some(json!({"$ref": "#/components/schemas/SetBody"})),
                json!({"$ref": "#/components/schemas/SetOutcome"}), false)},
            "/api/v1/schedule": {"post": write_op("Schedule a roll at effective_date (set --roll)", json!([]),
                Some(json!({"$ref": "#/components/schemas/SetBody"})),
                json!({"$ref": "#/components/schemas/SetOutcome"}), true)},
        },
    })
}
