//! `edgesync-gateway` speaks the documented Upstash REST protocol (docs/upstash-rest.md) in
//! front of a real redis-server — to core's `UpstashClient` and to the official
//! `@upstash/redis` SDK — isolates requests from each other, enforces its command policy per
//! token, and serves TLS beyond loopback.

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
            ("the_upstash_sdk_runs_everyday_commands", the_upstash_sdk_runs_everyday_commands),
            (
                "connection_state_commands_change_nothing_for_others",
                connection_state_commands_change_nothing_for_others,
            ),
            ("blocking_commands_wait_alone_and_bounded", blocking_commands_wait_alone_and_bounded),
            (
                "administrative_commands_are_denied_and_change_nothing",
                administrative_commands_are_denied_and_change_nothing,
            ),
            ("read_only_tokens_only_read", read_only_tokens_only_read),
            ("tls_beyond_loopback_with_a_per_run_ca", tls_beyond_loopback_with_a_per_run_ca),
            ("limits_answer_upstash_shaped_errors", limits_answer_upstash_shaped_errors),
            ("scripts_with_upstash_shebang_flags_run", scripts_with_upstash_shebang_flags_run),
            ("the_sdk_subscribes_over_server_sent_events", the_sdk_subscribes_over_server_sent_events),
            ("rediss_with_a_private_ca", rediss_with_a_private_ca),
            // Last: it empties Redis.
            (
                "the_first_request_after_a_redis_restart_is_answered",
                the_first_request_after_a_redis_restart_is_answered,
            ),
        ],
    )
}

const AUTH: (&str, &str) = ("authorization", "Bearer e2e-redis-token");

