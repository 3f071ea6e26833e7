//! A tiny `/metrics` endpoint (feature `metrics-server`), for programs that have no HTTP
//! server of their own to hang [`Pipeline::metrics_text`] on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::classic_text;
use crate::shared::Shared;
use crate::{Error, Pipeline};

/// A running `/metrics` endpoint; stops taking connections when dropped (a request being
/// answered then ends on its own, within its 2 s bound and the writing of its answer).
///
/// ```
/// use auditbuf::{Config, NullSink, Pipeline};
/// use std::io::{Read, Write};
///
/// let pipeline = Pipeline::new(Config::default().service("gateway"), NullSink)?;
/// let server = pipeline.serve_metrics("127.0.0.1:0")?;
/// let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut answer = String::new();
/// conn.read_to_string(&mut answer).unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200"));
/// assert!(answer.contains(r#"audit_events_buffered_total{service="gateway"} 0"#));
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Pipeline {
    /// Serves this pipeline's metrics (the text of [`metrics_text`](Self::metrics_text)) at
    /// `GET /metrics` on `addr` (e.g. `"0.0.0.0:9464"`), from a thread of its own, until
    /// the returned server is dropped. Each request is answered on a short-lived thread of
    /// its own (at most 16 at once; more are closed), and may take at most 2 s and 16 KiB
    /// to arrive: a slow or idle client holds up no other, nor the pipeline.
    ///
    /// # Errors
    /// [`Error::Io`] naming the address if it cannot be bound; [`Error::Spawn`] if the
    /// thread cannot start.
    pub fn serve_metrics(&self, addr: &str) -> Result<MetricsServer, Error> {
        let listener = TcpListener::bind(addr).map_err(|e| Error::io(addr, e))?;
        let bound = listener.local_addr().map_err(|e| Error::io(addr, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(self.shared());
        let service = self.service().to_owned();
        let capacity = self.capacity() as u64;
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("auditbuf-metrics".to_owned())
                .spawn(move || {
                    let busy = Arc::new(AtomicUsize::new(0));
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let conn = match conn {
                            Ok(conn) => conn,
                            Err(e) if accept_again_at_once(&e) => continue,
                            Err(_) => {
                                // Out of file descriptors or memory: accepting again at
                                // once fails again at once, a CPU spent spinning while the
                                // process is already short. The client waits in the
                                // backlog meanwhile.
                                std::thread::sleep(ACCEPT_PAUSE);
                                continue;
                            }
                        };
                        // Each request on a thread of its own, so that a slow or idle
                        // client holds up no other; at most MAX_CLIENTS at once (more are
                        // closed at once), each for at most REQUEST_TIME.
                        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                            busy.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                        let (shared, service, done) =
                            (Arc::clone(&shared), service.clone(), Arc::clone(&busy));
                        let spawned = std::thread::Builder::new()
                            .name("auditbuf-metrics-request".to_owned())
                            .spawn(move || {
                                // Given back however `answer` ends, a panic included.
                                let _slot = Slot(done);
                                let _ = answer(conn, &shared, &service, capacity);
                            });
                        if spawned.is_err() {
                            busy.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                })
                .map_err(Error::Spawn)?
        };
        Ok(MetricsServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }
}

/// A client's place among the [`MAX_CLIENTS`], given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Clients served at once; more are turned away (their connection closed).
const MAX_CLIENTS: usize = 16;
/// How long the accept loop waits after an error that is not about one connection (out of
/// file descriptors, `EMFILE`; of memory), before it accepts again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Whether an accept error concerned only the connection it was for (the client gave up
/// before it was accepted), so that the next accept can follow at once.
fn accept_again_at_once(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}
/// The longest a client may take to send its request, however it trickles.
const REQUEST_TIME: Duration = Duration::from_secs(2);
/// The most a request's line and headers may take; a longer one is answered 431.
const MAX_REQUEST_BYTES: u64 = 16 * 1024;

fn answer(conn: TcpStream, shared: &Shared, service: &str, capacity: u64) -> std::io::Result<()> {
    conn.set_write_timeout(Some(REQUEST_TIME))?;
    let deadline = Instant::now() + REQUEST_TIME;
    let mut reader = BufReader::new(Deadline {
        conn: conn.try_clone()?,
        deadline,
    })
    .take(MAX_REQUEST_BYTES);
    let mut request_line = Vec::new();
    reader.read_until(b'\n', &mut request_line)?;
    // Skip the headers: nothing in them changes the answer. They end at a blank line, or
    // where the client stopped sending; only a request over the limit is refused.
    let mut line = Vec::new();
    while request_line.ends_with(b"\n") {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.len() <= 2 {
            break;
        }
    }
    let complete = reader.limit() > 0;
    let request_line = String::from_utf8_lossy(&request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path.split('?').next()) {
        _ if !complete => (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::new(),
        ),
        ("GET", Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            classic_text(shared, service, capacity),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", String::new()),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAllow: GET\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()?;
    if !complete {
        // Closing with the rest of the request unread makes the kernel reset the
        // connection, and the client may see the reset instead of the 431: say that
        // nothing more is coming, and read what it still sends (by the same deadline).
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut rest = reader.into_inner().into_inner();
        let _ = std::io::copy(&mut (&mut rest).take(1 << 20), &mut std::io::sink());
    }
    Ok(())
}

/// A connection whose reads all end by `deadline`: a client trickling its request a byte
/// at a time gets no more time than one that sends nothing.
struct Deadline {
    conn: TcpStream,
    deadline: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.conn.set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}
