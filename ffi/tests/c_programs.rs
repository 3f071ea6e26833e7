//! Runs the C test programs (built by `ffi/tests/c/Makefile`) against a real HTTP receiver
//! on 127.0.0.1, and checks that it received exactly the events the programs say they
//! delivered, each once. Run by `ffi/run-c-tests`, which builds the programs and passes
//! one command per line in `AUDITBUF_C_RUNS` (static, shared, sanitizers, valgrind).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use auditbuf_testkit::{Receiver, Reply};

#[test]
#[ignore = "needs the C programs: run ffi/run-c-tests"]
fn c_programs_deliver_exactly_what_they_recorded() {
    let runs = std::env::var("AUDITBUF_C_RUNS")
        .expect("AUDITBUF_C_RUNS: one command per line (ffi/run-c-tests sets it)");
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/events");
    for command in runs.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let receiver = Receiver::start(|_| Reply::created());
        let started = Instant::now();
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("AUDITBUF_TEST_URL", receiver.url())
            .env("AUDITBUF_VECTORS", &vectors)
            .output()
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{command}: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status
        );
        let expected: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("EXPECT delivered "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{command}: no EXPECT line\n{stdout}"));
        assert!(expected > 0, "{command}: delivered nothing to the receiver");
        // The programs close their pipelines before exiting: everything has arrived.
        assert!(receiver.wait_for_delivered(expected, Duration::from_secs(5)));
        assert_eq!(receiver.delivered_count(), expected, "{command}");
        let ids = receiver.delivered_field("correlation_id");
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{command}: an event arrived twice");
        assert!(unique.contains(&"http-0".to_owned()) && unique.contains(&"t7-0".to_owned()));
        eprintln!(
            "{command}: ok, {expected} events delivered to {} in {:.1} s",
            receiver.url(),
            started.elapsed().as_secs_f64()
        );
    }
}
