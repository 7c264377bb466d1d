//! `edgesync-gateway` in front of a Redis Cluster (3 masters, a replica each, real
//! `redis-server`s on 127.0.0.1), given the URL of one node: the official `@upstash/redis`
//! SDK's everyday commands land on every master and read back from the cluster itself; a
//! pipeline across slots answers in request order; SCAN walks every master and DBSIZE sums
//! them; scripts with Upstash's shebang flags run by EVAL and by their original hash; a
//! subscriber receives what is published; a failover during writes loses none and answers no
//! raw MOVED.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgesync_e2e::binaries;
use edgesync_e2e::cluster::{node, RedisCluster, SlotMove};
use edgesync_e2e::harness::{Backing, RedisBackend, REDIS_TOKEN};
use edgesync_e2e::process::wait_until;
use edgesync_e2e::suite::run_suite;
use serde_json::{json, Value};

fn main() {
    run_suite(
        || RedisBackend::start_on(&binaries!(), Backing::Cluster),
        &[
            (
                "the_upstash_sdk_runs_everyday_commands_on_a_cluster",
                the_upstash_sdk_runs_everyday_commands_on_a_cluster,
            ),
            ("a_pipeline_across_slots_answers_in_request_order", a_pipeline_across_slots_answers_in_request_order),
            ("scan_walks_every_master_and_dbsize_sums_them", scan_walks_every_master_and_dbsize_sums_them),
            ("keyless_commands_have_their_cluster_meaning", keyless_commands_have_their_cluster_meaning),
            (
                "scripts_with_upstash_shebang_flags_run_on_a_cluster",
                scripts_with_upstash_shebang_flags_run_on_a_cluster,
            ),
            ("a_subscriber_receives_what_is_published", a_subscriber_receives_what_is_published),
            ("a_slot_moving_between_masters_is_followed", a_slot_moving_between_masters_is_followed),
            ("a_looping_script_is_ended_on_its_master", a_looping_script_is_ended_on_its_master),
            ("a_tls_cluster_is_reached_over_tls_on_every_node", a_tls_cluster_is_reached_over_tls_on_every_node),
            (
                "blocking_commands_and_read_only_tokens_on_a_cluster",
                blocking_commands_and_read_only_tokens_on_a_cluster,
            ),
            (
                "a_failover_during_writes_loses_none_and_answers_no_moved",
                a_failover_during_writes_loses_none_and_answers_no_moved,
            ),
            (
                "a_master_that_stops_answering_fails_only_its_commands",
                a_master_that_stops_answering_fails_only_its_commands,
            ),
        ],
    )
}

const AUTH: (&str, &str) = ("authorization", "Bearer e2e-redis-token");

/// `body` (JSON) posted to `path` of the cluster's gateway: status and JSON answer.
fn call(backend: &RedisBackend, path: &str, body: Value) -> (u16, Value) {
    let answer = backend.gateway_call("POST", path, &[AUTH], Some(body.to_string().as_bytes()));
    let json = answer.json();
    (answer.status, json)
}

fn cluster(backend: &RedisBackend) -> &RedisCluster {
    backend.cluster().expect("the suite's backend is a cluster")
}

/// What the cluster itself holds at `key` (a cluster-aware client, not the gateway).
fn cluster_get(backend: &RedisBackend, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut cluster(backend).client()).unwrap()
}

