//! A real `redis-server` for unit tests: started on a free loopback port with no
//! persistence, in its own temporary directory, and killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgesync_core::store::Store;

pub struct TestRedis {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts redis-server and waits (at most 10 s) until it answers.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is needed by these tests and could not start ({e}): `make unit` installs it")
            });
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(url.as_str()).and_then(|c| c.get_connection()).is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {port} did not answer within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url, _dir: dir }
    }

    pub fn store(&self) -> Box<dyn Store> {
        crate::connect::open(&self.url, None).expect("connects")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
