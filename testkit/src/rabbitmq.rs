//! A throwaway RabbitMQ broker on 127.0.0.1 for tests: `rabbitmq-server` started in a fresh
//! temporary directory (its database, logs, Erlang cookie and configuration all in there)
//! with its own node name, AMQP port and distribution port, so it never meets another
//! broker on the machine, and awaited with `rabbitmqctl await_startup`.
//!
//! The binaries are looked up under `/usr/lib/rabbitmq/bin` (Debian's `rabbitmq-server`
//! package; its `/usr/sbin` wrappers switch to user `rabbitmq` and a fixed directory, which
//! a throwaway broker must not), then on `PATH`. The broker runs as the calling user, root
//! included. Starting one takes seconds: share one per test process
//! ([`TestRabbitMq::shared`]) and give each test its own queue.
//!
//! ```no_run
//! use auditbuf_testkit::rabbitmq::TestRabbitMq;
//!
//! let broker = TestRabbitMq::shared(); // one broker per test process
//! let url = broker.url(); // amqp://guest:guest@127.0.0.1:<port>/%2f
//! broker.stop_app(); // an outage: connections are closed and refused...
//! broker.start_app(); // ...until the broker is back, durable queues and all
//! # let _ = url;
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running RabbitMQ broker in a temporary directory.
///
/// One made by [`start`](TestRabbitMq::start) is killed and its directory removed when
/// dropped; the [`shared`](TestRabbitMq::shared) one by a watchdog process once the test
/// process has exited, however it exited.
#[derive(Debug)]
pub struct TestRabbitMq {
    root: PathBuf,
    bin: PathBuf,
    node: String,
    port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
}