/// The SDK's answers, from `tests/gateway/sdk.mjs`.
fn sdk(url: &str, scenario: &str) -> Value {
    let root = edgesync_e2e::harness::repo_root();
    let output = std::process::Command::new("node")
        .current_dir(&root)
        .arg(root.join("tests/gateway/sdk.mjs"))
        .args([url, REDIS_TOKEN, scenario])
        .output()
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "sdk.mjs failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The SDK as a cluster user calls it: every answer what the cluster holds, the keys on more
/// than one master; a transaction and an MGET on one hash tag work, across slots they get
/// Upstash's error shape naming CROSSSLOT and hash tags; FLUSHALL stays denied.
fn the_upstash_sdk_runs_everyday_commands_on_a_cluster(backend: &RedisBackend) {
    let seen = sdk(&backend.gateway_url, "cluster");
    assert_eq!(seen["set"], "OK", "{seen}");
    assert_eq!(seen["str"], "hello");
    assert_eq!(seen["json"], json!({"price": "0.0150", "n": 3}));
    assert_eq!(cluster_get(backend, "sdk:json").as_deref(), Some(r#"{"price":"0.0150","n":3}"#));
    assert_eq!(seen["unicode"], "ünïcødé ✓");
    assert_eq!(cluster_get(backend, "sdk:uni").as_deref(), Some("ünïcødé ✓"));
    assert!(seen["ttl"].as_i64().is_some_and(|ttl| (1..=100).contains(&ttl)), "{seen}");
    assert_eq!(seen["hash"], json!({"a": 1, "b": "two"}));
    let hash: std::collections::BTreeMap<String, String> =
        redis::cmd("HGETALL").arg("sdk:hash").query(&mut cluster(backend).client()).unwrap();
    assert_eq!(hash.get("b").map(String::as_str), Some("two"));
    assert_eq!(seen["zset"], json!(["one", 1, "two", 2]));
    assert_eq!(seen["set_members"], json!(["x", "y"]));
    assert_eq!(seen["incr"], 1);
    assert_eq!(seen["pipeline"], json!(["OK", 2, "OK", 2, "q", "hello"]), "three masters, request order");
    assert_eq!(cluster_get(backend, "sdk:q").as_deref(), Some("q"));
    assert_eq!(seen["multi"], json!(["OK", 2, "OK", "ab"]), "{seen}");
    assert_eq!(cluster_get(backend, "{sdk}:m").as_deref(), Some("ab"));
    let cross = seen["cross_slot_multi"]["error"].as_str().unwrap_or_else(|| panic!("{seen}"));
    assert!(cross.contains("CROSSSLOT") && cross.contains("hash tag"), "{cross}");
    assert_eq!(cluster_get(backend, "sdk:a"), None, "a refused transaction ran nothing");
    assert_eq!(seen["mget"], json!(["ab", "c", null]));
    assert!(seen["cross_slot_mget"]["error"].as_str().is_some_and(|e| e.contains("CROSSSLOT")), "{seen}");
    assert_eq!((seen["del"].as_i64(), &seen["gone"]), (Some(1), &Value::Null));
    assert_eq!(cluster_get(backend, "sdk:str"), None);
    let per_master = cluster(backend).keys_per_master();
    assert!(per_master.iter().filter(|keys| **keys > 0).count() >= 2, "keys on several masters: {per_master:?}");
    assert_eq!(seen["dbsize"].as_u64(), Some(per_master.iter().sum::<u64>()), "{seen}");
    assert!(seen["flushall"]["error"].as_str().unwrap().contains("NOPERM"), "{seen}");
    assert_eq!(cluster_get(backend, "sdk:uni").as_deref(), Some("ünïcødé ✓"), "FLUSHALL changed nothing");
}

/// 30 keys over every master in one pipeline, with an error in the middle: one answer per
/// command in request order, each value what the cluster holds.
fn a_pipeline_across_slots_answers_in_request_order(backend: &RedisBackend) {
    let keys: Vec<String> = (0..30).map(|i| format!("pipe:{i}")).collect();
    let mut commands: Vec<Value> =
        keys.iter().enumerate().map(|(i, key)| json!(["SET", key, format!("v{i}")])).collect();
    commands.push(json!(["INCR", "pipe:0"]));
    commands.extend(keys.iter().map(|key| json!(["GET", key])));
    commands.push(json!(["MGET", "pipe:1", "pipe:2"]));
    let (status, answers) = call(backend, "/pipeline", Value::Array(commands));
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 62);
    assert!(answers[..30].iter().all(|a| *a == json!({"result": "OK"})), "{answers:?}");
    assert_eq!(answers[30], json!({"error": "ERR value is not an integer or out of range"}));
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(answers[31 + i], json!({"result": format!("v{i}")}), "{key}");
        assert_eq!(cluster_get(backend, key), Some(format!("v{i}")));
    }
    assert!(answers[61]["error"].as_str().unwrap().starts_with("CROSSSLOT"), "{}", answers[61]);
    let slots: BTreeSet<u16> = keys.iter().map(|k| edgesync_core::cluster::slot::slot_of(k.as_bytes())).collect();
    assert!(slots.len() > 20, "the keys span many slots");
}

/// SCAN through the gateway, followed to cursor 0, returns every key of every master (the
/// whole set, checked against each master's own KEYS), and DBSIZE is the masters' sum.
fn scan_walks_every_master_and_dbsize_sums_them(backend: &RedisBackend) {
    let expected: BTreeSet<String> = (0..300).map(|i| format!("scan:{i}")).collect();
    let sets: Vec<Value> = expected.iter().map(|key| json!(["SET", key, "1"])).collect();
    assert_eq!(call(backend, "/pipeline", Value::Array(sets)).0, 200);
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = call(backend, "/", json!(["SCAN", cursor, "MATCH", "scan:*", "COUNT", 50]));
        assert_eq!(status, 200, "{page}");
        cursor = page["result"][0].as_str().unwrap().to_owned();
        seen.extend(page["result"][1].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()));
        pages += 1;
        assert!(pages < 1_000, "the scan ends");
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, expected, "every key of every master, none else");
    let mut on_masters = BTreeSet::new();
    for port in cluster(backend).ports_with_role("master") {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("scan:*").query(&mut client.get_connection().unwrap()).unwrap();
        assert!(!keys.is_empty(), "every master holds some");
        on_masters.extend(keys);
    }
    assert_eq!(on_masters, expected);
    let (_, dbsize) = call(backend, "/", json!(["DBSIZE"]));
    assert_eq!(dbsize["result"].as_u64(), Some(cluster(backend).keys_per_master().iter().sum::<u64>()));
    let (status, bad) = call(backend, "/", json!(["SCAN", "not-a-cursor"]));
    assert_eq!((status, bad["error"].as_str().is_some()), (400, true), "{bad}");
}

