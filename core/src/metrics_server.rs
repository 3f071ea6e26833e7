//! A tiny `/metrics` endpoint (feature `metrics-server`), for programs that have no HTTP
//! server of their own to hang [`Pipeline::metrics_text`] on.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::classic_text;
use crate::shared::Shared;
use crate::{Error, Pipeline};

/// A running `/metrics` endpoint; stops when dropped.
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
    /// `GET /metrics` on `addr` (e.g. `"0.0.0.0:9464"`), one request at a time, from a
    /// thread of its own, until the returned server is dropped.
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
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(conn) = conn {
                            let _ = answer(conn, &shared, &service, capacity);
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

fn answer(conn: TcpStream, shared: &Shared, service: &str, capacity: u64) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path.split('?').next()) {
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
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
