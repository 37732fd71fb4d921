//! The HTTP API against a real `serve`: authentication, roles, CSRF, the
//! rate limit of logins, policy refusals as JSON with the store unchanged,
//! and the OpenAPI document.

use serde_json::{Value, json};

use crate::peers::free_port;
use crate::util::*;

/// An environment whose serve has the API on `port`, with three accounts:
/// alice (admin, password), bob (viewer, token), carol (operator, token).
struct Api {
    env: Env,
    port: u16,
    viewer: String,
    operator: String,
}

const PASSWORD: &str = "correct horse battery staple";

fn config(port: u16) -> String {
    format!("[http]\nlisten = \"127.0.0.1:{port}\"\napi = true\n")
}

impl Api {
    fn new() -> (Api, Serve) {
        let port = free_port();
        let env = Env::with_config(&config(port));
        let pw = env.path("alice-password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        env.ok(&[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-file",
            pw.to_str().unwrap(),
        ]);
        env.ok(&["user", "add", "bob", "--role", "viewer", "--no-password"]);
        env.ok(&[
            "user",
            "add",
            "carol",
            "--role",
            "operator",
            "--no-password",
        ]);
        let token = |name: &str| {
            let out = env.ok(&["user", "token", "add", name, "--label", "test"]);
            out.stdout.trim().to_string()
        };
        let (viewer, operator) = (token("bob"), token("carol"));
        let serve = env.serve();
        wait_until(20, "the API", || http_get(port, "/healthz").is_ok());
        (
            Api {
                env,
                port,
                viewer,
                operator,
            },
            serve,
        )
    }

    /// (status, headers, JSON body).
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Vec<String>, Value) {
        let text = body.map(|b| b.to_string());
        let (status, head, body) =
            http_request(self.port, method, path, headers, text.as_deref()).unwrap();
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"));
        (status, head, v)
    }

    fn as_token(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (s, _, v) = self.call(method, path, &[("Authorization", &auth)], body);
        (s, v)
    }
}