/// PING, INFO and CONFIG GET answer from a node; FLUSHDB stays denied; the path form routes
/// by key too.
fn keyless_commands_have_their_cluster_meaning(backend: &RedisBackend) {
    assert_eq!(call(backend, "/", json!(["PING"])), (200, json!({"result": "PONG"})));
    let (status, info) = call(backend, "/", json!(["INFO", "cluster"]));
    assert_eq!(status, 200);
    assert!(info["result"].as_str().unwrap().contains("cluster_enabled:1"), "{info}");
    let (status, config) = call(backend, "/", json!(["CONFIG", "GET", "maxmemory-policy"]));
    assert_eq!((status, config["result"][0].as_str()), (200, Some("maxmemory-policy")), "{config}");
    let (status, flush) = call(backend, "/", json!(["FLUSHDB"]));
    assert_eq!(status, 403, "{flush}");
    for i in 0..6 {
        let set = backend.gateway_call("GET", &format!("/set/path:{i}/v{i}"), &[AUTH], None);
        assert_eq!(set.json(), json!({"result": "OK"}));
        assert_eq!(cluster_get(backend, &format!("path:{i}")), Some(format!("v{i}")));
    }
}

/// A script with a shebang flag Upstash accepts and Redis 7.0 refuses, and its SHA-1.
const FLAGGED: &str = "#!lua flags=allow-key-locking\nreturn redis.call('SET', KEYS[1], ARGV[1])";
const FLAGGED_SHA1: &str = "4f900878e3823883d5f8f3f26573b26460929ead";

