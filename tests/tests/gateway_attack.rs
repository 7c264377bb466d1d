//! The gateway probed as an attacker would (issue 32), with the tokens a deployment hands out
//! — full, read-only and admin, `--max-script-ms 1000` — in front of a real redis-server whose
//! `busy-reply-threshold` is 1 s. Each finding of the probe is reproduced and its fix asserted
//! on what Redis holds afterwards (`DBSIZE`, `DUMP` of every planted key, a second server's
//! `DBSIZE`), never on "no error" alone:
//!
//! - a `while true` script through each token, and a looping function, leave Redis answering
//!   within the bound + 1 s; one that wrote first is reported `UNKILLABLE` in health and stats;
//! - `FLUSHALL`, `MIGRATE`, `SWAPDB`, `MOVE`, `FUNCTION LOAD` + `FCALL` through `EVAL`,
//!   `/pipeline`, `/multi-exec` and the path form are refused by Redis's ACL, every key intact;
//! - ACL users that allow a denied command, and empty tokens, stop the start (exit 2);
//! - `%2F` stays inside its argument; a 100 MiB value is refused in RESP2 and JSON, and a
//!   pipeline of fifty 1 MiB values, without the gateway holding them; the read-only token cannot list keys, read `INFO` or touch clients.

use std::process::Command;
use std::time::{Duration, Instant};

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{gateway_binary, RedisBackend, REDIS_TOKEN};
use edgesync_e2e::process::{free_port, wait_until, Service};
use edgesync_e2e::suite::run_suite;
use serde_json::{json, Value};

const READ_TOKEN: &str = "attack-read-token";
const ADMIN_TOKEN: &str = "attack-admin-token";
const SCRIPT_BOUND: Duration = Duration::from_millis(1000);
/// Redis reads other clients only once a script ran this long; the bound takes effect from it.
const BUSY_THRESHOLD_MS: &str = "1000";

struct Fixture {
    backend: RedisBackend,
    _gateway: Service,
    url: String,
}

fn main() {
    run_suite(
        || {
            let backend = RedisBackend::start(&binaries!())?;
            let (gateway, url) = attack_gateway(&backend, &[])?;
            Ok(Fixture { backend, _gateway: gateway, url })
        },
        &[
            ("looping_scripts_are_ended_for_every_token", looping_scripts_are_ended_for_every_token),
            ("denied_commands_stay_denied_inside_scripts", denied_commands_stay_denied_inside_scripts),
            ("read_only_token_reaches_no_further_than_reading", read_only_token_reaches_no_further_than_reading),
            ("percent_escapes_stay_inside_their_argument", percent_escapes_stay_inside_their_argument),
            ("empty_tokens_refuse_to_start", empty_tokens_refuse_to_start),
            (
                "acl_users_that_allow_denied_commands_stop_the_start",
                acl_users_that_allow_denied_commands_stop_the_start,
            ),
            (
                "the_readme_acl_lines_make_the_users_the_gateway_makes",
                the_readme_acl_lines_make_the_users_the_gateway_makes,
            ),
            ("oversized_replies_are_refused_without_being_held", oversized_replies_are_refused_without_being_held),
            (
                "a_script_that_wrote_then_loops_is_reported_unkillable",
                a_script_that_wrote_then_loops_is_reported_unkillable,
            ),
        ],
    )
}

/// A gateway with the three tokens and a 1 s script bound, in front of `backend`'s Redis
/// (whose busy threshold is lowered to the bound).
fn attack_gateway(backend: &RedisBackend, extra: &[&str]) -> Result<(Service, String), String> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(BUSY_THRESHOLD_MS)
        .query::<()>(&mut backend.redis())
        .map_err(|e| e.to_string())?;
    let bound = SCRIPT_BOUND.as_millis().to_string();
    let mut args = vec!["--max-script-ms", bound.as_str()];
    args.extend_from_slice(extra);
    backend.start_gateway(
        &args,
        &[
            ("GATEWAY_TOKEN", REDIS_TOKEN),
            ("GATEWAY_READ_ONLY_TOKEN", READ_TOKEN),
            ("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
}

/// `POST {url}{path}` (GET without a body) with `token` and extra headers: status and body.
fn call(url: &str, token: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut request = axum::http::Request::builder().method(method).uri(format!("{url}{path}"));
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = agent.run(request.body(body.unwrap_or_default().to_vec()).unwrap()).unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap_or_default())
}

fn post(fixture: &Fixture, token: &str, path: &str, command: &Value) -> (u16, Value) {
    let (status, body) = call(&fixture.url, token, path, Some(command.to_string().as_bytes()), &[]);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

fn error_text(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("no error: {body}"))
}

/// `PING` on a new direct connection, answered within `wait`.
fn direct_ping(url: &str, wait: Duration) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut connection = client.get_connection_with_timeout(wait).map_err(|e| e.to_string())?;
    connection.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    redis::cmd("PING").query::<String>(&mut connection).map_err(|e| e.to_string())
}

