//! The Upstash-REST gateway speaks the documented protocol (docs/upstash-rest.md)
//! in front of a real redis-server; and core's `UpstashClient` works against it.

use base64::Engine as _;
use edgesync_core::secret::Secret;
use edgesync_core::store::upstash::{UpstashClient, UpstashConfig};
use edgesync_core::store::{Command, CommandError, Reply, Store, StoreError};
use edgesync_e2e::binaries;
use edgesync_e2e::harness::{RedisBackend, REDIS_TOKEN};
use edgesync_e2e::native_http::NativeHttp;
use edgesync_e2e::suite::run_suite;
use futures_executor::block_on;
use serde_json::json;

fn main() {
    run_suite(
        || RedisBackend::start(&binaries!()),
        &[
            ("single_command_in_body", single_command_in_body),
            ("path_form_with_body_and_query", path_form_with_body_and_query),
            ("pipeline_continues_past_errors", pipeline_continues_past_errors),
            ("multi_exec_is_atomic_and_discards_on_syntax_errors", multi_exec_is_atomic_and_discards_on_syntax_errors),
            ("auth_by_header_or_query_token", auth_by_header_or_query_token),
            ("base64_and_resp2_encodings", base64_and_resp2_encodings),
            ("sync_token_on_every_response", sync_token_on_every_response),
            ("core_client_round_trips_through_the_gateway", core_client_round_trips_through_the_gateway),
        ],
    )
}

const AUTH: (&str, &str) = ("authorization", "Bearer e2e-redis-token");

fn single_command_in_body(backend: &RedisBackend) {
    let set = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["SET","gw:one","bar","EX",100]"#));
    assert_eq!((set.status, set.json()), (200, json!({"result": "OK"})));
    let get = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["GET","gw:one"]"#));
    assert_eq!(get.json(), json!({"result": "bar"}));
    let ttl = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["TTL","gw:one"]"#));
    assert_eq!(ttl.json(), json!({"result": 100}));
    let missing = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["GET","gw:nothing"]"#));
    assert_eq!(missing.json(), json!({"result": null}));
    let error = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["GET"]"#));
    assert_eq!(error.status, 400);
    assert_eq!(error.json(), json!({"error": "ERR wrong number of arguments for 'get' command"}));
    let not_json = backend.gateway_call("POST", "/", &[AUTH], Some(b"SET x"));
    assert_eq!(not_json.status, 400);
    let delete = backend.gateway_call("DELETE", "/get/x", &[AUTH], None);
    assert_eq!(delete.status, 405);
}

fn path_form_with_body_and_query(backend: &RedisBackend) {
    let set = backend.gateway_call("GET", "/set/gw:path/hello%20world/EX/100", &[AUTH], None);
    assert_eq!(set.json(), json!({"result": "OK"}));
    assert_eq!(backend.gateway_call("GET", "/get/gw:path", &[AUTH], None).json(), json!({"result": "hello world"}));
    // POST body is the last argument; query pairs follow it.
    let set = backend.gateway_call("POST", "/set/gw:body?EX=50", &[AUTH], Some(b"from the body"));
    assert_eq!(set.json(), json!({"result": "OK"}));
    let mut redis = backend.redis();
    let value: String = redis::cmd("GET").arg("gw:body").query(&mut redis).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("gw:body").query(&mut redis).unwrap();
    assert_eq!((value.as_str(), ttl), ("from the body", 50));
    let zadd = backend.gateway_call("GET", "/zadd/gw:teams/100/team-x/90/team-y", &[AUTH], None);
    assert_eq!(zadd.json(), json!({"result": 2}));
    let range = backend.gateway_call("GET", "/zrange/gw:teams/0/-1/WITHSCORES", &[AUTH], None);
    assert_eq!(range.json(), json!({"result": ["team-y", "90", "team-x", "100"]}));
}

fn pipeline_continues_past_errors(backend: &RedisBackend) {
    let body = br#"[["SET","gw:p1","valuex"],["SETEX","gw:p2",13,"valuez"],["INCR","gw:p1"],["ZADD","gw:pz",11,"item1",22,"item2"]]"#;
    let answer = backend.gateway_call("POST", "/pipeline", &[AUTH], Some(body));
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        json!([
            {"result": "OK"},
            {"result": "OK"},
            {"error": "ERR value is not an integer or out of range"},
            {"result": 2}
        ])
    );
}

fn multi_exec_is_atomic_and_discards_on_syntax_errors(backend: &RedisBackend) {
    let body = br#"[["SET","gw:m1","a"],["HSET","gw:m1","f","v"],["GET","gw:m1"]]"#;
    let answer = backend.gateway_call("POST", "/multi-exec", &[AUTH], Some(body));
    assert_eq!(answer.status, 200);
    let items = answer.json();
    assert_eq!(items[0], json!({"result": "OK"}));
    assert!(items[1]["error"].as_str().unwrap().starts_with("WRONGTYPE"), "{items}");
    assert_eq!(items[2], json!({"result": "a"}));

    // A command Redis rejects while queueing discards the whole transaction.
    let body = br#"[["SET","gw:m2","a"],["NOSUCHCOMMAND"]]"#;
    let answer = backend.gateway_call("POST", "/multi-exec", &[AUTH], Some(body));
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"].as_str().unwrap().starts_with("EXECABORT"), "{}", answer.body);
    let mut redis = backend.redis();
    let exists: i64 = redis::cmd("EXISTS").arg("gw:m2").query(&mut redis).unwrap();
    assert_eq!(exists, 0, "a discarded transaction must write nothing");
}

