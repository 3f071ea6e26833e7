//! A throwaway Postgres server on 127.0.0.1 for tests: `initdb` and `pg_ctl start` on a
//! fresh temporary directory, at a free port, with trust authentication for user
//! `postgres`.
//!
//! The server binaries (`initdb`, `pg_ctl`, `psql`) are looked up on `PATH`, then under
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package). They refuse to run as
//! root: as root, they run as user `postgres` (`runuser -u postgres`) on a directory that
//! user owns.
//!
//! ```no_run
//! use auditbuf_testkit::postgres::TestPostgres;
//!
//! let pg = TestPostgres::shared(); // one server per test process
//! let url = pg.url(); // postgres://postgres@127.0.0.1:<port>/postgres
//! assert_eq!(pg.psql("SELECT 1 + 1"), "2");
//! # let _ = url;
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running Postgres server in a temporary directory.
///
/// One made by [`start`](TestPostgres::start) is stopped (`pg_ctl stop -m immediate`) and
/// its directory removed when dropped; the [`shared`](TestPostgres::shared) one when the
/// test process exits. Either way a watchdog process also stops it if the test process
/// dies without cleaning up.
#[derive(Debug)]
pub struct TestPostgres {
    root: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
    watchdog: Option<Child>,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestPostgres {
    /// The server of this test process, started on first use. Give each test its own
    /// table or [`database`](TestPostgres::database).
    ///
    /// Panics if the Postgres binaries are missing (saying how to install them) or the
    /// server does not start (with its log).
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(TestPostgres::start)
    }

    /// A server of its own, stopped and removed when dropped. Panics like
    /// [`shared`](TestPostgres::shared).
    pub fn start() -> TestPostgres {
        let bin = match find_bin_dir() {
            Some(dir) => dir,
            None => panic!(
                "the Postgres server binaries (initdb, pg_ctl) are not installed: not on PATH nor under \
                 /usr/lib/postgresql/*/bin. Run `apt-get install -y postgresql` (scripts/ensure-postgres does)."
            ),
        };
        let as_postgres = running_as_root();
        let root = std::env::temp_dir().join(format!(
            "auditbuf-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        if let Err(e) = std::fs::create_dir_all(&root) {
            panic!("cannot create {}: {e}", root.display());
        }
        let mut pg = TestPostgres {
            root,
            port: 0,
            bin,
            as_postgres,
            watchdog: None,
        };
        if as_postgres {
            pg.check(
                Command::new("chown").arg("postgres:").arg(&pg.root),
                "chown",
            );
        }
        let data = pg.data_dir();
        let initdb = pg
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
                "-D",
            ])
            .arg(&data)
            .output();
        pg.check_output(initdb, "initdb");
        pg.watchdog = pg.spawn_watchdog();
        // The port is free when chosen, but may be taken before the server binds it.
        let mut last_error = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -k {} -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB",
                pg.port,
                pg.root.display()
            );
            let started = pg
                .command("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(pg.log_file())
                .args(["-o", &options, "start"])
                .output();
            match started {
                Ok(out) if out.status.success() => return pg,
                Ok(out) => last_error = String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => last_error = e.to_string(),
            }
        }
        let log = std::fs::read_to_string(pg.log_file()).unwrap_or_default();
        panic!("pg_ctl start failed: {last_error}\nserver log:\n{log}");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates database `name` (if missing) and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let exists = self.psql(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{}'",
            name.replace('\'', "''")
        ));
        if exists.is_empty() {
            self.psql(&format!(
                "CREATE DATABASE \"{}\"",
                name.replace('"', "\"\"")
            ));
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` with `psql` in database `postgres` and returns its output, unaligned and
    /// without headers (`-At`: one line a row, `|` between columns), trimmed. Panics if
    /// `psql` fails.
    pub fn psql(&self, sql: &str) -> String {
        let psql = match self.tool("psql") {
            Some(p) => p,
            None => panic!("psql not found next to {} nor on PATH", self.bin.display()),
        };
        let out = Command::new(psql)
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output();
        let out = self.check_output(out, "psql");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn tool(&self, name: &str) -> Option<PathBuf> {
        let here = self.bin.join(name);
        if here.is_file() {
            Some(here)
        } else {
            on_path(name)
        }
    }

    /// A command running server tool `name`, as user `postgres` when we are root.
    fn command(&self, name: &str) -> Command {
        let tool = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        // The server user may not be allowed into the caller's directory.
        cmd.current_dir(&self.root).stdin(Stdio::null());
        cmd
    }

    /// The shell command that stops the server at once and removes its directory.
    fn stop_script(&self) -> String {
        let pg_ctl = self.bin.join("pg_ctl");
        let prefix = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{prefix}'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
            pg_ctl.display(),
            self.data_dir().display(),
            self.root.display()
        )
    }

    /// A process that stops the server once this process has gone, however it went.
    fn spawn_watchdog(&self) -> Option<Child> {
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {}",
            std::process::id(),
            self.stop_script()
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

    fn check(&self, cmd: &mut Command, what: &str) {
        self.check_output(cmd.output(), what);
    }

    fn check_output(&self, out: std::io::Result<Output>, what: &str) -> Output {
        match out {
            Ok(out) if out.status.success() => out,
            Ok(out) => panic!(
                "{what} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("cannot run {what}: {e}"),
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(self.stop_script())
            .stdin(Stdio::null())
            .status();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb` and `pg_ctl`: `PATH` first (following a symlink to the
/// real directory, where the other tools are), then the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(initdb) = on_path("initdb") {
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent().filter(|d| usable(d)) {
            return Some(dir.to_path_buf());
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| usable(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot bind 127.0.0.1: {e}"),
    }
}