/// EVAL of the flagged script runs on the master of its key; SCRIPT LOAD answers the
/// original's hash and loads it on every master, so EVALSHA of that hash runs on keys of
/// every master, also after the masters lost their scripts (NOSCRIPT: loaded again); a
/// script whose keys span slots gets the CROSSSLOT error.
fn scripts_with_upstash_shebang_flags_run_on_a_cluster(backend: &RedisBackend) {
    let (status, eval) = call(backend, "/", json!(["EVAL", FLAGGED, 1, "script:eval", "one"]));
    assert_eq!((status, &eval), (200, &json!({"result": "OK"})));
    assert_eq!(cluster_get(backend, "script:eval").as_deref(), Some("one"));
    let (_, load) = call(backend, "/", json!(["SCRIPT", "LOAD", FLAGGED]));
    assert_eq!(load, json!({"result": FLAGGED_SHA1}), "the original's hash, as Upstash answers");
    let keys: Vec<String> = (0..12).map(|i| format!("script:sha:{i}")).collect();
    let calls: Vec<Value> = keys.iter().map(|key| json!(["EVALSHA", FLAGGED_SHA1, 1, key, key])).collect();
    let (status, answers) = call(backend, "/pipeline", Value::Array(calls));
    assert_eq!(status, 200);
    assert!(answers.as_array().unwrap().iter().all(|a| *a == json!({"result": "OK"})), "{answers}");
    for key in &keys {
        assert_eq!(cluster_get(backend, key).as_deref(), Some(key.as_str()));
    }
    let (_, exists) = call(backend, "/", json!(["SCRIPT", "EXISTS", FLAGGED_SHA1]));
    assert_eq!(exists, json!({"result": [1]}), "on every master");
    // A master that lost its scripts (as a replica promoted after the load has none) answers
    // NOSCRIPT; the gateway loads the script there and runs it.
    for port in cluster(backend).ports_with_role("master") {
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut node(port)).unwrap();
    }
    let (_, exists) = call(backend, "/", json!(["SCRIPT", "EXISTS", FLAGGED_SHA1]));
    assert_eq!(exists, json!({"result": [0]}), "flushed everywhere");
    let calls: Vec<Value> = keys.iter().map(|key| json!(["EVALSHA", FLAGGED_SHA1, 1, key, "again"])).collect();
    let (status, answers) = call(backend, "/pipeline", Value::Array(calls));
    assert_eq!(status, 200);
    assert!(answers.as_array().unwrap().iter().all(|a| *a == json!({"result": "OK"})), "{answers}");
    assert_eq!(cluster_get(backend, &keys[3]).as_deref(), Some("again"));
    let (status, cross) = call(backend, "/", json!(["EVAL", "return 1", 2, "script:a", "script:b"]));
    assert_eq!(status, 400);
    assert!(cross["error"].as_str().unwrap().contains("CROSSSLOT"), "{cross}");
}

/// The SDK's Subscriber on the cluster gateway gets what is published through it, on a
/// channel and on a pattern.
fn a_subscriber_receives_what_is_published(backend: &RedisBackend) {
    let seen = sdk(&backend.gateway_url, "subscribe");
    assert_eq!(
        seen["channel"],
        json!({"subscribed": 1, "receivers": 1, "channel": "sdk:news", "message": {"price": "0.0150"}}),
        "{seen}"
    );
    assert_eq!(seen["pattern"]["channel"], "sdk:price:QRLUSDT", "{seen}");
}

/// A slot resharded as `redis-cli --cluster reshard` does, checked at each step through the
/// gateway: while half its keys have moved, reads of either half and a new key's write follow
/// `ASK` to the importing master; once every master knows the new owner, `MOVED` is followed.
/// No answer mentions either redirection.
fn a_slot_moving_between_masters_is_followed(backend: &RedisBackend) {
    let keys: Vec<String> = (0..10).map(|i| format!("{{ask}}{i}")).collect();
    let sets: Vec<Value> = keys.iter().map(|key| json!(["SET", key, key])).collect();
    assert_eq!(call(backend, "/pipeline", Value::Array(sets)).0, 200);
    let moving = SlotMove::begin(cluster(backend), edgesync_core::cluster::slot::slot_of(keys[0].as_bytes()));
    moving.migrate(&keys[..5]);
    let reads: Vec<Value> = keys.iter().map(|key| json!(["GET", key])).collect();
    let stats = || backend.gateway_call("GET", "/__gateway/stats", &[AUTH], None).json()["cluster"].clone();
    let before = stats();
    let (status, answers) = call(backend, "/pipeline", Value::Array(reads.clone()));
    assert_eq!(status, 200);
    assert!(!answers.to_string().contains("ASK") && !answers.to_string().contains("MOVED"), "{answers}");
    let expected: Vec<Value> = keys.iter().map(|key| json!({"result": key})).collect();
    assert_eq!(answers, Value::Array(expected.clone()), "both halves, during the move");
    assert_eq!(call(backend, "/", json!(["SET", "{ask}new", "n"])), (200, json!({"result": "OK"})));
    moving.finish();
    let (status, answers) = call(backend, "/pipeline", Value::Array(reads));
    assert_eq!((status, answers), (200, Value::Array(expected)), "after the move");
    let after = stats();
    let grew = |field: &str| after[field].as_u64().unwrap() > before[field].as_u64().unwrap();
    assert!(grew("ask") && grew("moved"), "both redirections were followed: {before} → {after}");
    assert_eq!(after["masters"], 3);
    assert_eq!(call(backend, "/", json!(["GET", "{ask}new"])), (200, json!({"result": "n"})));
    let moved: Option<String> = redis::cmd("GET").arg("{ask}new").query(&mut node(moving.to)).unwrap();
    assert_eq!(moved.as_deref(), Some("n"), "the new key was written to the importing master");
}

