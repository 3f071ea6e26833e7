//! Durability `wal`: nothing `record` acknowledged is lost when the process is killed with
//! SIGKILL at a random moment, again and again on the same store.
//!
//! The test binary runs itself as the child (`wal_child`, which does nothing unless
//! `AUDITBUF_CRASH_DIR` is set). Rounds: 20, or `AUDITBUF_CRASH_ROUNDS`
//! (`scripts/crash-test 500` runs more).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use auditbuf::{
    CallbackSink, Config, Durability, FileStoreConfig, Fsync, HttpConfig, HttpSink, Outcome,
    Pipeline, RetryPolicy, StoreConfig,
};
use auditbuf_testkit::{Receiver, Reply};

const DIR_VAR: &str = "AUDITBUF_CRASH_DIR";
const ROUND_VAR: &str = "AUDITBUF_CRASH_ROUND";
const THREADS: usize = 4;

fn store(dir: &str) -> StoreConfig {
    StoreConfig::File(
        FileStoreConfig::new(dir)
            .segment_bytes(64 * 1024)
            .fsync(Fsync::Always),
    )
}

/// The child: records from several threads in `wal` mode and prints each acknowledgement,
/// until it is killed. Its sink never takes anything, so every event stays in the store.
#[test]
fn wal_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(DIR_VAR), std::env::var(ROUND_VAR)) else {
        return;
    };
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("the receiver is not up yet"));
    let retry = RetryPolicy::default().backoff(Duration::from_secs(5), Duration::from_secs(5));
    let config = Config::default()
        .durability(Durability::Wal)
        .retry(retry)
        .store(store(&dir));
    let pipeline = Arc::new(Pipeline::new(config, sink).unwrap());
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pipeline, stdout, round) =
                (Arc::clone(&pipeline), Arc::clone(&stdout), round.clone());
            std::thread::spawn(move || {
                for seq in 0u64.. {
                    let event = format!(
                        r#"{{"event_type":"crash","round":{round},"thread":{t},"seq":{seq}}}"#
                    );
                    pipeline.record_json(event.as_bytes()).unwrap();
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "ack {round} {t} {seq}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let rounds: u64 = std::env::var("AUDITBUF_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("auditbuf-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_str = dir.to_str().unwrap().to_owned();
    // (round, thread) -> acknowledged sequence numbers.
    let mut acked: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut rng = fastrand::Rng::with_seed(rounds);
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["wal_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, &dir_str)
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let n: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if let [r, t, seq] = n[..] {
                        lines.push((r, t, seq));
                    }
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for (r, t, seq) in reader.join().unwrap() {
            acked.entry((r, t)).or_default().push(seq);
        }
    }
    let total_acked: usize = acked.values().map(Vec::len).sum();
    assert!(total_acked > 0, "the child never acknowledged an event");

    // Drain what the crashed runs kept to a real receiver.
    let receiver = Receiver::start(|_| Reply::created());
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let pipeline = Pipeline::new(Config::default().store(store(&dir_str)), sink).unwrap();
    let report = pipeline.close(Duration::from_secs(120));
    assert!(report.completed, "{:?}", report.stats);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.stored, 0, "{:?}", report.stats);

    let mut delivered: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut last_round = 0;
    for event in receiver.delivered() {
        let get = |k: &str| event[k].as_u64().unwrap();
        let (r, t, seq) = (get("round"), get("thread"), get("seq"));
        assert!(
            r >= last_round,
            "round {r} delivered after round {last_round}"
        );
        last_round = r;
        delivered.entry((r, t)).or_default().push(seq);
    }
    for (key, seqs) in &delivered {
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(
            seqs, &expected,
            "thread {key:?}: out of order, duplicated or with a gap"
        );
    }
    for (key, acks) in &acked {
        let got = delivered.get(key).map_or(0, Vec::len) as u64;
        let highest = acks.iter().max().copied().unwrap_or(0);
        assert!(
            got > highest,
            "thread {key:?}: acknowledged up to {highest} but only {got} survived"
        );
    }
    eprintln!(
        "{rounds} kills: {total_acked} acknowledged events, {} delivered after recovery",
        report.stats.delivered
    );
    let _ = std::fs::remove_dir_all(&dir);
}