fn auth_by_header_or_query_token(backend: &RedisBackend) {
    let none = backend.gateway_call("POST", "/", &[], Some(br#"["PING"]"#));
    assert_eq!(none.status, 401);
    assert!(none.json()["error"].as_str().is_some());
    let wrong = backend.gateway_call("POST", "/", &[("authorization", "Bearer nope")], Some(br#"["PING"]"#));
    assert_eq!(wrong.status, 401);
    let query = backend.gateway_call("GET", &format!("/set/gw:tok/v?_token={REDIS_TOKEN}"), &[], None);
    assert_eq!(query.json(), json!({"result": "OK"}));
    let mut redis = backend.redis();
    let keys: Vec<String> = redis::cmd("HKEYS").arg("gw:tok").query(&mut redis).unwrap_or_default();
    assert!(keys.is_empty(), "_token must not be passed to Redis as an argument");
}

fn base64_and_resp2_encodings(backend: &RedisBackend) {
    let b64 = ("upstash-encoding", "base64");
    backend.gateway_call("POST", "/", &[AUTH], Some(br#"["SET","gw:enc","bar"]"#));
    let get = backend.gateway_call("POST", "/", &[AUTH, b64], Some(br#"["GET","gw:enc"]"#));
    assert_eq!(get.json(), json!({"result": "YmFy"}));
    let set = backend.gateway_call("POST", "/", &[AUTH, b64], Some(br#"["SET","gw:enc","baz"]"#));
    assert_eq!(set.json(), json!({"result": "OK"}), "OK is never encoded");
    let pipeline = backend.gateway_call(
        "POST",
        "/pipeline",
        &[AUTH, b64],
        Some(br#"[["GET","gw:enc"],["MGET","gw:enc","gw:none"]]"#),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode("baz");
    assert_eq!(pipeline.json(), json!([{"result": encoded}, {"result": [encoded, null]}]));

    let resp2 =
        backend.gateway_call("POST", "/", &[AUTH, ("upstash-response-format", "resp2")], Some(br#"["GET","gw:enc"]"#));
    assert_eq!(resp2.body, "$3\r\nbaz\r\n");
    let both = backend.gateway_call(
        "POST",
        "/",
        &[AUTH, b64, ("upstash-response-format", "resp2")],
        Some(br#"["GET","gw:enc"]"#),
    );
    assert_eq!(both.status, 400);
    let unknown =
        backend.gateway_call("POST", "/", &[AUTH, ("upstash-response-format", "xml")], Some(br#"["GET","gw:enc"]"#));
    assert_eq!(unknown.status, 400);
}

fn sync_token_on_every_response(backend: &RedisBackend) {
    let first = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["PING"]"#));
    let second = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["PING"]"#));
    let token = |a: &edgesync_e2e::harness::HttpAnswer| a.header("upstash-sync-token").map(str::to_owned);
    assert!(token(&first).is_some() && token(&second).is_some());
    assert_ne!(token(&first), token(&second));
}

fn core_client_round_trips_through_the_gateway(backend: &RedisBackend) {
    let client = UpstashClient::new(
        NativeHttp::default(),
        UpstashConfig {
            url: backend.gateway_url.clone(),
            token: Secret::new(REDIS_TOKEN),
            timeout: std::time::Duration::from_secs(5),
        },
    );
    // Non-ASCII survives the base64 round trip.
    block_on(client.set("gw:core", "ünïcødé ✓".as_bytes(), None)).unwrap();
    assert_eq!(block_on(client.get("gw:core")).unwrap(), Some("ünïcødé ✓".as_bytes().to_vec()));
    let replies = block_on(client.pipeline(&[
        Command::new("SET").arg("gw:core2").arg("1"),
        Command::new("HSET").arg("gw:core2").arg("f").arg("v"),
        Command::new("INCR").arg("gw:core2"),
    ]))
    .unwrap();
    assert_eq!(replies[0], Ok(Reply::bulk("OK")));
    assert!(matches!(&replies[1], Err(CommandError(text)) if text.starts_with("WRONGTYPE")));
    assert_eq!(replies[2], Ok(Reply::Int(2)));
    let atomic =
        block_on(client.transaction(&[Command::new("INCR").arg("gw:core2"), Command::new("GET").arg("gw:core2")]))
            .unwrap();
    assert_eq!(atomic, vec![Ok(Reply::Int(3)), Ok(Reply::bulk("3"))]);

    let wrong_token = UpstashClient::new(
        NativeHttp::default(),
        UpstashConfig {
            url: backend.gateway_url.clone(),
            token: Secret::new("nope"),
            timeout: std::time::Duration::from_secs(5),
        },
    );
    let error = block_on(wrong_token.get("gw:core")).unwrap_err();
    assert!(matches!(error, StoreError::Rejected { status: 401, .. }), "{error:?}");
}
