//! The peers auditbuf is measured against: a naive `Mutex<VecDeque<Vec<u8>>>` and
//! `tracing-appender`'s `non_blocking` writer, lossless.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Contender, QUEUE};

/// A `Mutex<VecDeque<Vec<u8>>>` and a thread that drains it: one allocation per event.
pub struct Naive {
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
    consumed: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl Naive {
    pub fn new(event: Vec<u8>) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::<Vec<u8>>::new()));
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (queue, consumed, stop) = (queue.clone(), consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut busy_at = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        out.extend(q.drain(..));
                    }
                    if out.is_empty() {
                        crate::idle_wait(busy_at);
                        continue;
                    }
                    busy_at = Instant::now();
                    consumed.fetch_add(out.len() as u64, Ordering::Relaxed);
                    out.clear();
                }
            });
        }
        Naive {
            queue,
            consumed,
            sent: AtomicU64::new(0),
            event,
            stop,
        }
    }
}

impl Contender for Naive {
    fn name(&self) -> &'static str {
        "naive Mutex<VecDeque<Vec<u8>>>"
    }
    fn call(&self) {
        let event = self.event.clone();
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(event);
    }
    fn drain(&self) -> u64 {
        while self.consumed.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.consumed.load(Ordering::Relaxed)
    }
}

impl Drop for Naive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A writer that counts the bytes `tracing-appender`'s worker hands it, without reading
/// them.
#[derive(Clone)]
struct CountingSink(Arc<AtomicU64>);

/// A writer that reads what it is handed, as a file's or a socket's `write` does (the
/// kernel copies the bytes): into a reused buffer, cleared every 64 KiB. Beside
/// [`CountingSink`] it shows what the peer's throughput owes to a worker that never touches
/// an event's bytes — auditbuf's flush thread reads every byte of every event (it renders
/// the captured record), so each event's bytes cross from the producer's CPU to its own.
struct ReadingSink {
    bytes: Arc<AtomicU64>,
    buffer: Vec<u8>,
}

impl Write for ReadingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len() + buf.len() > 64 * 1024 {
            self.buffer.clear();
        }
        self.buffer.extend_from_slice(buf);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `tracing-appender::non_blocking`, lossless (a full channel waits), the same bytes
/// already encoded.
pub struct Appender {
    name: &'static str,
    writer: Mutex<Option<tracing_appender::non_blocking::NonBlocking>>,
    _guard: tracing_appender::non_blocking::WorkerGuard,
    bytes: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
}

impl Appender {
    /// Writing into a [`CountingSink`], or, if `reading`, a [`ReadingSink`].
    pub fn new(event: Vec<u8>, reading: bool) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(QUEUE);
        let (writer, guard) = if reading {
            builder.finish(ReadingSink {
                bytes: bytes.clone(),
                buffer: Vec::with_capacity(64 * 1024),
            })
        } else {
            builder.finish(CountingSink(bytes.clone()))
        };
        Appender {
            name: if reading {
                "tracing-appender, its writer reading the bytes"
            } else {
                "tracing-appender non_blocking, lossless"
            },
            writer: Mutex::new(Some(writer)),
            _guard: guard,
            bytes,
            sent: AtomicU64::new(0),
            event,
        }
    }
}

thread_local! {
    /// This thread's clone of an `Appender`'s writer, and which `Appender` it is of (two
    /// take turns on one thread).
    static APPENDER: std::cell::RefCell<Option<(usize, tracing_appender::non_blocking::NonBlocking)>> =
        const { std::cell::RefCell::new(None) };
}

impl Contender for Appender {
    fn name(&self) -> &'static str {
        self.name
    }
    fn call(&self) {
        let me = self as *const Self as usize;
        APPENDER.with(|w| {
            let mut w = w.borrow_mut();
            if w.as_ref().is_none_or(|(of, _)| *of != me) {
                let writer = self
                    .writer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                *w = writer.map(|writer| (me, writer));
            }
            if let Some((_, writer)) = w.as_mut() {
                let _ = writer.write_all(&self.event);
            }
        });
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn drain(&self) -> u64 {
        let want = self.sent.load(Ordering::Relaxed) * self.event.len() as u64;
        while self.bytes.load(Ordering::Relaxed) < want {
            std::thread::sleep(Duration::from_micros(200));
        }
        APPENDER.with(|w| *w.borrow_mut() = None);
        self.sent.load(Ordering::Relaxed)
    }
}