fn stats(fixture: &Fixture) -> Value {
    let (status, body) = call(&fixture.url, REDIS_TOKEN, "/__gateway/stats", None, &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Sends `command` as `token` on a thread, shows Redis is frozen by it, then that Redis and
/// the gateway answer again within the bound + 1 s of sending, and returns the script's
/// answer.
fn frozen_then_freed(fixture: &Fixture, token: &'static str, command: Value) -> (u16, Value) {
    let url = fixture.url.clone();
    let started = Instant::now();
    let request = std::thread::spawn(move || {
        let (status, body) = call(&url, token, "/", Some(command.to_string().as_bytes()), &[]);
        (status, serde_json::from_str::<Value>(&body).unwrap_or(json!({ "raw": body })))
    });
    // The script holds Redis: a direct PING gets no PONG while it runs.
    wait_until("the script to hold Redis", SCRIPT_BOUND, || {
        direct_ping(&fixture.backend.redis_url, Duration::from_millis(200)).is_err().then_some(())
    })
    .unwrap();
    let freed = wait_until("Redis to answer PING again", SCRIPT_BOUND + Duration::from_secs(3), || {
        direct_ping(&fixture.backend.redis_url, Duration::from_millis(200)).ok()
    })
    .unwrap();
    let took = started.elapsed();
    assert_eq!(freed, "PONG");
    assert!(took < SCRIPT_BOUND + Duration::from_secs(1), "Redis answered after {took:?}");
    let (status, through) = post(fixture, REDIS_TOKEN, "/", &json!(["PING"]));
    assert_eq!((status, through), (200, json!({"result": "PONG"})));
    assert!(
        started.elapsed() < SCRIPT_BOUND + Duration::from_secs(1),
        "the gateway answered after {:?}",
        started.elapsed()
    );
    request.join().unwrap()
}

fn looping_scripts_are_ended_for_every_token(fixture: &Fixture) {
    let ended_before = stats(fixture)["scripts"]["ended"].as_u64().unwrap();
    let (status, body) = post(
        fixture,
        ADMIN_TOKEN,
        "/",
        &json!([
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=attack\nredis.register_function('spin', function() while true do end end)"
        ]),
    );
    assert_eq!((status, &body), (200, &json!({"result": "attack"})));
    let attempts = [
        (REDIS_TOKEN, json!(["EVAL", "while true do end", "0"])),
        (READ_TOKEN, json!(["EVAL_RO", "while true do end", "0"])),
        (ADMIN_TOKEN, json!(["EVAL", "while true do end", "0"])),
        (REDIS_TOKEN, json!(["FCALL", "spin", "0"])),
    ];
    for (token, command) in attempts.iter().cloned() {
        let (status, body) = frozen_then_freed(fixture, token, command.clone());
        assert_eq!(status, 400, "{command}: {body}");
        assert!(error_text(&body).contains("--max-script-ms") && error_text(&body).contains("ended"), "{body}");
    }
    assert_eq!(stats(fixture)["scripts"]["ended"].as_u64().unwrap(), ended_before + attempts.len() as u64);

    // A read-only script cannot write, so it can never become unkillable.
    let (status, body) =
        post(fixture, READ_TOKEN, "/", &json!(["EVAL_RO", "redis.call('SET','ro:w','1') while true do end", "0"]));
    assert_eq!(status, 400, "{body}");
    let text = error_text(&body);
    assert!(text.contains("Write commands are not allowed") || text.contains("can't run this command"), "{body}");
    let exists: bool = redis::cmd("EXISTS").arg("ro:w").query(&mut fixture.backend.redis()).unwrap();
    assert!(!exists);
    let _: () = redis::cmd("FUNCTION").arg("DELETE").arg("attack").query(&mut fixture.backend.redis()).unwrap();
}

/// `TYPE` and `DUMP` of every key, sorted: what "every key intact" compares.
fn snapshot(redis: &mut impl redis::ConnectionLike) -> Vec<(String, Option<Vec<u8>>)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(redis).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(redis).unwrap();
            (key, dump)
        })
        .collect()
}

