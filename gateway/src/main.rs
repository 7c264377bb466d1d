//! `edgesync-gateway`: the Upstash Redis REST protocol in front of a Redis server. See the
//! crate documentation (and README.md, "The gateway") for what it allows and refuses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use edgesync_gateway::acl::{AclMode, AclUsers};
use edgesync_gateway::listen::{decide, Transport};
use edgesync_gateway::policy::Policy;
use edgesync_gateway::server::{router, GatewayConfig, Limits};
use edgesync_gateway::subscribe::SubscribeLimits;
use edgesync_gateway::tokens::{self, Source, Tokens};

/// Serves the Upstash Redis REST API, backed by a Redis server.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free one). Beyond loopback only with TLS or
    /// --insecure-listen.
    #[arg(long, default_value = "127.0.0.1:8079")]
    listen: SocketAddr,
    /// The Redis server behind the gateway.
    #[arg(long, env = "GATEWAY_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// PEM file of the certificate authorities a `rediss://` Redis — every node of a cluster —
    /// may be signed by, besides the web PKI's (a private CA).
    #[arg(long, env = "GATEWAY_REDIS_TLS_CA")]
    redis_tls_ca: Option<PathBuf>,
    /// Token for every command the policy allows. An operator credential: a script it runs
    /// that writes and then loops cannot be ended (README, "The gateway").
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Token for read commands only.
    #[arg(long, env = "GATEWAY_READ_ONLY_TOKEN", hide_env_values = true)]
    read_only_token: Option<String>,
    /// Token for every command, the denied ones included.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Also deny this command (`NAME` or `"NAME SUB"`) to the full token; repeatable.
    #[arg(long)]
    deny: Vec<String>,
    /// Take this command off the default deny-list; repeatable.
    #[arg(long)]
    allow: Vec<String>,
    /// How long a blocking command (BLPOP, …) may wait on its own connection, ms.
    #[arg(long, default_value_t = 30_000)]
    max_block_ms: u64,
    /// How long a script (EVAL*, EVALSHA*, FCALL*) may run before the gateway ends it with
    /// SCRIPT KILL / FUNCTION KILL, ms. Takes effect from Redis's busy-reply-threshold on.
    #[arg(long, default_value_t = 5_000)]
    max_script_ms: u64,
    /// The Redis ACL users the full and read-only tokens run as: `existing` (made by the
    /// operator, README "ACL users"), `provision` (made here with the --redis-url user), or
    /// `off` (no users: the deny-list is not enforced inside scripts).
    #[arg(long, value_enum, default_value_t = AclMode::Existing)]
    acl_users: AclMode,
    /// The ACL user of --token.
    #[arg(long, default_value_t = AclUsers::default().full)]
    acl_user_full: String,
    /// The ACL user of --read-only-token.
    #[arg(long, default_value_t = AclUsers::default().read_only)]
    acl_user_read_only: String,
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Commands in one /pipeline or /multi-exec request.
    #[arg(long, default_value_t = Limits::default().max_commands)]
    max_commands: usize,
    #[arg(long, default_value_t = Limits::default().max_response_bytes)]
    max_response_bytes: usize,
    /// Pub/sub streams (/subscribe, /psubscribe) open at once per token.
    #[arg(long, default_value_t = SubscribeLimits::default().per_token)]
    max_subscribers: usize,
    /// A pub/sub stream ends after this many seconds without a message (clients subscribe again).
    #[arg(long, default_value_t = SubscribeLimits::default().idle.as_secs())]
    subscribe_idle_secs: u64,
    /// A pub/sub stream ends after this many seconds in all.
    #[arg(long, default_value_t = SubscribeLimits::default().total.as_secs())]
    subscribe_max_secs: u64,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP beyond loopback (behind a proxy that terminates TLS).
    #[arg(long)]
    insecure_listen: bool,
}

fn fail(code: i32, message: impl std::fmt::Display) -> ! {
    eprintln!("edgesync-gateway: {message}");
    std::process::exit(code);
}

#[tokio::main]
async fn main() {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let source = |id: &str| match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Some(Source::Environment),
        Some(_) => Some(Source::CommandLine),
        None => None,
    };
    let token = |flag: &'static str, variable: &'static str, id: &str, value: Option<String>| {
        tokens::accept(flag, variable, value, source(id)).unwrap_or_else(|e| fail(2, e))
    };
    let tokens = Tokens {
        full: token("--token", "GATEWAY_TOKEN", "token", args.token),
        read_only: token("--read-only-token", "GATEWAY_READ_ONLY_TOKEN", "read_only_token", args.read_only_token),
        admin: token("--admin-token", "GATEWAY_ADMIN_TOKEN", "admin_token", args.admin_token),
    };
    // One TLS provider for the listener and for `rediss://` connections to Redis.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listen = decide(args.listen, args.tls_cert, args.tls_key, args.insecure_listen).unwrap_or_else(|e| fail(2, e));
    let config = GatewayConfig {
        redis_url: args.redis_url,
        redis_tls_ca: args.redis_tls_ca,
        tokens,
        policy: Policy::new(&args.deny, &args.allow, Duration::from_millis(args.max_block_ms)),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_commands: args.max_commands,
            max_response_bytes: args.max_response_bytes,
        },
        acl_mode: args.acl_users,
        acl_users: AclUsers { full: args.acl_user_full, read_only: args.acl_user_read_only },
        max_script: Duration::from_millis(args.max_script_ms),
        subscribe: SubscribeLimits {
            per_token: args.max_subscribers,
            idle: Duration::from_secs(args.subscribe_idle_secs),
            total: Duration::from_secs(args.subscribe_max_secs),
        },
    };
    if args.acl_users == AclMode::Off {
        eprintln!(
            "edgesync-gateway: --acl-users off: every token runs as the --redis-url user; the deny-list is not enforced inside scripts"
        );
    }
    let app = router(config).await.unwrap_or_else(|e| fail(2, e));
    let listener = std::net::TcpListener::bind(listen.addr)
        .unwrap_or_else(|e| fail(1, format!("cannot listen on {}: {e}", listen.addr)));
    listener.set_nonblocking(true).unwrap_or_else(|e| fail(1, e));
    let local = listener.local_addr().unwrap_or_else(|e| fail(1, e));
    let served = match listen.transport {
        Transport::Plain => {
            println!("edgesync-gateway listening on http://{local}");
            axum_server::from_tcp(listener).serve(app.into_make_service()).await
        }
        Transport::Tls { cert, key } => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .unwrap_or_else(|e| fail(2, format!("cannot load {} / {}: {e}", cert.display(), key.display())));
            println!("edgesync-gateway listening on https://{local}");
            axum_server::from_tcp_rustls(listener, tls).serve(app.into_make_service()).await
        }
    };
    if let Err(error) = served {
        fail(1, error);
    }
}
