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

/// Reads one RESP reply of any shape and appends its scalar values, in
/// order, to `out` (arrays are flattened; nil is the empty string).
fn read_reply(r: &mut impl BufRead, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut header = String::new();
    r.read_line(&mut header)?;
    let header = header.trim_end();
    let (kind, rest) = header.split_at(header.len().min(1));
    match kind {
        "*" => {
            let n: i64 = rest.parse().unwrap_or(0);
            for _ in 0..n.max(0) {
                read_reply(r, out)?;
            }
        }
        "$" => {
            let len: i64 = rest.parse().unwrap_or(-1);
            if len < 0 {
                out.push(String::new());
            } else {
                let mut body = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
                r.read_exact(&mut body)?;
                body.truncate(body.len() - 2);
                out.push(String::from_utf8_lossy(&body).into_owned());
            }
        }
        _ => out.push(header.to_owned()),
    }
    Ok(())
}

/// Sends one inline command and returns every scalar of its reply,
/// flattened.
fn command_values(port: u16, cmd: &str) -> std::io::Result<Vec<String>> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut out = Vec::new();
    read_reply(&mut BufReader::new(&mut s), &mut out)?;
    Ok(out)
}

/// The value of `field` in an `INFO` section (`field:value` lines).
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Polls `ready` every 20 ms until it holds, for at most `bound`.
fn poll_until(
    bound: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + bound;
    while !ready() {
        if Instant::now() >= deadline {
            return Err(LaunchError(format!("{what}: not within {bound:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
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

/// How long a fail-over may take once the master is gone.
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// One master, one replica and one sentinel monitoring the master under the
/// name [`RedisSentinel::MASTER_NAME`], with short failure-detection times.
/// Killed on drop.
///
/// The sentinel is told never to enter TILT mode: a sentinel whose process
/// stalls for two seconds (a loaded test machine) otherwise stops acting for
/// thirty, and a fail-over a test waits for never comes.
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
        poll_until(
            DEFAULT_START_TIMEOUT,
            "replica in sync with the master",
            || {
                command_bulk(replica.port(), "INFO replication")
                    .unwrap_or_default()
                    .contains("master_link_status:up")
            },
        )?;
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
        // No TILT (a stall must not suspend the sentinel), a short TILT
        // period should one have begun before this, and replicas polled every
        // second so that the replica is known soon and its state is fresh
        // when a fail-over selects it.
        let tuned = command_line(
            set.sentinel_port,
            "SENTINEL DEBUG tilt-trigger 3600000 tilt-period 1000 info-period 1000",
        )
        .unwrap_or_default();
        if tuned != "+OK" {
            return Err(LaunchError(format!(
                "sentinel refused SENTINEL DEBUG (Redis 7 or later needed): {tuned}"
            )));
        }
        set.wait_ready(DEFAULT_START_TIMEOUT)?;
        Ok(set)
    }

    /// Waits until the sentinel is out of TILT mode, reports the initial
    /// master, and knows its replica as a healthy replica.
    fn wait_ready(&self, bound: Duration) -> Result<(), LaunchError> {
        poll_until(bound, "sentinel ready for a fail-over", || {
            let info = command_bulk(self.sentinel_port, "INFO sentinel").unwrap_or_default();
            info_field(&info, "sentinel_tilt").as_deref() == Some("0")
                && self.master_port() == Some(self.master.port())
                && self.replica_known()
        })
        .map_err(|e| LaunchError(format!("{e}; sentinel log:\n{}", self.sentinel_log())))
    }

    /// Whether the sentinel lists the replica, with flags that allow
    /// promoting it.
    fn replica_known(&self) -> bool {
        let cmd = format!("SENTINEL replicas {}", Self::MASTER_NAME);
        let values = command_values(self.sentinel_port, &cmd).unwrap_or_default();
        let field = |name: &str| {
            values
                .iter()
                .position(|v| v == name)
                .and_then(|i| values.get(i + 1))
                .cloned()
                .unwrap_or_default()
        };
        field("port") == self.replica.port().to_string()
            && field("flags") == "slave"
            && field("master-link-status") == "ok"
    }

    /// Kills the master and waits until the sentinel has promoted the
    /// replica; returns the new master's port.
    ///
    /// Before the kill it waits (bounded) until the sentinel is ready and
    /// the replica has every write the master acknowledged (replication is
    /// asynchronous). The fail-over is requested with `SENTINEL FAILOVER`
    /// rather than left to failure detection, so its timing does not depend
    /// on how busy the machine is.
    pub fn fail_over(&mut self) -> Result<u16, LaunchError> {
        self.wait_ready(DEFAULT_START_TIMEOUT)?;
        let (master, replica) = (self.master.port(), self.replica.port());
        let offset = |port: u16, field: &str| {
            info_field(
                &command_bulk(port, "INFO replication").unwrap_or_default(),
                field,
            )
            .and_then(|v| v.parse::<u64>().ok())
        };
        let written = offset(master, "master_repl_offset")
            .ok_or_else(|| LaunchError("the master reports no replication offset".to_owned()))?;
        poll_until(
            DEFAULT_START_TIMEOUT,
            "replica holds the master's writes",
            || offset(replica, "slave_repl_offset").is_some_and(|o| o >= written),
        )?;
        self.master.stop();
        let request = format!("SENTINEL FAILOVER {}", Self::MASTER_NAME);
        let mut requested_at: Option<Instant> = None;
        poll_until(DEFAULT_FAILOVER_TIMEOUT, "sentinel fail-over", || {
            if self.master_port() == Some(replica) {
                return true;
            }
            // Requested again if an attempt went nowhere (`-INPROG` while
            // one runs, `-NOGOODSLAVE` while the replica's state is stale).
            if requested_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(4)) {
                let _ = command_line(self.sentinel_port, &request);
                requested_at = Some(Instant::now());
            }
            false
        })
        .map_err(|e| LaunchError(format!("{e}; sentinel log:\n{}", self.sentinel_log())))?;
        Ok(replica)
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
        let cmd = format!("SENTINEL get-master-addr-by-name {}", Self::MASTER_NAME);
        command_values(self.sentinel_port, &cmd)
            .ok()?
            .get(1)?
            .parse()
            .ok()
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