/// A script that loops on one master is ended at the gateway's bound: the kill goes to every
/// master, and the one running it ends it; every master answers at once afterwards.
fn a_looping_script_is_ended_on_its_master(backend: &RedisBackend) {
    let masters = cluster(backend).ports_with_role("master");
    // Redis reads other clients (the kill) only past its busy-reply-threshold.
    let threshold = |ms: &str| {
        for port in &masters {
            let _: () =
                redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(ms).query(&mut node(*port)).unwrap();
        }
    };
    threshold("200");
    let (_gateway, url) =
        backend.start_gateway(&["--max-script-ms", "300"], &[("GATEWAY_TOKEN", REDIS_TOKEN)]).expect("a gateway");
    let started = std::time::Instant::now();
    let (status, ended) = post_as(&url, REDIS_TOKEN, "/", json!(["EVAL", "while true do end", 1, "loop:key"]));
    threshold("5000");
    assert_eq!(status, 400, "{ended}");
    assert!(ended["error"].as_str().unwrap().contains("SCRIPT KILL"), "{ended}");
    assert!(started.elapsed() < Duration::from_secs(5), "ended at the bound: {:?}", started.elapsed());
    for port in masters {
        let pong: String = redis::cmd("PING").query(&mut node(port)).unwrap();
        assert_eq!(pong, "PONG");
    }
    assert_eq!(call(backend, "/", json!(["GET", "loop:key"])), (200, json!({"result": null})));
}

/// A cluster whose nodes speak TLS only, certificates from a private CA: given one node's
/// `rediss://` URL and `--redis-tls-ca`, the gateway makes its users on every node and writes
/// and reads keys on every master, over TLS.
fn a_tls_cluster_is_reached_over_tls_on_every_node(backend: &RedisBackend) {
    let (ca, certificate, key) = backend.tls_files();
    let tls = RedisCluster::start_tls(3, 0, ca, certificate, key).expect("a TLS-only cluster");
    let (_gateway, url) = backend
        .start_gateway(
            &["--redis-url", &tls.urls()[0], "--redis-tls-ca", ca.to_str().unwrap()],
            &[("GATEWAY_TOKEN", REDIS_TOKEN)],
        )
        .expect("a gateway in front of the TLS cluster");
    let keys: Vec<String> = (0..30).map(|i| format!("tls:{i}")).collect();
    let sets: Vec<Value> = keys.iter().map(|key| json!(["SET", key, key])).collect();
    let (status, answers) = post_as(&url, REDIS_TOKEN, "/pipeline", Value::Array(sets));
    assert_eq!(status, 200, "{answers}");
    let gets: Vec<Value> = keys.iter().map(|key| json!(["GET", key])).collect();
    let (_, answers) = post_as(&url, REDIS_TOKEN, "/pipeline", Value::Array(gets));
    let expected: Vec<Value> = keys.iter().map(|key| json!({"result": key})).collect();
    assert_eq!(answers, Value::Array(expected));
    let per_master = tls.keys_per_master();
    assert!(per_master.iter().all(|keys| *keys > 0), "every master holds some: {per_master:?}");
    assert_eq!(per_master.iter().sum::<u64>(), 30);
}