fn error_of(v: &Value) -> &str {
    let e = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {v}"));
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn the_api_refuses_to_start_without_an_account() {
    let env = Env::with_config(&config(free_port()));
    let out = env.run(&["serve"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no account, and there is no default one: add one with 'certroll user add NAME --role admin'"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_endpoint_answers_by_role_and_writes_go_through_the_policy() {
    let (api, serve) = Api::new();
    let env = &api.env;
    env.import("oauth1-openssl3.pfx", &[]);
    env.import("oauth2.pfx", &[]);
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));

    // Unauthenticated: 401 with a challenge, for reads and writes alike.
    for (method, path) in [("GET", "/api/v1/slots"), ("POST", "/api/v1/assign")] {
        let (s, head, v) = api.call(method, path, &[], Some(json!({})));
        assert_eq!(s, 401, "{method} {path}: {v}");
        assert!(
            head.iter().any(|h| h
                .to_ascii_lowercase()
                .starts_with("www-authenticate: bearer")),
            "{head:?}"
        );
        error_of(&v);
    }
    let (s, v) = api.as_token(
        "certroll_00000000_notarealtokennotarealtokennotarealtoken1",
        "GET",
        "/api/v1/slots",
        None,
    );
    assert_eq!(
        (s, error_of(&v)),
        (401, "the API token is unknown, revoked or expired")
    );

    // A viewer reads everything; metadata only, never a key.
    for path in [
        "/api/v1/slots",
        "/api/v1/certificates",
        &format!("/api/v1/certificates/{t1}"),
        "/api/v1/jobs",
        "/api/v1/history",
        "/api/v1/requests",
        "/api/v1/session",
    ] {
        let (s, v) = api.as_token(&api.viewer, "GET", path, None);
        assert_eq!(s, 200, "{path}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("key_enc"),
            "{path}: {text}"
        );
    }
    let (_, certs) = api.as_token(&api.viewer, "GET", "/api/v1/certificates?limit=1", None);
    assert_eq!(
        (
            certs["total"].as_i64(),
            certs["items"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    let (s, v) = api.as_token(&api.viewer, "GET", "/api/v1/certificates?limit=0", None);
    assert_eq!((s, error_of(&v)), (400, "limit: from 1 to 1000"));
    let (s, v) = api.as_token(&api.viewer, "GET", "/api/v1/jobs/999", None);
    assert_eq!((s, error_of(&v)), (404, "no roll job 999"));

    // A viewer cannot write: 403, nothing changed.
    let before = env.snapshot();
    let assign = json!({"type": "OAuthTokenIssuer", "thumbprint": t1});
    let (s, v) = api.as_token(&api.viewer, "POST", "/api/v1/assign", Some(assign.clone()));
    assert_eq!(s, 403, "{v}");
    assert!(error_of(&v).contains("account bob is a viewer"), "{v}");
    assert_eq!(env.snapshot(), before);

    // Bad bodies: 400 with the field and the reason, nothing changed.
    for (body, needle) in [
        (
            json!({"type": "OAuthTokenIssuer"}),
            "missing field `thumbprint`",
        ),
        (
            json!({"type": "OAuthTokenIssuer", "thumbprint": t1, "colour": 1}),
            "unknown field `colour`",
        ),
        (
            json!({"type": "NoSuchType", "thumbprint": t1}),
            "NoSuchType",
        ),
        (
            json!({"type": "OAuthTokenIssuer", "thumbprint": "zz"}),
            "not a thumbprint",
        ),
    ] {
        let (s, v) = api.as_token(&api.operator, "POST", "/api/v1/assign", Some(body.clone()));
        assert_eq!(s, 400, "{body}: {v}");
        assert!(error_of(&v).contains(needle), "{body}: {v}");
    }
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        "/api/v1/schedule",
        Some(
            json!({"type": "OAuthTokenIssuer", "thumbprint": t2, "effective_date": "next tuesday"}),
        ),
    );
    assert_eq!(s, 400, "{v}");
    assert!(error_of(&v).starts_with("effective_date: "), "{v}");
    assert_eq!(env.snapshot(), before);

    // An operator assigns (what-if first: nothing changes), through the
    // same operation as `set`, audited under the account.
    let mut what_if = assign.clone();
    what_if["what_if"] = json!(true);
    let (s, v) = api.as_token(&api.operator, "POST", "/api/v1/assign", Some(what_if));
    assert_eq!(
        (
            s,
            v["what_if"].as_bool(),
            v["changes"][0]["outcome"].as_str()
        ),
        (200, Some(true), Some("assigned")),
        "{v}"
    );
    assert_eq!(env.snapshot(), before);
    let (s, v) = api.as_token(&api.operator, "POST", "/api/v1/assign", Some(assign));
    assert_eq!(s, 200, "{v}");
    assert_eq!(env.get_json()[0]["current"]["thumbprint"], json!(t1));
    let (_, v) = api.as_token(
        &api.viewer,
        "GET",
        "/api/v1/slots?type=OAuthTokenIssuer",
        None,
    );
    assert_eq!(
        (
            v["total"].as_i64(),
            v["items"][0]["current"]["thumbprint"].as_str()
        ),
        (Some(1), Some(t1.as_str())),
        "{v}"
    );
    let (_, v) = api.as_token(&api.viewer, "GET", "/api/v1/slots?limit=5&offset=1", None);
    assert_eq!(
        (v["total"].as_i64(), v["items"].as_array().map(Vec::len)),
        (Some(1), Some(0)),
        "{v}"
    );
    let (s, v) = api.as_token(&api.viewer, "GET", "/api/v1/slots?offset=99999999999", None);
    assert_eq!((s, error_of(&v)), (400, "offset: at most 100000000"));
    let history = env.ok(&["history", "--json"]).json();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str()),
        (Some("assign"), Some("api:carol")),
        "{last}"
    );

    // Schedule a roll (201, a job), see it, cancel it.
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        "/api/v1/schedule",
        Some(json!({"type": "OAuthTokenIssuer", "thumbprint": &t2[..12], "effective_date": "+2h"})),
    );
    assert_eq!(s, 201, "{v}");
    let job = v["changes"][0]["job_id"].as_i64().expect("a job id");
    let (s, v) = api.as_token(&api.viewer, "GET", &format!("/api/v1/jobs/{job}"), None);
    assert_eq!((s, v["state"].as_str()), (200, Some("scheduled")), "{v}");
    let (_, v) = api.as_token(&api.viewer, "GET", "/api/v1/jobs?state=scheduled", None);
    assert_eq!(v["total"], json!(1), "{v}");
    // A second schedule conflicts: 409, the CLI's message.
    let again = json!({"type": "OAuthTokenIssuer", "thumbprint": t2, "effective_date": "+3h", "force": false});
    let (s, v) = api.as_token(&api.operator, "POST", "/api/v1/schedule", Some(again));
    assert_eq!(s, 409, "{v}");
    assert!(
        error_of(&v).contains("already has pending certificate"),
        "{v}"
    );
    // Scheduling what is current already makes no job: 200, not 201.
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        "/api/v1/schedule",
        Some(json!({"type": "OAuthTokenIssuer", "thumbprint": t1, "effective_date": "+3h"})),
    );
    assert_eq!(
        (s, v["changes"][0]["outcome"].as_str()),
        (200, Some("already-current")),
        "{v}"
    );
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        &format!("/api/v1/jobs/{job}/cancel"),
        None,
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        &format!("/api/v1/jobs/{job}/retry"),
        None,
    );
    assert_eq!(s, 409, "{v}");
    assert!(
        error_of(&v).contains("only a failed job can be retried"),
        "{v}"
    );

    // A policy refusal is JSON with its findings, and changes nothing.
    let short = short_lived_pem(env.dir.path(), "short", 10);
    env.ok(&["import", "--path", short.to_str().unwrap()]);
    let short_tp = thumbprint_of(&env.dir.path().join("short.crt"));
    let before = env.snapshot();
    let (s, v) = api.as_token(
        &api.operator,
        "POST",
        "/api/v1/schedule",
        Some(json!({"type": "OAuthTokenIssuer", "thumbprint": short_tp, "effective_date": "+1h"})),
    );
    assert_eq!(s, 409, "{v}");
    assert!(
        error_of(&v).starts_with("refused: 1 warning(s) need --force"),
        "{v}"
    );
    assert_eq!(v["findings"][0]["rule"], json!("validity-margin"), "{v}");
    assert_eq!(env.snapshot(), before);

    // Nothing secret reached the service's log.
    let log = serve.log();
    for secret in [api.viewer.as_str(), api.operator.as_str(), PASSWORD] {
        assert!(!log.contains(secret), "a secret in the log");
    }
    assert!(log.contains("API request denied"), "denials are logged");
}

