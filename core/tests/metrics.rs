//! Prometheus metrics: the names of kubernaut's `pkg/audit`, values equal to the counters,
//! valid exposition text (`promtool check metrics`), and registration that never panics.

use std::time::Duration;

use auditbuf::{CallbackSink, Config, MemoryStore, MemoryStoreConfig, Outcome, Pipeline};
use prometheus_client::registry::Registry;

/// The value of the sample `name{labels}` in `text`.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name_and_labels} not in\n{text}"))
        .parse()
        .unwrap()
}

fn busy_pipeline() -> Pipeline {
    let sink = CallbackSink::new(|batch: &[&[u8]]| {
        if batch.iter().any(|e| e.windows(6).any(|w| w == b"poison")) {
            Outcome::rejected("schema")
        } else {
            Outcome::Delivered
        }
    });
    let config = Config::default()
        .service("gate\"way")
        .queue_capacity(64)
        .flush_interval(Duration::from_millis(5));
    let p =
        Pipeline::with_store(config, sink, MemoryStore::new(MemoryStoreConfig::default())).unwrap();
    for i in 0..40 {
        let _ = p.record_json(format!(r#"{{"event_type":"t","n":{i}}}"#).as_bytes());
    }
    p.record_json(br#"{"event_type":"t","what":"poison"}"#)
        .unwrap();
    let _ = p.record_json(b"{not json");
    let _ = p.record_json(b"[]");
    p.flush(Duration::from_secs(5));
    p
}

#[test]
fn metrics_carry_the_counters_under_kubernauts_names() {
    let p = busy_pipeline();
    let text = p.metrics_text();
    let s = p.stats();
    assert!(s.is_consistent(), "{s:?}");
    let svc = r#"service="gate\"way""#;
    assert_eq!(
        sample(&text, &format!("audit_events_buffered_total{{{svc}}}")),
        s.recorded as f64
    );
    assert_eq!(
        sample(&text, &format!("audit_events_written_total{{{svc}}}")),
        s.delivered as f64
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"audit_events_dropped_total{{{svc},reason="invalid_json"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"audit_events_dropped_total{{{svc},reason="not_an_object"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"audit_events_dead_lettered_total{{{svc},reason="rejected"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("audit_buffer_capacity{{{svc}}}")),
        64.0
    );
    let sends = sample(
        &text,
        &format!("audit_write_duration_seconds_count{{{svc}}}"),
    );
    assert_eq!(sends, s.sends as f64);
    for name in [
        "audit_batches_failed_total",
        "audit_retries_total",
        "audit_buffer_size",
        "audit_backing_store_events",
        "audit_backing_store_bytes",
        "audit_backing_store_oldest_age_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
}

#[test]
fn metrics_text_passes_promtool() {
    let text = busy_pipeline().metrics_text();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(e) if std::env::var_os("AUDITBUF_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not available ({e}); scripts/test installs it");
            return;
        }
        Err(e) => panic!("promtool is required here: {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn registering_twice_is_an_error_not_a_panic() {
    let p = busy_pipeline();
    let mut registry = Registry::default();
    p.register_metrics(&mut registry).unwrap();
    let again = p.register_metrics(&mut registry).unwrap_err();
    assert!(again.to_string().contains("metrics"), "{again}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert_eq!(
        text.matches("# TYPE audit_events_buffered counter").count(),
        1
    );
}

/// The `/metrics` endpoint against clients that are slow, idle or endless: none holds up
/// another's scrape, a request line without end is cut off, and the server stops at once.
#[cfg(feature = "metrics-server")]
#[test]
fn the_metrics_endpoint_is_not_held_up_by_slow_or_endless_clients() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let p = Pipeline::new(Config::default().service("gateway"), auditbuf::NullSink).unwrap();
    let server = p.serve_metrics("127.0.0.1:0").unwrap();
    let scrape = || {
        let mut conn = TcpStream::connect(server.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    // Idle clients and one that trickles its request a byte every 300 ms.
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /metrics HTTP/1.1\r\n" {
            if slow.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let started = std::time::Instant::now();
    assert!(scrape().starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A request line that never ends: answered 431 after 16 KiB and closed, not read for
    // ever; what the client still sends is read before the close, so that the client gets
    // the 431 rather than a reset.
    let mut endless = TcpStream::connect(server.addr()).unwrap();
    endless
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let junk = vec![b'x'; 64 * 1024];
    let _ = endless.write_all(&junk);
    let mut answer = String::new();
    endless.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(scrape().starts_with("HTTP/1.1 200"));
    // HEAD is not served, and says what is.
    let mut head = TcpStream::connect(server.addr()).unwrap();
    head.write_all(b"HEAD /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    head.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405") && answer.contains("Allow: GET"));
    let started = std::time::Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    let _ = trickle.join();
    assert!(p.close(Duration::from_secs(5)).stats.is_consistent());
}

#[cfg(feature = "metrics-server")]
const OUT_OF_FDS: &str = "AUDITBUF_METRICS_OUT_OF_FDS";

#[cfg(feature = "metrics-server")]
/// CPU time this process has used (user and system).
fn cpu_used() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for getrusage to fill.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The child of the test below: a metrics endpoint in a process out of file descriptors,
/// with a client waiting to be accepted (the parent). Prints the CPU time used meanwhile.
#[cfg(feature = "metrics-server")]
#[test]
fn out_of_fds_child() {
    let Ok(ready) = std::env::var(OUT_OF_FDS) else {
        return;
    };
    let p = Pipeline::new(Config::default(), auditbuf::NullSink).unwrap();
    let server = p.serve_metrics("127.0.0.1:0").unwrap();
    let limit = libc::rlimit {
        rlim_cur: std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 + 3,
        rlim_max: 4096,
    };
    // SAFETY: a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
    }
    // The parent connects once it reads the port, and says so by creating `ready`.
    println!("port {}", server.addr().port());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(&ready).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = cpu_used();
    std::thread::sleep(Duration::from_secs(1));
    println!("cpu {} ms", (cpu_used() - before).as_millis());
    drop(held);
    std::process::exit(0);
}

#[cfg(feature = "metrics-server")]
#[test]
fn the_metrics_endpoint_does_not_spin_when_the_process_is_out_of_file_descriptors() {
    use std::io::{BufRead, BufReader};
    let ready = std::env::temp_dir().join(format!("auditbuf-fds-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "out_of_fds_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OUT_OF_FDS, &ready)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = lines
        .by_ref()
        // libtest writes the test's name on the same line first.
        .find_map(|l| l.ok()?.split("port ").nth(1)?.trim().parse::<u16>().ok())
        .expect("the child printed no port");
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::fs::write(&ready, b"").unwrap();
    let cpu: u64 = lines
        .find_map(|l| {
            l.ok()?
                .split("cpu ")
                .nth(1)?
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .expect("the child printed no CPU time");
    let _ = child.wait();
    let _ = std::fs::remove_file(&ready);
    // Spinning on the failing accept took all of a CPU (~1 000 ms of the second).
    assert!(cpu < 300, "the accept loop used {cpu} ms of CPU in 1 s");
}