/// `POST {url}{path}` with `token`: status and JSON answer.
fn post_as(url: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let mut answer = ureq::post(&format!("{url}{path}"))
        .header("authorization", &format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(body.to_string())
        .unwrap();
    let status = answer.status().as_u16();
    (status, serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap())
}

/// A blocking command waits on the master of its key, on a connection of its own, and ends
/// with the value pushed or at its timeout; a read-only token (its ACL user made on every
/// node) reads any master and writes none.
fn blocking_commands_and_read_only_tokens_on_a_cluster(backend: &RedisBackend) {
    let _: () = redis::cmd("RPUSH").arg("block:ready").arg("v").query(&mut cluster(backend).client()).unwrap();
    assert_eq!(call(backend, "/", json!(["BLPOP", "block:ready", 1])), (200, json!({"result": ["block:ready", "v"]})));
    assert_eq!(call(backend, "/", json!(["BLPOP", "block:empty", 1])), (200, json!({"result": null})));
    let (_gateway, url) = backend
        .start_gateway(&[], &[("GATEWAY_TOKEN", REDIS_TOKEN), ("GATEWAY_READ_ONLY_TOKEN", "reader")])
        .expect("a gateway with a read-only token");
    for i in 0..6 {
        let _: () = redis::cmd("SET").arg(format!("ro:{i}")).arg(i).query(&mut cluster(backend).client()).unwrap();
    }
    let reads: Vec<Value> = (0..6).map(|i| json!(["GET", format!("ro:{i}")])).collect();
    let (status, answers) = post_as(&url, "reader", "/pipeline", Value::Array(reads));
    assert_eq!(status, 200);
    assert_eq!(answers, json!((0..6).map(|i| json!({"result": i.to_string()})).collect::<Vec<_>>()));
    let (status, refused) = post_as(&url, "reader", "/", json!(["SET", "ro:0", "x"]));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(cluster_get(backend, "ro:0").as_deref(), Some("0"));
}

/// Writes and reads through the gateway, from two clients, while a replica takes over its
/// master (`CLUSTER FAILOVER`): every write answered OK is in the cluster afterwards, every
/// read answered the value written, and no answer mentions MOVED.
fn a_failover_during_writes_loses_none_and_answers_no_moved(backend: &RedisBackend) {
    // A replica still waiting for its first sync has none of its master's writes.
    cluster(backend).wait_replicas_synced().unwrap();
    let moved = || {
        let stats = backend.gateway_call("GET", "/__gateway/stats", &[AUTH], None).json();
        stats["cluster"]["moved"].as_u64().unwrap()
    };
    let moved_before = moved();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let stop = Arc::clone(&stop);
            let done = Arc::clone(&done);
            let url = backend.gateway_url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                let post = |body: Value| -> (u16, String) {
                    let mut answer = agent
                        .post(&format!("{url}/pipeline"))
                        .header("authorization", &format!("Bearer {REDIS_TOKEN}"))
                        .send(body.to_string())
                        .unwrap();
                    (answer.status().as_u16(), answer.body_mut().read_to_string().unwrap())
                };
                let mut written = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) || i < 50 {
                    let key = format!("failover:{writer}:{i}");
                    let (status, body) = post(json!([["SET", key, i], ["GET", key]]));
                    assert!(!body.contains("MOVED"), "a raw MOVED: {body}");
                    assert_eq!(status, 200, "{body}");
                    let answers: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(answers, json!([{"result": "OK"}, {"result": i.to_string()}]), "{key}");
                    written.push((key, i));
                    done.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
                written
            })
        })
        .collect();
    let writes_past = |count: usize| {
        wait_until("writes through the gateway", Duration::from_secs(30), || {
            (done.load(Ordering::SeqCst) >= count).then_some(())
        })
        .unwrap()
    };
    writes_past(50);
    let replica = cluster(backend).ports_with_role("slave")[0];
    let failover = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &replica.to_string(), "CLUSTER", "FAILOVER"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&failover.stdout).trim(), "OK");
    wait_until("the replica to become a master", Duration::from_secs(30), || {
        cluster(backend).ports_with_role("master").contains(&replica).then_some(())
    })
    .unwrap();
    cluster(backend).wait_ok().unwrap();
    writes_past(done.load(Ordering::SeqCst) + 100);
    stop.store(true, Ordering::SeqCst);
    let moved = moved();
    assert!(moved > moved_before, "the failover was followed by MOVED ({moved_before} → {moved})");
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.join().expect("the writers saw no failure"));
    }
    assert!(written.len() >= 100, "{} writes", written.len());
    let mut cluster = cluster(backend).client();
    for (key, value) in &written {
        let stored: Option<String> = redis::cmd("GET").arg(key).query(&mut cluster).unwrap();
        assert_eq!(stored, Some(value.to_string()), "{key} was lost");
    }
    let (status, dbsize) = call(backend, "/", json!(["DBSIZE"]));
    assert_eq!(status, 200, "{dbsize}");
    // The script loaded before the failover runs on every master after it (loaded again
    // where the promoted replica lacks it).
    let calls: Vec<Value> =
        (0..12).map(|i| json!(["EVALSHA", FLAGGED_SHA1, 1, format!("after:{i}"), format!("a{i}")])).collect();
    let (status, answers) = call(backend, "/pipeline", Value::Array(calls));
    assert_eq!(status, 200);
    assert!(answers.as_array().unwrap().iter().all(|a| *a == json!({"result": "OK"})), "{answers}");
    assert_eq!(cluster_get(backend, "after:7").as_deref(), Some("a7"));
}