#[test]
fn sessions_need_their_csrf_token_and_logins_are_rate_limited() {
    let (api, serve) = Api::new();
    let login = json!({"name": "alice", "password": PASSWORD});
    let (s, head, v) = api.call("POST", "/api/v1/login", &[], Some(login));
    assert_eq!(s, 200, "{v}");
    let cookie = head
        .iter()
        .find_map(|h| h.strip_prefix("set-cookie: "))
        .expect("a session cookie")
        .to_string();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(
        (v["user"].as_str(), v["role"].as_str()),
        (Some("alice"), Some("admin"))
    );

    let with_cookie = [("Cookie", session.as_str())];
    let (s, _, v) = api.call("GET", "/api/v1/session", &with_cookie, None);
    assert_eq!((s, v["user"].as_str()), (200, Some("alice")), "{v}");
    // A write without the CSRF token, or with a wrong one: 403.
    let body = Some(
        json!({"type": "OAuthTokenIssuer", "thumbprint": "0000000000000000000000000000000000000000"}),
    );
    let (s, _, v) = api.call("POST", "/api/v1/assign", &with_cookie, body.clone());
    assert_eq!(s, 403, "{v}");
    assert!(error_of(&v).contains("CSRF"), "{v}");
    let wrong = [("Cookie", session.as_str()), ("X-CSRF-Token", "nope")];
    assert_eq!(
        api.call("POST", "/api/v1/assign", &wrong, body.clone()).0,
        403
    );
    // With it, the request reaches the operation (no such certificate).
    let right = [
        ("Cookie", session.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
    ];
    let (s, _, v) = api.call("POST", "/api/v1/assign", &right, body);
    assert_eq!(s, 404, "{v}");

    // Logout ends the session.
    let (s, head, _) = api.call("POST", "/api/v1/logout", &right, None);
    assert_eq!(s, 200);
    assert!(
        head.iter()
            .any(|h| h.starts_with("set-cookie: certroll_session=;")),
        "{head:?}"
    );
    assert_eq!(
        api.call("GET", "/api/v1/session", &with_cookie, None).0,
        401
    );

    // Wrong passwords: one message for a wrong name and a wrong password;
    // after five failures in a minute, 429 even for the right password.
    let bad = json!({"name": "alice", "password": "wrong password!"});
    let (s, _, v) = api.call("POST", "/api/v1/login", &[], Some(bad.clone()));
    assert_eq!((s, error_of(&v)), (401, "wrong account name or password"));
    let (s, _, v) = api.call(
        "POST",
        "/api/v1/login",
        &[],
        Some(json!({"name": "nobody", "password": "x"})),
    );
    assert_eq!((s, error_of(&v)), (401, "wrong account name or password"));
    for _ in 0..4 {
        api.call("POST", "/api/v1/login", &[], Some(bad.clone()));
    }
    let (s, _, v) = api.call(
        "POST",
        "/api/v1/login",
        &[],
        Some(json!({"name": "alice", "password": PASSWORD})),
    );
    assert_eq!(s, 429, "{v}");
    assert!(error_of(&v).starts_with("too many failed logins"), "{v}");
    let actions = history_actions(&api.env);
    assert!(
        actions.contains(&"login".to_string()) && actions.contains(&"logout".to_string()),
        "{actions:?}"
    );
    assert!(!serve.log().contains(PASSWORD));
}

#[test]
fn the_openapi_document_describes_every_endpoint() {
    let (api, _serve) = Api::new();
    let (s, _, doc) = api.call("GET", "/api/v1/openapi.json", &[], None);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], json!("3.0.3"));
    let paths = doc["paths"].as_object().unwrap();
    // Every described path answers (not the router's 404 for unknown ones).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "1")
                .replace("{thumbprint}", "ABCDEF0123");
            let (_, _, v) = api.call(&method.to_uppercase(), &concrete, &[], Some(json!({})));
            assert!(
                !v["error"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no such API endpoint"),
                "{method} {path} is described but not routed"
            );
        }
    }
    let (s, _, v) = api.call("GET", "/api/v1/nothing-here", &[], None);
    assert_eq!(
        (s, error_of(&v)),
        (404, "no such API endpoint: see /api/v1/openapi.json")
    );
}

/// Schemathesis (PyPI; tests/run installs it into
/// target/test-tools/schemathesis) against the OpenAPI document, as a
/// viewer and as an operator, bounded in examples with a fixed seed: no
/// 500, no answer outside the documented statuses, content types and
/// schemas.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tools/schemathesis/bin/schemathesis");
    let st = if local.exists() {
        local
    } else {
        require_tool(
            "schemathesis",
            "schemathesis (python3 -m venv target/test-tools/schemathesis && target/test-tools/schemathesis/bin/pip install schemathesis)",
        );
        "schemathesis".into()
    };
    let (api, serve) = Api::new();
    api.env
        .import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"]);
    api.env.import("oauth2.pfx", &[]);
    let url = format!("http://127.0.0.1:{}/api/v1/openapi.json", api.port);
    for token in [&api.viewer, &api.operator] {
        let out = std::process::Command::new(&st)
            .args(["run", &url, "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "30",
                "--seed",
                "1",
                "--generation-database",
                "none",
                "-w",
                "1",
            ])
            .current_dir(api.env.dir.path())
            .output()
            .expect("run schemathesis");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
}