fn dbsize(url: &str) -> i64 {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("DBSIZE").query(&mut connection).unwrap()
}

fn denied_commands_stay_denied_inside_scripts(fixture: &Fixture) {
    let mut redis = fixture.backend.redis();
    let _: () = redis::cmd("SET").arg("keep:string").arg("v").query(&mut redis).unwrap();
    let _: () = redis::cmd("HSET").arg("keep:hash").arg("f").arg("1").query(&mut redis).unwrap();
    let _: () = redis::cmd("ZADD").arg("keep:zset").arg(1).arg("m").query(&mut redis).unwrap();
    let _: () = redis::cmd("RPUSH").arg("keep:list").arg("a").arg("b").query(&mut redis).unwrap();
    let before = snapshot(&mut redis);
    let size = dbsize(&fixture.backend.redis_url);
    assert!(size >= 4);

    // A second redis-server, the target MIGRATE would copy to.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new("redis-server");
    command.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
    command.arg("--dir").arg(dir.path());
    let _target = Service::spawn("redis-server", command, &dir.path().join("target.log")).unwrap();
    let target_url = format!("redis://127.0.0.1:{port}");
    wait_until("the MIGRATE target to answer", Duration::from_secs(10), || {
        direct_ping(&target_url, Duration::from_millis(200)).ok()
    })
    .unwrap();
    let db1 = format!("{}/1", fixture.backend.redis_url);

    // The function is loaded by the admin token (FUNCTION LOAD is denied to the full token).
    let library = "#!lua name=wipe\nredis.register_function('wipe', function() return redis.call('FLUSHALL') end)";
    let (status, body) = post(fixture, REDIS_TOKEN, "/", &json!(["FUNCTION", "LOAD", library]));
    assert_eq!(status, 403, "{body}");
    assert!(error_text(&body).starts_with("NOPERM"), "{body}");
    let (status, _) = post(fixture, ADMIN_TOKEN, "/", &json!(["FUNCTION", "LOAD", library]));
    assert_eq!(status, 200);

    let migrate = format!("return redis.call('MIGRATE','127.0.0.1','{port}','keep:string','0','1000','COPY')");
    let scripts = [
        "return redis.call('FLUSHALL')".to_owned(),
        "return redis.call('FLUSHDB')".to_owned(),
        migrate,
        "return redis.call('SWAPDB','0','1')".to_owned(),
        "return redis.call('MOVE','keep:string','1')".to_owned(),
        "return redis.pcall('FUNCTION','LOAD','#!lua name=x\\nredis.register_function(\"x\", function() return 1 end)') and redis.call('FLUSHALL')".to_owned(),
    ];
    let refused_by_redis = |what: &str, text: &str| {
        assert!(text.contains("can't run this command") || text.contains("NOPERM"), "{what}: {text}");
    };
    for script in &scripts {
        let (status, body) = post(fixture, REDIS_TOKEN, "/", &json!(["EVAL", script, "0"]));
        assert_eq!(status, 400, "{script}: {body}");
        refused_by_redis(script, error_text(&body));
        let (status, body) =
            post(fixture, REDIS_TOKEN, "/multi-exec", &json!([["EVAL", script, "0"], ["GET", "keep:string"]]));
        assert_eq!(status, 200, "{script}: {body}");
        refused_by_redis(script, error_text(&body[0]));
        assert_eq!(body[1], json!({"result": "v"}));
        let (status, body) = post(fixture, REDIS_TOKEN, "/pipeline", &json!([["EVAL", script, "0"]]));
        assert_eq!(status, 200, "{script}: {body}");
        refused_by_redis(script, error_text(&body[0]));
        let path =
            format!("/eval/{}/0", percent_encoding::utf8_percent_encode(script, percent_encoding::NON_ALPHANUMERIC));
        let (status, body) = call(&fixture.url, REDIS_TOKEN, &path, None, &[]);
        assert_eq!(status, 400, "{path}: {body}");
        refused_by_redis(&path, &body);
        assert_eq!(dbsize(&fixture.backend.redis_url), size, "after {script}");
    }
    let (status, body) = post(fixture, REDIS_TOKEN, "/", &json!(["FCALL", "wipe", "0"]));
    assert_eq!(status, 400, "{body}");
    refused_by_redis("FCALL wipe", error_text(&body));
    // Sent directly, the gateway's parser refuses them before Redis does.
    for command in [
        json!(["MIGRATE", "127.0.0.1", port, "keep:string", 0, 1000, "COPY"]),
        json!(["SWAPDB", 0, 1]),
        json!(["MOVE", "keep:string", 1]),
    ] {
        let (status, body) = post(fixture, REDIS_TOKEN, "/", &command);
        assert_eq!(status, 403, "{command}: {body}");
    }

    assert_eq!(snapshot(&mut redis), before, "every key intact, byte for byte");
    assert_eq!(dbsize(&fixture.backend.redis_url), size);
    assert_eq!(dbsize(&db1), 0, "nothing moved or swapped into db 1");
    assert_eq!(dbsize(&target_url), 0, "nothing migrated");
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION").arg("LIST").query(&mut redis).unwrap();
    assert_eq!(libraries.len(), 1, "only the admin's library was loaded");
    let _: () = redis::cmd("FUNCTION").arg("DELETE").arg("wipe").query(&mut redis).unwrap();
}