/// A master that stops answering (its process stopped with SIGSTOP) in the middle of a
/// pipeline over every master: its commands answer errors (after the gateway's response
/// timeout: they were sent and may have run, so they are not sent again), every other
/// command answers its value. Once its replica has taken over, the same pipeline answers
/// whole again.
fn a_master_that_stops_answering_fails_only_its_commands(backend: &RedisBackend) {
    let cluster = cluster(backend);
    cluster.wait_ok().unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("stall:{i}")).collect();
    let sets: Vec<Value> = keys.iter().map(|key| json!(["SET", key, key])).collect();
    assert_eq!(call(backend, "/pipeline", Value::Array(sets)).0, 200);
    cluster.wait_replicas_synced().unwrap();
    let victim = cluster
        .ports_with_role("master")
        .into_iter()
        .find(|port| redis::cmd("GET").arg(&keys[0]).query::<Option<String>>(&mut node(*port)).is_ok())
        .expect("a master serves the first key");
    let on_victim: Vec<bool> =
        keys.iter().map(|key| redis::cmd("GET").arg(key).query::<Option<String>>(&mut node(victim)).is_ok()).collect();
    assert!(on_victim.iter().any(|on| !on), "other masters serve some keys");
    let info: String = redis::cmd("INFO").arg("server").query(&mut node(victim)).unwrap();
    let pid: i32 = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("process_id:"))
        .and_then(|pid| pid.parse().ok())
        .expect("INFO names the process");
    let reads: Vec<Value> = keys.iter().map(|key| json!(["GET", key])).collect();
    // SAFETY: a signal to a redis-server this suite started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let (status, answers) = call(backend, "/pipeline", Value::Array(reads.clone()));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert_eq!(status, 200, "{answers}");
    for ((key, on_victim), answer) in keys.iter().zip(&on_victim).zip(answers.as_array().unwrap()) {
        if *on_victim {
            assert!(answer["error"].as_str().is_some(), "{key}: {answer}");
        } else {
            assert_eq!(*answer, json!({"result": key}), "{key}: answered normally");
        }
    }
    wait_until("the pipeline to answer whole again", Duration::from_secs(30), || {
        let (status, answers) = call(backend, "/pipeline", Value::Array(reads.clone()));
        let expected: Vec<Value> = keys.iter().map(|key| json!({"result": key})).collect();
        (status == 200 && answers == Value::Array(expected)).then_some(())
    })
    .unwrap();
    cluster.wait_ok().unwrap();
}
