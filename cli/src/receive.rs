//! `auditbuf receive`: kubernaut DataStorage's batch endpoint on this machine, so that a
//! pipeline can be tried without the service. It checks a body's shape (a JSON array of 1
//! to 500 objects, at most 5 MiB), not the service's field rules: a batch it takes, the
//! service may still refuse.
//!
//! Standard output, one line each, for scripts (a run of `auditbuf receive --print` with
//! the README's first example, a bad body and a wrong path; `--print` adds the event line,
//! shortened here):
//!
//! ```text
//! listening on http://127.0.0.1:8080
//! 2026-12-03T10:17:18.357Z 201 batch of 1 event, 464 bytes
//! {"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2026-12-03T10:17:18.353Z",…}
//! 2026-12-03T10:17:18.369Z 400 refused 18 bytes: not a JSON array: the batch endpoint takes [event, …]
//! 2026-12-03T10:17:18.382Z 404 GET /metrics: no such path
//! totals: 3 requests; 201: 1 batch, 1 event, 464 bytes; 400: 1 request; 404: 1 request
//! ```
//!
//! The totals come at Ctrl-C or SIGTERM. Each request is answered on a thread of its own,
//! so a client that stops halfway through its body holds up no other.

mod answer;

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use auditbuf::DataStorageSink;
use signal_hook::consts::{SIGINT, SIGTERM};
use tiny_http::{Request, Server};

use crate::output::{self, count};
use crate::{Failure, ReceiveArgs};

/// How often the accept loop looks whether Ctrl-C was pressed; also its pause after an
/// accept error (out of file descriptors), which would otherwise repeat at once.
const POLL: Duration = Duration::from_millis(100);

/// What the requests so far got, by status code.
#[derive(Debug, Default)]
struct Totals {
    by_status: BTreeMap<u16, Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    /// Well-formed batches: their events, and their bodies' bytes.
    batches: u64,
    events: u64,
    bytes: u64,
    /// Any other request: a refused body, another path or method.
    others: u64,
}

/// `auditbuf receive`: serves until Ctrl-C or SIGTERM, then prints the totals (exit code
/// 0). Fails (exit code 2) only when it cannot listen on the address or install its
/// signal handlers.
pub(crate) fn receive(args: &ReceiveArgs) -> Result<u8, Failure> {
    let server = Server::http(args.listen.as_str())
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", args.listen)))?;
    let Some(addr) = server.server_addr().to_ip() else {
        return Err(Failure(format!("{} is not an IP address", args.listen)));
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The shutdown first: it sees the flag as the signal before left it, so a second
        // Ctrl-C ends the process at once even if the totals never come.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    output::print(&format!("listening on http://{addr}\n"))?;
    // Not on standard output, which scripts read.
    let _ = writeln!(
        io::stderr(),
        "auditbuf: DataStorageSink::new(\"http://{addr}\") posts to http://{addr}{}; Ctrl-C prints the totals",
        DataStorageSink::PATH
    );
    let (ok, print) = (args.status.unwrap_or(201), args.print);
    let totals = Arc::new(Mutex::new(Totals::default()));
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => {
                let totals = Arc::clone(&totals);
                let spawned = thread::Builder::new()
                    .name("auditbuf-receive".to_owned())
                    .spawn(move || serve(request, ok, print, &totals));
                if let Err(e) = spawned {
                    output::error(&format!("no thread for a request (it is dropped): {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => {
                output::error(&format!("accepting a connection: {e}"));
                thread::sleep(POLL);
            }
        }
    }
    // Under the lock: a request being counted is counted before the totals, not after.
    let totals = lock(&totals);
    output::print(&totals.line())?;
    Ok(0)
}

/// Answers one request, after printing and counting it: once a client has its answer,
/// the totals include it. `ok` is what a well-formed batch gets (201, or `--status`);
/// with `print`, its events are printed too.
fn serve(mut request: Request, ok: u16, print: bool, totals: &Mutex<Totals>) {
    let answer = answer::answer(&mut request, ok, print);
    {
        let mut totals = lock(totals);
        let tally = totals.by_status.entry(answer.status).or_default();
        match answer.batch {
            Some((events, bytes)) => {
                tally.batches += 1;
                tally.events += events;
                tally.bytes += bytes;
            }
            None => tally.others += 1,
        }
        let mut text = format!(
            "{} {} {}\n",
            output::time(SystemTime::now()),
            answer.status,
            answer.line
        );
        for event in &answer.events {
            text.push_str(event);
            text.push('\n');
        }
        if let Err(e) = output::print(&text) {
            output::error(&format!("writing to standard output: {e}"));
        }
    }
    // A client that went away before its answer is no concern of the receiver's.
    let _ = answer::send(request, answer);
}

fn lock(totals: &Mutex<Totals>) -> MutexGuard<'_, Totals> {
    // Nothing panics while holding it; were it poisoned, the counts are still whole.
    totals.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Totals {
    /// `totals: 5 requests; 201: 3 batches, 12 events, 4012 bytes; 400: 1 request; …`
    /// (a status that both well-formed batches and other requests got, under `--status
    /// 400`, lists both: `400: 2 batches, 7 events, 910 bytes, 1 other request`).
    fn line(&self) -> String {
        let requests: u64 = self.by_status.values().map(|t| t.batches + t.others).sum();
        let mut line = format!("totals: {}", count(requests, "request", "requests"));
        for (status, t) in &self.by_status {
            let mut parts = Vec::new();
            if t.batches > 0 {
                parts.push(count(t.batches, "batch", "batches"));
                parts.push(count(t.events, "event", "events"));
                parts.push(format!("{} bytes", t.bytes));
            }
            match (t.others, t.batches) {
                (0, _) => {}
                (n, 0) => parts.push(count(n, "request", "requests")),
                (n, _) => parts.push(count(n, "other request", "other requests")),
            }
            line.push_str(&format!("; {status}: {}", parts.join(", ")));
        }
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_name_batches_and_other_requests_by_status() {
        assert_eq!(Totals::default().line(), "totals: 0 requests\n");
        let mut totals = Totals::default();
        let t = totals.by_status.entry(400).or_default();
        (t.batches, t.events, t.bytes, t.others) = (2, 7, 910, 1);
        totals.by_status.entry(404).or_default().others = 1;
        assert_eq!(
            totals.line(),
            "totals: 4 requests; 400: 2 batches, 7 events, 910 bytes, 1 other request; 404: 1 request\n"
        );
    }
}