/// A Redis restart closes the gateway's connection under it. The first request afterwards
/// finds it closed when writing — nothing reached Redis — and goes again on a new connection
/// (with the token's ACL user made again): answered, not 503.
fn the_first_request_after_a_redis_restart_is_answered(backend: &RedisBackend) {
    let (status, _) = post_as(&backend.gateway_url, REDIS_TOKEN, "/", br#"["SET","restart:before","1"]"#);
    assert_eq!(status, 200, "the connection is in use before the restart");
    backend.restart_redis_behind_the_gateway().expect("redis restarts");
    let (status, body) = post_as(&backend.gateway_url, REDIS_TOKEN, "/", br#"["SET","restart:after","written"]"#);
    assert_eq!((status, body.as_str()), (200, r#"{"result":"OK"}"#), "the first request after the restart");
    assert_eq!(redis_get(backend, "restart:after").as_deref(), Some("written"));
}

/// Redis over TLS (`rediss://`) with a certificate from a private CA: trusted through
/// `--redis-tls-ca`, commands run; without it the gateway does not start (its ACL users cannot
/// be checked over a connection it does not trust).
fn rediss_with_a_private_ca(backend: &RedisBackend) {
    let ca = backend.tls_ca().to_str().unwrap();
    let (_gateway, url) = backend
        .start_gateway(
            &["--redis-url", &backend.redis_tls_url, "--redis-tls-ca", ca],
            &[("GATEWAY_TOKEN", REDIS_TOKEN)],
        )
        .expect("a gateway in front of Redis over TLS");
    let (status, body) = post_as(&url, REDIS_TOKEN, "/", br#"["SET","tls:key","over tls"]"#);
    assert_eq!((status, body.as_str()), (200, r#"{"result":"OK"}"#));
    assert_eq!(redis_get(backend, "tls:key").as_deref(), Some("over tls"));
    let untrusted =
        backend.start_gateway(&["--redis-url", &backend.redis_tls_url], &[("GATEWAY_TOKEN", REDIS_TOKEN)]).err();
    assert!(untrusted.is_some_and(|log| log.contains("certificate") || log.contains("UnknownIssuer")), "refused");
}

/// `@upstash/redis`'s Subscriber through the gateway: a channel and a pattern, each message
/// published through the gateway arrives with its channel (and pattern); the gateway counts
/// its open streams, and gives each back when the client closes it.
fn the_sdk_subscribes_over_server_sent_events(backend: &RedisBackend) {
    let seen = sdk(&backend.gateway_url, REDIS_TOKEN, "subscribe", None);
    assert_eq!(
        seen["channel"],
        json!({"subscribed": 1, "receivers": 1, "channel": "sdk:news", "message": {"price": "0.0150"}}),
        "{seen}"
    );
    assert_eq!(
        seen["pattern"],
        json!({"pattern": "sdk:price:*", "channel": "sdk:price:QRLUSDT", "message": {"note": "a comma, and a second line\nhere"}}),
        "{seen}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let open = || backend.gateway_call("GET", "/__gateway/stats", &[AUTH], None).json()["subscribers"].as_u64();
    while open() != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(open(), Some(0), "the closed streams are given back");
    let nothing = backend.gateway_call("POST", "/subscribe/", &[AUTH], Some(b"[]"));
    assert_eq!(nothing.status, 400, "{}", nothing.body);
    let (_gateway, url) = backend
        .start_gateway(&[], &[("GATEWAY_TOKEN", REDIS_TOKEN), ("GATEWAY_READ_ONLY_TOKEN", "reader")])
        .expect("a gateway with a read-only token");
    let (status, body) = post_as(&url, "reader", "/subscribe/sdk:news", b"[]");
    assert_eq!(status, 403, "{body}");
}

/// A script with a shebang flag Upstash accepts and Redis 7.0 refuses, and its SHA-1 (what
/// `SCRIPT LOAD` answers on Upstash; `sha1sum` of the text).
const FLAGGED: &str = "#!lua flags=allow-key-locking\nreturn redis.call('SET', KEYS[1], ARGV[1])";
const FLAGGED_SHA1: &str = "4f900878e3823883d5f8f3f26573b26460929ead";

/// Redis 7.0 refuses the flag; through the gateway the script runs, `SCRIPT LOAD` answers the
/// original's hash, and `EVALSHA` / `SCRIPT EXISTS` of that hash reach the script Redis holds
/// — alone and in a pipeline.
fn scripts_with_upstash_shebang_flags_run(backend: &RedisBackend) {
    let direct: redis::RedisResult<String> =
        redis::cmd("EVAL").arg(FLAGGED).arg(1).arg("gw:flag:direct").arg("v").query(&mut backend.redis());
    assert!(direct.unwrap_err().to_string().contains("allow-key-locking"), "Redis itself refuses the flag");
    let call = |path: &str, body: serde_json::Value| {
        backend.gateway_call("POST", path, &[AUTH], Some(body.to_string().as_bytes()))
    };
    let eval = call("/", json!(["EVAL", FLAGGED, 1, "gw:flag:eval", "one"]));
    assert_eq!((eval.status, eval.json()), (200, json!({"result": "OK"})), "{}", eval.body);
    assert_eq!(redis_get(backend, "gw:flag:eval").as_deref(), Some("one"));
    let load = call("/", json!(["SCRIPT", "LOAD", FLAGGED]));
    assert_eq!(load.json(), json!({"result": FLAGGED_SHA1}), "the original's hash, as Upstash answers");
    let evalsha = call("/", json!(["EVALSHA", FLAGGED_SHA1, 1, "gw:flag:sha", "two"]));
    assert_eq!(evalsha.json(), json!({"result": "OK"}), "{}", evalsha.body);
    assert_eq!(redis_get(backend, "gw:flag:sha").as_deref(), Some("two"));
    let pipeline = call(
        "/pipeline",
        json!([
            ["EVALSHA", FLAGGED_SHA1, 1, "gw:flag:pipe", "three"],
            ["SCRIPT", "EXISTS", FLAGGED_SHA1, "0000000000000000000000000000000000000000"]
        ]),
    );
    assert_eq!(pipeline.json(), json!([{"result": "OK"}, {"result": [1, 0]}]), "{}", pipeline.body);
    assert_eq!(redis_get(backend, "gw:flag:pipe").as_deref(), Some("three"));
}

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

/// `POST {url}{path}` with `token`, to a gateway of the test's own: status and body.
fn post_as(url: &str, token: &str, path: &str, body: &[u8]) -> (u16, String) {
    let answer = ureq::post(&format!("{url}{path}"))
        .header("authorization", &format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.into_body().read_to_string().unwrap())
}

/// The SDK's answers, from `tests/gateway/sdk.mjs`.
fn sdk(url: &str, token: &str, scenario: &str, extra_ca: Option<&std::path::Path>) -> serde_json::Value {
    let root = edgesync_e2e::harness::repo_root();
    let mut command = std::process::Command::new("node");
    command.current_dir(&root).arg(root.join("tests/gateway/sdk.mjs")).args([url, token, scenario]);
    if let Some(ca) = extra_ca {
        command.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let output = command.output().expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "sdk.mjs failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn redis_get(backend: &RedisBackend, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut backend.redis()).unwrap()
}

/// The official SDK, as a user would call it: strings, JSON values, non-ASCII (the SDK asks
/// for base64 responses), TTLs, hashes, sorted sets, sets, counters, pipelines, transactions,
/// deletes — each answer what redis-server holds; `FLUSHALL` is denied to this token.
fn the_upstash_sdk_runs_everyday_commands(backend: &RedisBackend) {
    let seen = sdk(&backend.gateway_url, REDIS_TOKEN, "everyday", None);
    assert_eq!(seen["set"], "OK", "{seen}");
    assert_eq!(seen["str"], "hello");
    assert_eq!(seen["json"], json!({"price": "0.0150", "n": 3}));
    assert_eq!(redis_get(backend, "sdk:json").as_deref(), Some(r#"{"price":"0.0150","n":3}"#));
    assert_eq!(seen["unicode"], "ünïcødé ✓");
    assert_eq!(redis_get(backend, "sdk:uni").as_deref(), Some("ünïcødé ✓"));
    assert!(seen["ttl"].as_i64().is_some_and(|ttl| (1..=100).contains(&ttl)), "{seen}");
    assert_eq!(seen["hash"], json!({"a": 1, "b": "two"}), "the SDK parses numbers it reads");
    assert_eq!(seen["zset"], json!(["one", 1, "two", 2]));
    assert_eq!(seen["set_members"], json!(["x", "y"]));
    assert_eq!(seen["incr"], 1);
    assert_eq!(seen["pipeline"], json!(["OK", 2, 2]));
    assert_eq!(seen["multi"], json!(["OK", 2, "ab"]));
    assert_eq!((seen["del"].as_i64(), &seen["gone"]), (Some(1), &serde_json::Value::Null));
    assert_eq!(redis_get(backend, "sdk:str"), None);
    assert!(seen["flushall"]["error"].as_str().unwrap().contains("NOPERM"), "{seen}");
    assert_eq!(redis_get(backend, "sdk:uni").as_deref(), Some("ünïcødé ✓"), "FLUSHALL changed nothing");
}

/// Time one authenticated command takes from a second client, with its answer.
fn timed(backend: &RedisBackend, body: &[u8]) -> (std::time::Duration, u16, serde_json::Value) {
    let started = std::time::Instant::now();
    let answer = backend.gateway_call("POST", "/", &[AUTH], Some(body));
    (started.elapsed(), answer.status, answer.json())
}

/// Each command that would change the shared connection is refused with an Upstash-shaped
/// error, and a second client's writes and reads land in db 0, answer normally and fast.
fn connection_state_commands_change_nothing_for_others(backend: &RedisBackend) {
    for (i, command) in [
        r#"["SUBSCRIBE","c"]"#,
        r#"["PSUBSCRIBE","c*"]"#,
        r#"["SELECT","1"]"#,
        r#"["MULTI"]"#,
        r#"["CLIENT","REPLY","OFF"]"#,
        r#"["CLIENT","PAUSE","10000"]"#,
        r#"["MONITOR"]"#,
        r#"["HELLO","3"]"#,
        r#"["RESET"]"#,
        r#"["QUIT"]"#,
        r#"["AUTH","x"]"#,
        r#"["WATCH","k"]"#,
    ]
    .iter()
    .enumerate()
    {
        let refused = backend.gateway_call("POST", "/", &[AUTH], Some(command.as_bytes()));
        assert_eq!(refused.status, 400, "{command}: {}", refused.body);
        assert!(refused.json()["error"].as_str().unwrap().starts_with("ERR"), "{command}: {}", refused.body);
        let key = format!("iso:{i}");
        let (took, status, body) = timed(backend, format!(r#"["SET","{key}","v{i}"]"#).as_bytes());
        assert_eq!((status, &body), (200, &json!({"result": "OK"})), "after {command}");
        assert!(took < std::time::Duration::from_secs(1), "after {command}: {took:?}");
        assert_eq!(redis_get(backend, &key), Some(format!("v{i}")), "after {command}: written to db 0");
    }
    let monitor = backend.gateway_call("GET", "/monitor", &[AUTH], None);
    assert_eq!(monitor.status, 400);
    assert!(monitor.json()["error"].as_str().unwrap().contains("not served"), "{}", monitor.body);
    let inside = backend.gateway_call("POST", "/multi-exec", &[AUTH], Some(br#"[["SET","iso:t","1"],["SELECT","1"]]"#));
    assert_eq!(inside.status, 400, "{}", inside.body);
    assert_eq!(redis_get(backend, "iso:t"), None, "a refused transaction runs nothing");
}

/// `BLPOP q 0` (forever) waits on its own connection: meanwhile another client's commands
/// answer at once, and the blocked one ends at the gateway's bound, or with the value pushed.
fn blocking_commands_wait_alone_and_bounded(backend: &RedisBackend) {
    let (_gateway, url) = backend
        .start_gateway(&["--max-block-ms", "1500"], &[("GATEWAY_TOKEN", REDIS_TOKEN)])
        .expect("a gateway with a short block bound");
    let post = |body: &'static [u8]| {
        let url = url.clone();
        move || {
            let started = std::time::Instant::now();
            let (status, body) = post_as(&url, REDIS_TOKEN, "/", body);
            (started.elapsed(), status, body)
        }
    };
    let blocked = std::thread::spawn(post(br#"["BLPOP","block:q","0"]"#));
    let pushed = std::thread::spawn(post(br#"["BLPOP","block:p","0"]"#));
    edgesync_e2e::process::wait_until("both BLPOPs blocking in Redis", std::time::Duration::from_secs(5), || {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut backend.redis()).ok()?;
        (clients.lines().filter(|line| line.contains("cmd=blpop")).count() >= 2).then_some(())
    })
    .unwrap();
    for i in 0..5 {
        let (took, status, _) = timed(backend, format!(r#"["SET","block:{i}","x"]"#).as_bytes());
        assert!(status == 200 && took < std::time::Duration::from_millis(500), "others are not held up: {took:?}");
    }
    let _: () = redis::cmd("RPUSH").arg("block:p").arg("v").query(&mut backend.redis()).unwrap();
    let (took, status, body) = pushed.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"result":["block:p","v"]}"#), "took {took:?}");
    let (took, status, body) = blocked.join().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limit"), "{body}");
    assert!(took >= std::time::Duration::from_millis(1400) && took < std::time::Duration::from_secs(5), "{took:?}");
}

/// Administrative commands answer `NOPERM` (403, Upstash's error shape) and change nothing;
/// `CONFIG GET` (edgesync's stats read it) still answers; an admin token may run them.
fn administrative_commands_are_denied_and_change_nothing(backend: &RedisBackend) {
    let _: () = redis::cmd("SET").arg("admin:kept").arg("1").query(&mut backend.redis()).unwrap();
    let size = || -> i64 { redis::cmd("DBSIZE").query(&mut backend.redis()).unwrap() };
    let before = size();
    for command in [
        r#"["FLUSHALL"]"#,
        r#"["FLUSHDB"]"#,
        r#"["CONFIG","SET","maxmemory","1"]"#,
        r#"["SCRIPT","FLUSH"]"#,
        r#"["DEBUG","SLEEP","0"]"#,
        r#"["SHUTDOWN","NOSAVE"]"#,
        r#"["REPLICAOF","127.0.0.1","1"]"#,
        r#"["SAVE"]"#,
        r#"["ACL","LIST"]"#,
    ] {
        let denied = backend.gateway_call("POST", "/", &[AUTH], Some(command.as_bytes()));
        assert_eq!(denied.status, 403, "{command}: {}", denied.body);
        assert!(denied.json()["error"].as_str().unwrap().starts_with("NOPERM"), "{}", denied.body);
    }
    let in_pipeline =
        backend.gateway_call("POST", "/pipeline", &[AUTH], Some(br#"[["GET","admin:kept"],["FLUSHALL"]]"#));
    assert_eq!(in_pipeline.json()[0], json!({"result": "1"}));
    assert!(in_pipeline.json()[1]["error"].as_str().unwrap().starts_with("NOPERM"), "{}", in_pipeline.body);
    assert_eq!(size(), before, "nothing was flushed");
    let maxmemory: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").query(&mut backend.redis()).unwrap();
    assert_eq!(maxmemory[1], "0", "CONFIG SET changed nothing");
    let config_get = backend.gateway_call("POST", "/", &[AUTH], Some(br#"["CONFIG","GET","maxmemory-policy"]"#));
    assert_eq!(config_get.status, 200, "{}", config_get.body);
    let stats = backend.gateway_call("GET", "/__gateway/stats", &[], None);
    assert_eq!(stats.status, 401, "the counters need a token");

    let (_gateway, url) =
        backend.start_gateway(&[], &[("GATEWAY_ADMIN_TOKEN", "admin-token")]).expect("a gateway with an admin token");
    let (status, _) = post_as(&url, "admin-token", "/", br#"["CONFIG","SET","maxmemory-samples","6"]"#);
    assert_eq!(status, 200, "an admin token may");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-samples").arg("5").query(&mut backend.redis()).unwrap();
}

/// A read-only token reads (through the official SDK) and is refused every write, which
/// changes nothing.
fn read_only_tokens_only_read(backend: &RedisBackend) {
    let (_gateway, url) = backend
        .start_gateway(&[], &[("GATEWAY_TOKEN", REDIS_TOKEN), ("GATEWAY_READ_ONLY_TOKEN", "reader")])
        .expect("a gateway with a read-only token");
    let _: () =
        redis::cmd("SET").arg("sdk:json").arg(r#"{"price":"0.0150","n":3}"#).query(&mut backend.redis()).unwrap();
    let _: () = redis::cmd("HSET").arg("sdk:hash").arg("a").arg("1").query(&mut backend.redis()).unwrap();
    let seen = sdk(&url, "reader", "read-only", None);
    assert_eq!(seen["get"], json!({"price": "0.0150", "n": 3}), "{seen}");
    assert_eq!(seen["hgetall"]["a"], 1);
    for write in ["set", "del"] {
        assert!(seen[write]["error"].as_str().unwrap().contains("read-only"), "{write}: {seen}");
    }
    assert_eq!(redis_get(backend, "sdk:json").as_deref(), Some(r#"{"price":"0.0150","n":3}"#), "unchanged");
    let exists: bool = redis::cmd("EXISTS").arg("sdk:hash").query(&mut backend.redis()).unwrap();
    assert!(exists, "not deleted");
}

/// Beyond loopback the gateway needs TLS or an explicit `--insecure-listen`: plain text on
/// 0.0.0.0 is refused before anything binds; with the per-run CA's certificate it serves
/// HTTPS (bound to 127.0.0.1 here, as every server in the tests), and the SDK trusts it
/// through that CA only.
fn tls_beyond_loopback_with_a_per_run_ca(backend: &RedisBackend) {
    let refused = std::process::Command::new(edgesync_e2e::harness::gateway_binary())
        .args(["--listen", "0.0.0.0:0", "--redis-url", &backend.redis_url])
        .env("GATEWAY_TOKEN", REDIS_TOKEN)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0 in plain text"), "{stderr}");

    let (ca, certificate, key) = backend.tls_files();
    let (_gateway, url) = backend
        .start_gateway(
            &["--tls-cert", certificate.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
            &[("GATEWAY_TOKEN", REDIS_TOKEN)],
        )
        .expect("a TLS gateway");
    assert!(url.starts_with("https://127.0.0.1:"));
    let seen = sdk(&url, REDIS_TOKEN, "everyday", Some(ca));
    assert_eq!((seen["str"].as_str(), seen["pipeline"].clone()), (Some("hello"), json!(["OK", 2, 2])), "{seen}");
    let plain = std::process::Command::new("node")
        .args(["-e", &format!("fetch('{url}/').then(() => process.exit(0), () => process.exit(3))")])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(3), "without the CA the certificate is not trusted");
}

/// Over the body, command-count or response limit: a JSON error, and nothing ran.
fn limits_answer_upstash_shaped_errors(backend: &RedisBackend) {
    let (_gateway, url) = backend
        .start_gateway(
            &["--max-body-bytes", "200", "--max-commands", "2", "--max-response-bytes", "64"],
            &[("GATEWAY_TOKEN", REDIS_TOKEN)],
        )
        .expect("a gateway with small limits");
    let post = |path: &str, body: &[u8]| {
        let (status, body) = post_as(&url, REDIS_TOKEN, path, body);
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    let big = format!(r#"["SET","limits:big","{}"]"#, "x".repeat(300));
    let (status, body) = post("/", big.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("200 bytes"), "{body}");
    let (status, body) =
        post("/pipeline", br#"[["SET","limits:a","1"],["SET","limits:b","1"],["SET","limits:c","1"]]"#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit is 2"), "{body}");
    assert_eq!(redis_get(backend, "limits:a"), None, "an over-long pipeline runs nothing");
    let _: () = redis::cmd("SET").arg("limits:wide").arg("y".repeat(100)).query(&mut backend.redis()).unwrap();
    let (status, body) = post("/", br#"["GET","limits:wide"]"#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("exceeds the limit of 64 bytes"), "{body}");
}
