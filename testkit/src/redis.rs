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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tls::TestCertificates;

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
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Result<TempDir, LaunchError> {
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

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the test reaches a process it started: plain TCP or TLS (trusting
/// the test CA, presenting the test client certificate), and the ACL user it
/// authenticates as, if any.
#[derive(Clone, Default)]
pub(crate) struct Access {
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: Option<(String, String)>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("tls", &self.tls.is_some())
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// A connection of either kind.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Access {
    fn tls(config: Arc<rustls::ClientConfig>, user: &str, password: &str) -> Access {
        Access {
            tls: Some(config),
            auth: Some((user.to_owned(), password.to_owned())),
        }
    }

    /// Connects (and authenticates) to `port` on 127.0.0.1.
    fn open(&self, port: u16) -> std::io::Result<BufReader<Box<dyn Stream>>> {
        let s = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(s),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(std::io::Error::other)?;
                Box::new(rustls::StreamOwned::new(conn, s))
            }
        };
        let mut r = BufReader::new(stream);
        if let Some((user, password)) = &self.auth {
            r.get_mut()
                .write_all(format!("AUTH {user} {password}\r\n").as_bytes())?;
            let mut line = String::new();
            r.read_line(&mut line)?;
            if !line.starts_with("+OK") {
                return Err(std::io::Error::other(format!(
                    "AUTH refused: {}",
                    line.trim_end()
                )));
            }
        }
        Ok(r)
    }

    /// Sends one inline command and returns the connection to read the
    /// reply from.
    fn send(&self, port: u16, cmd: &str) -> std::io::Result<BufReader<Box<dyn Stream>>> {
        let mut r = self.open(port)?;
        r.get_mut().write_all(format!("{cmd}\r\n").as_bytes())?;
        r.get_mut().flush()?;
        Ok(r)
    }
}