static SHARED: OnceLock<TestRabbitMq> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// How long a broker may take to start on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl TestRabbitMq {
    /// The broker of this test process, started on first use. Give each test its own
    /// queue; a test that stops the broker should use one of its own.
    ///
    /// Panics if the RabbitMQ binaries are missing (saying how to install them) or the
    /// broker does not start (with its log).
    pub fn shared() -> &'static TestRabbitMq {
        SHARED.get_or_init(TestRabbitMq::start)
    }

    /// A broker of its own, killed and removed when dropped. Panics like
    /// [`shared`](TestRabbitMq::shared).
    pub fn start() -> TestRabbitMq {
        let Some(bin) = find_bin_dir() else {
            panic!(
                "the RabbitMQ binaries (rabbitmq-server, rabbitmqctl) are not installed: not under \
                 /usr/lib/rabbitmq/bin nor on PATH. Run `apt-get install -y rabbitmq-server` \
                 (scripts/ensure-rabbitmq does)."
            );
        };
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        let root = std::env::temp_dir().join(format!("auditbuf-rabbitmq-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["home", "mnesia", "log", "plugins"] {
            if let Err(e) = std::fs::create_dir_all(root.join(dir)) {
                panic!("cannot create {}: {e}", root.join(dir).display());
            }
        }
        let mut broker = TestRabbitMq {
            node: format!("auditbuf-test-{tag}@localhost"),
            root,
            bin,
            port: 0,
            server: None,
            watchdog: None,
        };
        broker.write_files();
        broker.watchdog = broker.spawn_watchdog();
        // The ports are free when chosen, but may be taken before the broker binds them.
        let mut last_error = String::new();
        for _ in 0..3 {
            broker.port = free_port();
            let dist_port = free_port();
            let log = match std::fs::File::create(broker.root.join("server.out")) {
                Ok(f) => f,
                Err(e) => panic!("cannot create the broker's output file: {e}"),
            };
            let err = log.try_clone().map_or(Stdio::null(), Stdio::from);
            let server = broker
                .command("rabbitmq-server")
                .env("RABBITMQ_NODE_PORT", broker.port.to_string())
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .stdout(log)
                .stderr(err)
                .spawn();
            match server {
                Ok(child) => broker.server = Some(child),
                Err(e) => panic!("cannot run rabbitmq-server: {e}"),
            }
            match broker.await_startup() {
                Ok(()) => return broker,
                Err(e) => {
                    last_error = e;
                    broker.kill();
                }
            }
        }
        let out = std::fs::read_to_string(broker.root.join("server.out")).unwrap_or_default();
        panic!("rabbitmq-server did not start: {last_error}\nits output:\n{out}");
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (the default virtual host; `guest` may
    /// log in from 127.0.0.1).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The AMQP port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the RabbitMQ application but not the Erlang node (`rabbitmqctl stop_app`):
    /// every connection is closed and new ones are refused, as when the broker is down.
    /// Durable queues and persistent messages survive it.
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
    }

    /// Starts the application again after [`stop_app`](Self::stop_app) and waits until it
    /// takes connections.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
        if let Err(e) = self.await_startup() {
            panic!("the broker did not come back: {e}");
        }
    }

    /// Runs `rabbitmqctl -n <node> ARGS…` and returns its standard output. Panics if it
    /// fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self
            .command("rabbitmqctl")
            .args(["-q", "-n", &self.node])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        check_output(out, &format!("rabbitmqctl {}", args.join(" ")))
    }

    fn await_startup(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let out = self
                .command("rabbitmqctl")
                .args(["-q", "-n", &self.node, "await_startup", "--timeout", "60"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output();
            match out {
                Ok(o) if o.status.success() => return Ok(()),
                Ok(o) if Instant::now() < deadline && self.server_alive() => {
                    // The node may not answer yet at all (await_startup then fails at once).
                    let _ = o;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Ok(o) => {
                    return Err(format!(
                        "rabbitmqctl await_startup: {}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                Err(e) => return Err(format!("cannot run rabbitmqctl: {e}")),
            }
        }
    }

    fn server_alive(&self) -> bool {
        self.server.as_ref().is_some_and(|c| {
            Command::new("kill")
                .args(["-0", &c.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// The broker's configuration, cookie and environment, all inside `root`, so nothing
    /// under /etc/rabbitmq or the user's home is read.
    fn write_files(&self) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let cookie = format!("AUDITBUFTEST{nanos:X}{:X}", std::process::id());
        let files = [
            ("home/.erlang.cookie", cookie.as_str()),
            ("enabled_plugins", "[].\n"),
            ("rabbitmq-env.conf", ""),
            // The broker logs to its standard output, which goes to `server.out`.
            (
                "rabbitmq.conf",
                "loopback_users.guest = true\nlog.console = true\nlog.file = false\n",
            ),
        ];
        for (name, text) in files {
            let path = self.root.join(name);
            if let Err(e) = std::fs::write(&path, text) {
                panic!("cannot write {}: {e}", path.display());
            }
        }
        // Erlang refuses a cookie others can read.
        let _ = Command::new("chmod")
            .arg("400")
            .arg(self.root.join("home/.erlang.cookie"))
            .status();
    }

    /// A command running tool `name` with the broker's environment.
    fn command(&self, name: &str) -> Command {
        let r = &self.root;
        let mut cmd = Command::new(self.bin.join(name));
        cmd.current_dir(r)
            .stdin(Stdio::null())
            .env("HOME", r.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", r.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", r.join("log"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", r.join("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", r.join("plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", r.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", r.join("rabbitmq.conf"))
            // Erlang distribution on the loopback interface only.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            );
        cmd
    }

    fn pid_file(&self) -> PathBuf {
        self.root.join("broker.pid")
    }

    /// The shell command that kills the broker at once and removes its directory.
    fn stop_script(&self) -> String {
        let server = self.server.as_ref().map_or(0, Child::id);
        format!(
            "kill -9 $(cat '{pid}' 2>/dev/null) {server} 2>/dev/null; rm -rf '{root}'",
            pid = self.pid_file().display(),
            root = self.root.display()
        )
    }

    /// A process that kills the broker once this process has gone, however it went.
    fn spawn_watchdog(&self) -> Option<Child> {
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 $(cat '{}' 2>/dev/null) 2>/dev/null; rm -rf '{}'",
            std::process::id(),
            self.pid_file().display(),
            self.root.display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    fn kill(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "kill -9 $(cat '{}' 2>/dev/null) 2>/dev/null",
                self.pid_file().display()
            ))
            .status();
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRabbitMq {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(self.stop_script())
            .stdin(Stdio::null())
            .status();
        self.kill();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `/usr/lib/rabbitmq/bin` when it has both tools, else the directory of `rabbitmqctl` on
/// `PATH` when `rabbitmq-server` is beside it.
fn find_bin_dir() -> Option<PathBuf> {
    let usable =
        |dir: &Path| dir.join("rabbitmq-server").is_file() && dir.join("rabbitmqctl").is_file();
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if usable(debian) {
        return Some(debian.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| usable(dir))
}

fn check_output(out: std::io::Result<Output>, what: &str) -> String {
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run {what}: {e}"),
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot bind 127.0.0.1: {e}"),
    }
}
