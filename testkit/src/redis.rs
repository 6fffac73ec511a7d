//! Throw-away Redis deployments for tests: a standalone server
//! ([`RedisServer`]), a three-master cluster ([`RedisCluster`]) and a
//! master + replica + sentinel set ([`RedisSentinel`]).
//!
//! Owns: starting `redis-server` processes on free loopback ports with
//! persistence off, waiting until they answer, and killing them on drop. Must
//! not: touch a Redis it did not start (never the machine's port 6379), or
//! bind anything but 127.0.0.1.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for a started process to answer `PING`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a cluster to report `cluster_state:ok`.
pub const DEFAULT_CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a Redis deployment could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchError(pub String);

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LaunchError {}

fn find_binary(name: &str) -> Result<PathBuf, LaunchError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LaunchError(format!(
                "`{name}` was not found on PATH; run the project's setup script, which installs \
                 the Debian package `redis-server` (it provides redis-server and redis-cli)"
            ))
        })
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir, LaunchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "testkit-redis-{tag}-{}-{n}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| LaunchError(format!("cannot create {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends one inline command and reads the first reply line.
fn command_line(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Sends one inline command and returns the whole bulk-string reply.
fn command_bulk(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut r = BufReader::new(&mut s);
    let mut header = String::new();
    r.read_line(&mut header)?;
    let Some(len) = header.trim_end().strip_prefix('$') else {
        return Ok(header.trim_end().to_owned());
    };
    let len: usize = len.parse().unwrap_or(0);
    let mut body = vec![0u8; len + 2];
    r.read_exact(&mut body)?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn wait_for_pong(port: u16, child: &mut Child, timeout: Duration) -> Result<(), LaunchError> {
    let deadline = Instant::now() + timeout;
    loop {
        // A server with a password answers -NOAUTH: it is up all the same.
        if let Ok(line) = command_line(port, "PING")
            && (line == "+PONG" || line.starts_with("-NOAUTH"))
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LaunchError(format!(
                "redis on port {port} exited during start-up with {status}"
            )));
        }
        if Instant::now() >= deadline {
            return Err(LaunchError(format!(
                "redis on port {port} did not answer PING within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `redis-server` process on a free loopback port, without persistence.
/// Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a standalone server.
    pub fn start() -> Result<RedisServer, LaunchError> {
        Self::start_with(&[])
    }

    /// Starts a standalone server with extra `redis-server` arguments
    /// (for example `["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> Result<RedisServer, LaunchError> {
        let port = crate::free_port();
        Self::start_on(port, extra.iter().map(|s| (*s).to_owned()).collect())
    }

    fn start_on(port: u16, args: Vec<String>) -> Result<RedisServer, LaunchError> {
        let dir = TempDir::new("server")?;
        let mut server = RedisServer {
            port,
            args,
            child: None,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), LaunchError> {
        let bin = find_binary("redis-server")?;
        let mut child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LaunchError(format!("cannot start redis-server: {e}")))?;
        if let Err(e) = wait_for_pong(self.port, &mut child, DEFAULT_START_TIMEOUT) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` for clients.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the server (its data is lost).
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the server again on the same port (after [`stop`](Self::stop),
    /// or kills and restarts it), empty.
    pub fn restart(&mut self) -> Result<(), LaunchError> {
        self.stop();
        let deadline = Instant::now() + DEFAULT_START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs one inline command (no quoting) and returns the first reply line,
    /// e.g. `"+OK"`, `":1"`, `"$-1"`.
    pub fn command(&self, cmd: &str) -> Result<String, LaunchError> {
        command_line(self.port, cmd).map_err(|e| LaunchError(format!("redis command failed: {e}")))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of `n` masters and no replicas, each node on a free
/// loopback port with its own bus port. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts `n` (at least 3) nodes and joins them with
    /// `redis-cli --cluster create`.
    pub fn start(n: usize) -> Result<RedisCluster, LaunchError> {
        if n < 3 {
            return Err(LaunchError("a cluster needs at least 3 masters".to_owned()));
        }
        let bin = find_binary("redis-server")?;
        let cli = find_binary("redis-cli")?;
        let dir = TempDir::new("cluster")?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            _dir: dir,
        };
        for _ in 0..n {
            let port = crate::free_port();
            let bus = crate::free_port();
            let node_dir = cluster._dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| LaunchError(format!("cannot create node dir: {e}")))?;
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "2000"])
                .args(["--dir", &node_dir.to_string_lossy()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| LaunchError(format!("cannot start redis-server: {e}")))?;
            let ready = wait_for_pong(port, &mut child, DEFAULT_START_TIMEOUT);
            cluster.nodes.push((port, child));
            ready?;
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LaunchError(format!("cannot run redis-cli: {e}")))?;
        if !out.status.success() {
            return Err(LaunchError(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let deadline = Instant::now() + DEFAULT_CLUSTER_READY_TIMEOUT;
        for (port, _) in &cluster.nodes {
            loop {
                let info = command_bulk(*port, "CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(LaunchError(format!(
                        "cluster node {port} not ready within {DEFAULT_CLUSTER_READY_TIMEOUT:?}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// `host:port` of every node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// Ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One master, one replica and one sentinel monitoring the master under the
/// name [`RedisSentinel::MASTER_NAME`], with short failure-detection times.
/// Killed on drop.
#[derive(Debug)]
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinel_port: u16,
    sentinel: Option<Child>,
    dir: TempDir,
}

impl RedisSentinel {
    /// The monitored master's name.
    pub const MASTER_NAME: &'static str = "testmaster";

    /// Starts the three processes and waits until the sentinel knows the
    /// master and its replica (so that a fail-over can happen).
    pub fn start() -> Result<RedisSentinel, LaunchError> {
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &master.port().to_string(),
            "--repl-diskless-sync-delay",
            "0",
        ])?;
        let deadline = Instant::now() + DEFAULT_START_TIMEOUT;
        while !command_bulk(replica.port(), "INFO replication")
            .unwrap_or_default()
            .contains("master_link_status:up")
        {
            if Instant::now() >= deadline {
                return Err(LaunchError(
                    "replica did not sync with the master in time".to_owned(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let bin = find_binary("redis-server")?;
        let dir = TempDir::new("sentinel")?;
        let sentinel_port = crate::free_port();
        let conf = dir.path().join("sentinel.conf");
        let name = Self::MASTER_NAME;
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {name} 127.0.0.1 {mp} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.path().display(),
                mp = master.port()
            ),
        )
        .map_err(|e| LaunchError(format!("cannot write sentinel.conf: {e}")))?;
        let mut child = Command::new(bin)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LaunchError(format!("cannot start redis sentinel: {e}")))?;
        if let Err(e) = wait_for_pong(sentinel_port, &mut child, DEFAULT_START_TIMEOUT) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let set = RedisSentinel {
            master,
            replica,
            sentinel_port,
            sentinel: Some(child),
            dir,
        };
        // A fail-over needs a replica the sentinel knows of; it learns of
        // replicas from the master's INFO, some time after it knows the
        // master.
        let deadline = Instant::now() + DEFAULT_START_TIMEOUT;
        let replicas = format!("SENTINEL replicas {}", Self::MASTER_NAME);
        while set.master_port() != Some(set.master.port())
            || command_line(set.sentinel_port, &replicas).unwrap_or_default() != "*1"
        {
            if Instant::now() >= deadline {
                return Err(LaunchError(
                    "sentinel did not report the master and its replica in time".to_owned(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(set)
    }

    /// The sentinel's log so far (for a failure message).
    pub fn sentinel_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    /// `host:port` of the sentinel.
    pub fn sentinel_address(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel_port)
    }

    /// The port the sentinel currently reports for the master.
    pub fn master_port(&self) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.sentinel_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(
            format!("SENTINEL get-master-addr-by-name {}\r\n", Self::MASTER_NAME).as_bytes(),
        )
        .ok()?;
        let mut r = BufReader::new(&mut s);
        let mut lines = Vec::new();
        for _ in 0..5 {
            let mut l = String::new();
            r.read_line(&mut l).ok()?;
            lines.push(l.trim_end().to_owned());
        }
        lines.get(4)?.parse().ok()
    }

    /// The initial master.
    pub fn master(&mut self) -> &mut RedisServer {
        &mut self.master
    }

    /// The initial replica.
    pub fn replica(&mut self) -> &mut RedisServer {
        &mut self.replica
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        kill(&mut self.sentinel);
    }
}