/// Sends one inline command and reads the first reply line.
fn command_line(access: &Access, port: u16, cmd: &str) -> std::io::Result<String> {
    let mut r = access.send(port, cmd)?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Sends one inline command and returns the whole bulk-string reply.
fn command_bulk(access: &Access, port: u16, cmd: &str) -> std::io::Result<String> {
    let mut r = access.send(port, cmd)?;
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
fn command_values(access: &Access, port: u16, cmd: &str) -> std::io::Result<Vec<String>> {
    let mut r = access.send(port, cmd)?;
    let mut out = Vec::new();
    read_reply(&mut r, &mut out)?;
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

fn wait_for_pong(
    access: &Access,
    port: u16,
    child: &mut Child,
    timeout: Duration,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + timeout;
    loop {
        // A server with a password answers -NOAUTH: it is up all the same.
        if let Ok(line) = command_line(access, port, "PING")
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

/// The ACL user a client of a TLS deployment ([`RedisServer::start_tls`],
/// [`RedisSentinel::start_tls`]) authenticates as on the data nodes.
pub const TLS_CLIENT_USER: &str = "gate";
/// The password of [`TLS_CLIENT_USER`].
pub const TLS_CLIENT_PASSWORD: &str = "gate-secret";
/// The ACL user a client authenticates as on the sentinels of
/// [`RedisSentinel::start_tls`].
pub const SENTINEL_USER: &str = "watcher";
/// The password of [`SENTINEL_USER`].
pub const SENTINEL_PASSWORD: &str = "watcher-secret";
/// The data nodes' user for the test itself, replication and the sentinels.
const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret";

/// `redis-server` arguments defining the ACL user `name` with every right.
fn acl_user(name: &str, password: &str) -> Vec<String> {
    [
        "--user",
        name,
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A `redis-server` process on a free loopback port, without persistence.
/// Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    access: Access,
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
        Self::start_on(
            port,
            extra.iter().map(|s| (*s).to_owned()).collect(),
            Access::default(),
        )
    }

    /// Starts a server that speaks TLS only (`--port 0 --tls-port`), with
    /// the certificates of `certs`, requires a client certificate signed by
    /// their CA, replicates over TLS, and has no `default` user: clients
    /// authenticate as [`TLS_CLIENT_USER`]. `extra` are further
    /// `redis-server` arguments.
    pub fn start_tls(certs: &TestCertificates, extra: &[&str]) -> Result<RedisServer, LaunchError> {
        let access = Access::tls(certs.client_config()?, ADMIN_USER, ADMIN_PASSWORD);
        let mut args: Vec<String> = [
            "--tls-cert-file",
            &certs.server_cert().to_string_lossy(),
            "--tls-key-file",
            &certs.server_key().to_string_lossy(),
            "--tls-ca-cert-file",
            &certs.ca().to_string_lossy(),
            "--tls-auth-clients",
            "yes",
            "--tls-replication",
            "yes",
            "--user",
            "default",
            "off",
        ]
        .map(|s| s.to_owned())
        .to_vec();
        args.extend(acl_user(ADMIN_USER, ADMIN_PASSWORD));
        args.extend(acl_user(TLS_CLIENT_USER, TLS_CLIENT_PASSWORD));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::start_on(crate::free_port(), args, access)
    }

    fn start_on(port: u16, args: Vec<String>, access: Access) -> Result<RedisServer, LaunchError> {
        let dir = TempDir::new("server")?;
        let mut server = RedisServer {
            port,
            args,
            access,
            child: None,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), LaunchError> {
        let bin = find_binary("redis-server")?;
        let port = self.port.to_string();
        let listen: &[&str] = if self.access.tls.is_some() {
            &["--port", "0", "--tls-port", &port]
        } else {
            &["--port", &port]
        };
        let mut child = Command::new(bin)
            .args(listen)
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
        if let Err(e) = wait_for_pong(&self.access, self.port, &mut child, DEFAULT_START_TIMEOUT) {
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
        command_line(&self.access, self.port, cmd)
            .map_err(|e| LaunchError(format!("redis command failed: {e}")))
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
            let ready = wait_for_pong(&Access::default(), port, &mut child, DEFAULT_START_TIMEOUT);
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
                let info =
                    command_bulk(&Access::default(), *port, "CLUSTER INFO").unwrap_or_default();
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

/// One master, one replica and one or more sentinels monitoring the master
/// under the name [`RedisSentinel::MASTER_NAME`], with short
/// failure-detection times. Killed on drop.
///
/// The sentinels are told never to enter TILT mode: a sentinel whose process
/// stalls for two seconds (a loaded test machine) otherwise stops acting for
/// thirty, and a fail-over a test waits for never comes.
#[derive(Debug)]
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    /// Port and process of each sentinel; the first one is asked.
    sentinels: Vec<(u16, Option<Child>)>,
    /// How the test reaches the data nodes and the sentinels.
    data: Access,
    watch: Access,
    dir: TempDir,
}

impl RedisSentinel {
    /// The monitored master's name.
    pub const MASTER_NAME: &'static str = "testmaster";

    /// Starts a master, its replica and one sentinel, all on plain TCP
    /// without passwords, and waits until the sentinel knows the master and
    /// its replica (so that a fail-over can happen).
    pub fn start() -> Result<RedisSentinel, LaunchError> {
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &master.port().to_string(),
            "--repl-diskless-sync-delay",
            "0",
        ])?;
        Self::monitor(master, replica, 1, None)
    }

    /// As [`start`](Self::start), with every process speaking TLS only
    /// (certificates of `certs`, client certificates required, replication
    /// and the sentinels' own connections over TLS) and two sentinels. The
    /// data nodes have no `default` user: clients authenticate as
    /// [`TLS_CLIENT_USER`]; the sentinels neither: clients authenticate as
    /// [`SENTINEL_USER`].
    pub fn start_tls(certs: &TestCertificates) -> Result<RedisSentinel, LaunchError> {
        let master = RedisServer::start_tls(certs, &["--repl-diskless-sync-delay", "0"])?;
        let replica = RedisServer::start_tls(
            certs,
            &[
                "--replicaof",
                "127.0.0.1",
                &master.port().to_string(),
                "--masteruser",
                ADMIN_USER,
                "--masterauth",
                ADMIN_PASSWORD,
                "--repl-diskless-sync-delay",
                "0",
            ],
        )?;
        Self::monitor(master, replica, 2, Some(certs))
    }

    /// Starts `n` sentinels watching `master` (TLS and ACL users when
    /// `certs` is given) and waits until they are ready for a fail-over.
    fn monitor(
        master: RedisServer,
        replica: RedisServer,
        n: usize,
        certs: Option<&TestCertificates>,
    ) -> Result<RedisSentinel, LaunchError> {
        let data = master.access.clone();
        let watch = match certs {
            None => Access::default(),
            Some(c) => Access::tls(c.client_config()?, SENTINEL_USER, SENTINEL_PASSWORD),
        };
        poll_until(
            DEFAULT_START_TIMEOUT,
            "replica in sync with the master",
            || {
                command_bulk(&data, replica.port(), "INFO replication")
                    .unwrap_or_default()
                    .contains("master_link_status:up")
            },
        )?;
        let bin = find_binary("redis-server")?;
        let dir = TempDir::new("sentinel")?;
        let mut set = RedisSentinel {
            master,
            replica,
            sentinels: Vec::new(),
            data,
            watch,
            dir,
        };
        let name = Self::MASTER_NAME;
        for i in 0..n {
            let port = crate::free_port();
            let conf = set.dir.path().join(format!("sentinel-{i}.conf"));
            let mut text = format!(
                "bind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel-{i}.log\n",
                dir = set.dir.path().display(),
            );
            match certs {
                None => text.push_str(&format!("port {port}\n")),
                Some(c) => text.push_str(&format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients yes\ntls-replication yes\n\
                     user default off\n\
                     user {SENTINEL_USER} on >{SENTINEL_PASSWORD} ~* &* +@all\n\
                     sentinel sentinel-user {SENTINEL_USER}\n\
                     sentinel sentinel-pass {SENTINEL_PASSWORD}\n",
                    c.server_cert().display(),
                    c.server_key().display(),
                    c.ca().display(),
                )),
            }
            text.push_str(&format!(
                "sentinel monitor {name} 127.0.0.1 {mp} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 1\n",
                mp = set.master.port()
            ));
            if certs.is_some() {
                text.push_str(&format!(
                    "sentinel auth-user {name} {ADMIN_USER}\n\
                     sentinel auth-pass {name} {ADMIN_PASSWORD}\n"
                ));
            }
            std::fs::write(&conf, text)
                .map_err(|e| LaunchError(format!("cannot write sentinel.conf: {e}")))?;
            let mut child = Command::new(&bin)
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| LaunchError(format!("cannot start redis sentinel: {e}")))?;
            let up = wait_for_pong(&set.watch, port, &mut child, DEFAULT_START_TIMEOUT);
            set.sentinels.push((port, Some(child)));
            up?;
            // No TILT (a stall must not suspend the sentinel), a short TILT
            // period should one have begun before this, and replicas polled
            // every second so that the replica is known soon and its state
            // is fresh when a fail-over selects it.
            let tuned = command_line(
                &set.watch,
                port,
                "SENTINEL DEBUG tilt-trigger 3600000 tilt-period 1000 info-period 1000",
            )
            .unwrap_or_default();
            if tuned != "+OK" {
                return Err(LaunchError(format!(
                    "sentinel refused SENTINEL DEBUG (Redis 7 or later needed): {tuned}"
                )));
            }
        }
        set.wait_ready(DEFAULT_START_TIMEOUT)?;
        Ok(set)
    }

    /// The first sentinel's port (the one the test asks).
    fn sentinel_port(&self) -> u16 {
        self.sentinels.first().map_or(0, |(p, _)| *p)
    }

    /// Waits until every sentinel is out of TILT mode, reports the initial
    /// master, and knows its replica as a healthy replica (and, with several,
    /// the other sentinels).
    fn wait_ready(&self, bound: Duration) -> Result<(), LaunchError> {
        let others = self.sentinels.len().saturating_sub(1).to_string();
        poll_until(bound, "sentinels ready for a fail-over", || {
            self.sentinels.iter().all(|(port, _)| {
                let info = command_bulk(&self.watch, *port, "INFO sentinel").unwrap_or_default();
                info_field(&info, "sentinel_tilt").as_deref() == Some("0")
                    && self.master_port_on(*port) == Some(self.master.port())
                    && self.replica_known(*port)
                    && self.sentinels_known(*port) == others
            })
        })
        .map_err(|e| LaunchError(format!("{e}; sentinel log:\n{}", self.sentinel_log())))
    }

    /// How many other sentinels the sentinel on `port` knows.
    fn sentinels_known(&self, port: u16) -> String {
        let cmd = format!("SENTINEL master {}", Self::MASTER_NAME);
        let values = command_values(&self.watch, port, &cmd).unwrap_or_default();
        values
            .iter()
            .position(|v| v == "num-other-sentinels")
            .and_then(|i| values.get(i + 1))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the sentinel on `port` lists the replica, with flags that
    /// allow promoting it.
    fn replica_known(&self, port: u16) -> bool {
        let cmd = format!("SENTINEL replicas {}", Self::MASTER_NAME);
        let values = command_values(&self.watch, port, &cmd).unwrap_or_default();
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

    /// The master's replication offset and the replica's, when both answer.
    fn offsets(&self) -> (Option<u64>, Option<u64>) {
        let offset = |port: u16, field: &str| {
            info_field(
                &command_bulk(&self.data, port, "INFO replication").unwrap_or_default(),
                field,
            )
            .and_then(|v| v.parse::<u64>().ok())
        };
        (
            offset(self.master.port(), "master_repl_offset"),
            offset(self.replica.port(), "slave_repl_offset"),
        )
    }

    /// Waits (bounded) until the replica holds every write the master had
    /// acknowledged when this was called (replication is asynchronous).
    pub fn wait_replicated(&self) -> Result<(), LaunchError> {
        let written = self
            .offsets()
            .0
            .ok_or_else(|| LaunchError("the master reports no replication offset".to_owned()))?;
        poll_until(
            DEFAULT_START_TIMEOUT,
            "replica holds the master's writes",
            || self.offsets().1.is_some_and(|o| o >= written),
        )
    }

    /// The keys matching `pattern` on the initial master (empty when it
    /// does not answer).
    pub fn master_keys(&self, pattern: &str) -> Vec<String> {
        self.keys_on(self.master.port(), pattern)
    }

    /// The keys matching `pattern` on the initial replica, read on the
    /// replica itself (empty when it does not answer).
    pub fn replica_keys(&self, pattern: &str) -> Vec<String> {
        self.keys_on(self.replica.port(), pattern)
    }

    fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        let mut keys =
            command_values(&self.data, port, &format!("KEYS {pattern}")).unwrap_or_default();
        keys.retain(|k| !k.is_empty() && !k.starts_with('-'));
        keys.sort();
        keys
    }

    /// Kills the master and waits until the sentinel has promoted the
    /// replica; returns the new master's port.
    ///
    /// Before the kill it waits (bounded) until the sentinels are ready and
    /// the replica has every write the master acknowledged. The fail-over
    /// is requested with `SENTINEL FAILOVER` rather than left to failure
    /// detection, so its timing does not depend on how busy the machine is.
    pub fn fail_over(&mut self) -> Result<u16, LaunchError> {
        self.wait_ready(DEFAULT_START_TIMEOUT)?;
        self.wait_replicated()?;
        self.kill_master_and_promote()
    }

    /// Kills the master at once (writes not yet replicated are lost) and
    /// waits until the sentinel has promoted the replica; returns the new
    /// master's port.
    pub fn kill_master_and_promote(&mut self) -> Result<u16, LaunchError> {
        let replica = self.replica.port();
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
                let _ = command_line(&self.watch, self.sentinel_port(), &request);
                requested_at = Some(Instant::now());
            }
            false
        })
        .map_err(|e| LaunchError(format!("{e}; sentinel log:\n{}", self.sentinel_log())))?;
        Ok(replica)
    }

    /// The sentinels' logs so far (for a failure message).
    pub fn sentinel_log(&self) -> String {
        (0..self.sentinels.len())
            .map(|i| {
                let log =
                    std::fs::read_to_string(self.dir.path().join(format!("sentinel-{i}.log")))
                        .unwrap_or_default();
                format!("--- sentinel {i}\n{log}")
            })
            .collect()
    }

    /// `host:port` of the (first) sentinel.
    pub fn sentinel_address(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel_port())
    }

    /// `host:port` of every sentinel.
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// The port the (first) sentinel currently reports for the master.
    pub fn master_port(&self) -> Option<u16> {
        self.master_port_on(self.sentinel_port())
    }

    fn master_port_on(&self, port: u16) -> Option<u16> {
        let cmd = format!("SENTINEL get-master-addr-by-name {}", Self::MASTER_NAME);
        command_values(&self.watch, port, &cmd)
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
        for (_, child) in &mut self.sentinels {
            kill(child);
        }
    }
}
