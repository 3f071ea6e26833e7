//! A small HTTP/1.1 server on `std::net`, enough for the receiver: keep-alive connections,
//! `Content-Length` bodies, and `Expect: 100-continue` answered the way real servers do (a
//! bare `100 Continue`, or the final answer from the headers alone when the body is too
//! large — what DataStorage does, closing the connection without reading the body).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// One parsed request.
pub(crate) struct Request {
    pub(crate) path: String,
    /// Names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// What to answer.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// Answers a request; called on the connection's thread.
pub(crate) type Handler = dyn Fn(Request) -> Response + Send + Sync;

/// Looks at a request's headers before its body is read: `Some` answers at once from the
/// headers and closes the connection without reading the body (an early 413), or, with
/// status 0, closes it without any answer.
pub(crate) type Early = dyn Fn(&[(String, String)], usize) -> Option<Response> + Send + Sync;

pub(crate) struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(addr: &str, handler: Arc<Handler>, early: Option<Arc<Early>>) -> Server {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => panic!("cannot listen on {addr}: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("listener has no address: {e}"),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = Arc::clone(&handler);
                    let early = early.clone();
                    let stopping = Arc::clone(&stopping);
                    std::thread::spawn(move || {
                        let _ = serve(stream, &*handler, early.as_deref(), &stopping);
                    });
                }
            })
        };
        Server {
            addr,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Unblock the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    early: Option<&Early>,
    stopping: &AtomicBool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader, stopping)? else {
            return Ok(());
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if find("transfer-encoding").is_some() {
            // DataStorage answers a chunked body with a generic 400; so do we.
            write_response(
                &mut writer,
                &plain(400, "chunked bodies are not supported"),
                true,
            )?;
            return Ok(());
        }
        let length: usize = find("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if let Some(response) = early.and_then(|e| e(&headers, length)) {
            // Status 0: a proxy that drops the connection without any answer.
            if response.status != 0 {
                write_response(&mut writer, &response, true)?;
            }
            // Like a server that stops reading: drop the connection with the body unread.
            return Ok(());
        }
        if find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = vec![0; length];
        read_exact(&mut reader, &mut body, stopping)?;
        let response = handler(Request {
            path,
            headers,
            body,
        });
        write_response(&mut writer, &response, close)?;
        if close {
            return Ok(());
        }
    }
}

/// Reads up to the blank line ending the headers; `None` at a clean end of the connection.
fn read_head(
    reader: &mut BufReader<TcpStream>,
    stopping: &AtomicBool,
) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    loop {
        if stopping.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if line.is_empty() && head.is_empty() {
                    continue;
                }
                head.extend_from_slice(&line);
                continue;
            }
            Err(e) => return Err(e),
        }
        if line == b"\r\n" && !head.is_empty() {
            return Ok(Some(String::from_utf8_lossy(&head).trim_end().to_owned()));
        }
        if line == b"\r\n" {
            continue;
        }
        head.extend_from_slice(&line);
    }
}

fn read_exact(
    reader: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    stopping: &AtomicBool,
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        if stopping.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match reader.read(&mut buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn plain(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

fn write_response(writer: &mut TcpStream, response: &Response, close: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    writer.write_all(out.as_bytes())?;
    writer.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