fn read_only_token_reaches_no_further_than_reading(fixture: &Fixture) {
    let _: () = redis::cmd("SET").arg("ro:secret-name").arg("v").query(&mut fixture.backend.redis()).unwrap();
    for script in ["return redis.call('KEYS','*')", "return redis.call('SCAN','0')", "return redis.call('INFO')"] {
        let (status, body) = post(fixture, READ_TOKEN, "/", &json!(["EVAL_RO", script, "0"]));
        assert_eq!(status, 400, "{script}: {body}");
        assert!(error_text(&body).contains("can't run this command"), "{script}: {body}");
        assert!(!body.to_string().contains("ro:secret-name") && !body.to_string().contains("redis_version"), "{body}");
    }
    let (status, body) =
        post(fixture, READ_TOKEN, "/", &json!(["EVAL_RO", "return redis.call('GET','ro:secret-name')", "0"]));
    assert_eq!((status, body), (200, json!({"result": "v"})), "reading through a script still works");

    // Another client blocks; the read-only token can neither list nor unblock it.
    let mut blocked = fixture.backend.redis();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut blocked).unwrap();
    let waiter = std::thread::spawn(move || {
        redis::cmd("BLPOP").arg("ro:queue").arg(10).query::<Option<(String, String)>>(&mut blocked).unwrap()
    });
    wait_until("the BLPOP to block", Duration::from_secs(5), || {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut fixture.backend.redis()).ok()?;
        clients.lines().any(|line| line.starts_with(&format!("id={id} ")) && line.contains("cmd=blpop")).then_some(())
    })
    .unwrap();
    for command in
        [json!(["CLIENT", "LIST"]), json!(["CLIENT", "UNBLOCK", id]), json!(["CLIENT", "UNBLOCK", id, "ERROR"])]
    {
        let (status, body) = post(fixture, READ_TOKEN, "/", &command);
        assert!(status == 403 || status == 400, "{command}: {status} {body}");
        assert!(!body.to_string().contains("addr="), "{body}");
    }
    let (status, _) = post(fixture, REDIS_TOKEN, "/", &json!(["CLIENT", "UNBLOCK", id]));
    assert_eq!(status, 400, "CLIENT UNBLOCK changes another client: refused to every token");
    let _: () = redis::cmd("RPUSH").arg("ro:queue").arg("kept-waiting").query(&mut fixture.backend.redis()).unwrap();
    assert_eq!(
        waiter.join().unwrap(),
        Some(("ro:queue".into(), "kept-waiting".into())),
        "the BLPOP was never unblocked"
    );
    let _: () = redis::cmd("DEL").arg("ro:secret-name").query(&mut fixture.backend.redis()).unwrap();
}

