//! [`DirectRedis`]: a client of the backend's Redis that bypasses every edgesync component,
//! for tests to plant and read back data: a connection to the one `redis-server`, or a
//! cluster client (commands routed by slot, redirections followed) when the backend is a
//! Redis Cluster — so a suite's assertions read the same either way.

use redis::{Cmd, ConnectionLike, RedisResult, Value};

pub enum DirectRedis {
    Server(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl ConnectionLike for DirectRedis {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            DirectRedis::Server(c) => c.req_packed_command(cmd),
            DirectRedis::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        match self {
            DirectRedis::Server(c) => c.req_packed_commands(cmd, offset, count),
            DirectRedis::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            DirectRedis::Server(c) => c.req_command(cmd),
            DirectRedis::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DirectRedis::Server(c) => c.get_db(),
            DirectRedis::Cluster(c) => c.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        match self {
            DirectRedis::Server(c) => c.supports_pipelining(),
            DirectRedis::Cluster(c) => c.supports_pipelining(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            DirectRedis::Server(c) => c.check_connection(),
            DirectRedis::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            DirectRedis::Server(c) => c.is_open(),
            DirectRedis::Cluster(c) => c.is_open(),
        }
    }
}