fn percent_escapes_stay_inside_their_argument(fixture: &Fixture) {
    let mut redis = fixture.backend.redis();
    let (status, body) = call(&fixture.url, REDIS_TOKEN, "/set/inj/hello%2FEX%2F1", None, &[]);
    assert_eq!((status, body.as_str()), (200, r#"{"result":"OK"}"#));
    let value: String = redis::cmd("GET").arg("inj").query(&mut redis).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("inj").query(&mut redis).unwrap();
    assert_eq!((value.as_str(), ttl), ("hello/EX/1", -1), "one argument, no expiry");
    let (status, _) = call(&fixture.url, REDIS_TOKEN, "/set/pct%2525/v", None, &[]);
    assert_eq!(status, 200);
    let keys: Vec<String> = redis::cmd("KEYS").arg("pct*").query(&mut redis).unwrap();
    assert_eq!(keys, ["pct%25"]);
    let _: () = redis::cmd("DEL").arg("inj").arg("pct%25").query(&mut redis).unwrap();
}

/// Runs the gateway binary with `args` and `env` (and no inherited token variables) to its
/// exit within 20 s: its code and stderr.
fn start_and_exit(backend: &RedisBackend, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(gateway_binary());
    command.args(["--listen", "127.0.0.1:0", "--redis-url", &backend.redis_url]).args(args);
    for variable in ["GATEWAY_TOKEN", "GATEWAY_READ_ONLY_TOKEN", "GATEWAY_ADMIN_TOKEN"] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let exited = wait_until("the gateway to exit", Duration::from_secs(20), || child.try_wait().ok().flatten());
    if exited.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn empty_tokens_refuse_to_start(fixture: &Fixture) {
    let (code, stderr) = start_and_exit(&fixture.backend, &["--token", ""], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--token is empty"), "{stderr}");
    let (code, stderr) = start_and_exit(&fixture.backend, &["--admin-token", " "], &[("GATEWAY_TOKEN", REDIS_TOKEN)]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) =
        start_and_exit(&fixture.backend, &[], &[("GATEWAY_TOKEN", ""), ("GATEWAY_READ_ONLY_TOKEN", "")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no token given"), "{stderr}");

    // An empty optional token from the environment is unset: no request without a token passes.
    let (_gateway, url) =
        fixture.backend.start_gateway(&[], &[("GATEWAY_TOKEN", REDIS_TOKEN), ("GATEWAY_READ_ONLY_TOKEN", "")]).unwrap();
    for path in ["/get/anything", "/get/anything?_token="] {
        let (status, body) = call(&url, "", path, None, &[]);
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, _) = call(&url, "", "/", Some(br#"["GET","anything"]"#), &[("authorization", "Bearer ")]);
    assert_eq!(status, 401);
}

fn acl_users_that_allow_denied_commands_stop_the_start(fixture: &Fixture) {
    let user = ["--acl-user-full", "attack-loose"];
    let token = [("GATEWAY_TOKEN", "loose-token")];
    let (code, stderr) = start_and_exit(&fixture.backend, &[&user[..], &["--acl-users", "existing"]].concat(), &token);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot log in to Redis as the ACL user 'attack-loose'"), "{stderr}");

    // The user as the gateway makes it, then loosened by one command.
    let (gateway, _) =
        fixture.backend.start_gateway(&[&user[..], &["--acl-users", "provision"]].concat(), &token).unwrap();
    drop(gateway);
    let mut redis = fixture.backend.redis();
    let _: () = redis::cmd("ACL").arg("SETUSER").arg("attack-loose").arg("+flushall").query(&mut redis).unwrap();
    let (code, stderr) = start_and_exit(&fixture.backend, &[&user[..], &["--acl-users", "existing"]].concat(), &token);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("'attack-loose' for --token allows FLUSHALL"), "{stderr}");
    // Saying so is the opt-out.
    let (gateway, url) = fixture
        .backend
        .start_gateway(&[&user[..], &["--acl-users", "existing", "--allow", "FLUSHALL"]].concat(), &token)
        .expect("starts once FLUSHALL is allowed on purpose");
    let (status, _) = call(&url, "loose-token", "/", Some(br#"["PING"]"#), &[]);
    assert_eq!(status, 200);
    drop(gateway);
    let _: () = redis::cmd("ACL").arg("DELUSER").arg("attack-loose").query(&mut redis).unwrap();
}

/// The README's `ACL SETUSER` lines, pasted into a shell with the tokens in the environment,
/// make exactly the users `--acl-users provision` makes, and a gateway verifies them.
fn the_readme_acl_lines_make_the_users_the_gateway_makes(fixture: &Fixture) {
    let readme = std::fs::read_to_string(edgesync_e2e::harness::repo_root().join("README.md")).unwrap();
    let section = &readme[readme.find("### ACL users").expect("the README has an ACL users section")..];
    let block = section.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let port = fixture.backend.redis_url.rsplit(':').next().unwrap();
    let script: String = block
        .lines()
        .filter(|line| !line.contains("ACL SAVE")) // this Redis has no ACL file
        .map(|line| line.replace("redis-cli ", &format!("redis-cli -p {port} ")) + "\n")
        .collect();
    let users = || -> Vec<String> {
        let list: Vec<String> = redis::cmd("ACL").arg("LIST").query(&mut fixture.backend.redis()).unwrap();
        list.into_iter().filter(|user| user.starts_with("user edgesync-")).collect()
    };
    let provisioned = users();
    assert_eq!(provisioned.len(), 2, "{provisioned:?}");
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg("edgesync-full")
        .arg("edgesync-read-only")
        .query(&mut fixture.backend.redis())
        .unwrap();
    let pasted = Command::new("bash")
        .args(["-e", "-c", &script])
        .env("GATEWAY_TOKEN", REDIS_TOKEN)
        .env("GATEWAY_READ_ONLY_TOKEN", READ_TOKEN)
        .output()
        .unwrap();
    assert!(pasted.status.success(), "{script}\n{}", String::from_utf8_lossy(&pasted.stderr));
    assert_eq!(
        String::from_utf8_lossy(&pasted.stdout).matches("OK").count(),
        2,
        "{}",
        String::from_utf8_lossy(&pasted.stdout)
    );
    assert_eq!(users(), provisioned, "the README's users are the gateway's, rule for rule");
    let (gateway, url) = fixture
        .backend
        .start_gateway(
            &["--acl-users", "existing"],
            &[("GATEWAY_TOKEN", REDIS_TOKEN), ("GATEWAY_READ_ONLY_TOKEN", READ_TOKEN)],
        )
        .expect("a gateway accepts the README's users");
    let (status, body) = call(&url, READ_TOKEN, "/", Some(br#"["EVAL_RO","return redis.call('KEYS','*')","0"]"#), &[]);
    assert_eq!(status, 400, "{body}");
    drop(gateway);
}

/// The peak resident memory of a process so far, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn current_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn oversized_replies_are_refused_without_being_held(fixture: &Fixture) {
    const LIMIT: usize = 10 * 1024 * 1024;
    let limit = LIMIT.to_string();
    let (gateway, url) =
        fixture.backend.start_gateway(&["--max-response-bytes", &limit], &[("GATEWAY_TOKEN", REDIS_TOKEN)]).unwrap();
    let mut redis = fixture.backend.redis();
    let _: () = redis::cmd("SET").arg("big").arg(vec![b'x'; 100 * 1024 * 1024]).query(&mut redis).unwrap();
    let _: () = redis::cmd("SET").arg("small").arg("s").query(&mut redis).unwrap();
    let (status, _) = call(&url, REDIS_TOKEN, "/get/small", None, &[]);
    assert_eq!(status, 200);
    let before = current_rss_kib(gateway.pid());

    let resp2 = [("upstash-response-format", "resp2")];
    let exceeded = |status: u16, body: &str| {
        assert_eq!(status, 400, "{}", &body[..body.len().min(200)]);
        let body: Value = serde_json::from_str(body).unwrap();
        assert!(error_text(&body).contains(&format!("exceeds the limit of {LIMIT} bytes")), "{body}");
    };
    let (status, body) = call(&url, REDIS_TOKEN, "/", Some(br#"["GET","big"]"#), &resp2);
    exceeded(status, &body);
    let (status, body) = call(&url, REDIS_TOKEN, "/", Some(br#"["GET","big"]"#), &[]);
    exceeded(status, &body);
    let (status, body) = call(&url, REDIS_TOKEN, "/get/big", None, &[("upstash-encoding", "base64")]);
    exceeded(status, &body);
    let ten: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || call(&url, REDIS_TOKEN, "/", Some(br#"["GET","big"]"#), &resp2))
        })
        .collect();
    for request in ten {
        let (status, body) = request.join().unwrap();
        exceeded(status, &body);
    }
    let growth = peak_rss_kib(gateway.pid()).saturating_sub(before) * 1024;
    assert!(growth < 2 * LIMIT as u64, "the gateway grew by {growth} bytes for a limit of {LIMIT}");

    // Fifty replies of 1 MiB each, every one under the limit: together they are not held
    // either. The replies within the pipeline's budget are held as values until it ends, next
    // to the one being read: about twice the limit at most, never the 50 MiB.
    let _: () = redis::cmd("SET").arg("mid").arg(vec![b'm'; 1024 * 1024]).query(&mut redis).unwrap();
    let pipeline = json!(vec![json!(["GET", "mid"]); 50]).to_string();
    for _ in 0..3 {
        let (status, body) = call(&url, REDIS_TOKEN, "/pipeline", Some(pipeline.as_bytes()), &[]);
        exceeded(status, &body);
    }
    let growth = peak_rss_kib(gateway.pid()).saturating_sub(before) * 1024;
    assert!(growth < 3 * LIMIT as u64, "the gateway grew by {growth} bytes for a limit of {LIMIT} (pipelines)");
    let (status, body) =
        call(&url, REDIS_TOKEN, "/pipeline", Some(br#"[["GET","small"],["GET","mid"],["GET","small"]]"#), &[]);
    assert_eq!(status, 200, "a pipeline under the limit answers: {}", &body[..body.len().min(200)]);
    let items: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (items[0]["result"].as_str(), items[1]["result"].as_str().map(str::len)),
        (Some("s"), Some(1024 * 1024))
    );
    // The connection that dropped those replies still carries the next one.
    let (status, body) = call(&url, REDIS_TOKEN, "/", Some(br#"["GET","small"]"#), &resp2);
    assert_eq!((status, body.as_str()), (200, "$1\r\ns\r\n"));
    let _: () = redis::cmd("DEL").arg("big").arg("small").arg("mid").query(&mut redis).unwrap();
}

/// On a Redis of its own: the test ends it with `SHUTDOWN NOSAVE`, the only way out.
fn a_script_that_wrote_then_loops_is_reported_unkillable(_: &Fixture) {
    let backend = RedisBackend::start(&binaries!()).unwrap();
    let (_gateway, url) = attack_gateway(&backend, &[]).unwrap();
    let fixture = Fixture { backend, _gateway, url };
    let started = Instant::now();
    let (status, body) =
        post(&fixture, REDIS_TOKEN, "/", &json!(["EVAL", "redis.call('SET','w','1') while true do end", "0"]));
    assert_eq!(status, 503, "{body}");
    assert!(error_text(&body).contains("UNKILLABLE") && error_text(&body).contains("SHUTDOWN NOSAVE"), "{body}");
    assert!(started.elapsed() < SCRIPT_BOUND + Duration::from_secs(2), "{:?}", started.elapsed());

    let (status, health) = call(&fixture.url, "", "/__gateway/health", None, &[]);
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap(),
        json!({"gateway": "ok", "redis": "busy", "unkillable_script": true})
    );
    let stats = stats(&fixture);
    assert_eq!((stats["redis"].as_str(), stats["unkillable_script"].as_bool()), (Some("busy"), Some(true)), "{stats}");
    assert_eq!(stats["scripts"]["unkillable"], 1, "{stats}");
    // Other requests are answered at once (BUSY), not held behind the script.
    let asked = Instant::now();
    let (status, body) = post(&fixture, REDIS_TOKEN, "/", &json!(["GET", "w"]));
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
    assert!(status == 400 && error_text(&body).starts_with("BUSY"), "{status} {body}");

    let mut redis = redis::Client::open(fixture.backend.redis_url.as_str()).unwrap().get_connection().unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut redis);
}
