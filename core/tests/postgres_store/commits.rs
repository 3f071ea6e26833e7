//! Commits cut off by a broken connection, with the server out of reach for the
//! reconnection the store tries at once: whether the delete took effect or not, each event
//! is sent once and counted once, and `stats` tells where every one is.

use super::*;

use std::sync::Mutex;

use auditbuf::{CallbackSink, Config, Outcome, Pipeline, RetryPolicy, Stats};
use crossbeam_channel::{Receiver as Gate, Sender};
use postgres::{Client, NoTls};

const ROWS: usize = 20;
const BATCH: usize = 10;

/// A pipeline draining `ROWS` rows of `table`, logging in as `role`, whose sink holds its
/// first batch until the test lets it go.
struct Drain {
    pipeline: Pipeline,
    /// The numbers of every event the sink was given, in order, re-sends included.
    seen: Arc<Mutex<Vec<usize>>>,
    holding: Gate<()>,
    release: Sender<()>,
}

impl Drain {
    fn start(pg: &TestPostgres, role: &str, table: &str) -> Drain {
        // Its own role, so that the test can refuse the store's logins and no one else's;
        // synchronous commits (the test servers' default is off), so that its commits wait
        // for a standby once one is named.
        pg.psql(&format!(
            "CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}; \
             ALTER ROLE {role} SET synchronous_commit = on"
        ));
        let url = pg.url().replacen("postgres@", &format!("{role}@"), 1);
        let params = json!({"url": url});
        let mut seed = open_table(table, params.clone());
        let events: Vec<Vec<u8>> = (0..ROWS).map(numbered).collect();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        seed.append(&refs).unwrap();
        seed.close().unwrap();
        drop(seed);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let (holding_tx, holding) = crossbeam_channel::bounded(1);
        let (release, gate) = crossbeam_channel::bounded::<()>(1);
        let mut first = true;
        let sink = CallbackSink::new({
            let seen = Arc::clone(&seen);
            move |batch: &[&[u8]]| {
                if std::mem::take(&mut first) {
                    let _ = holding_tx.send(());
                    let _ = gate.recv();
                }
                seen.lock()
                    .unwrap()
                    .extend(batch.iter().map(|e| number_of(e)));
                Outcome::Delivered
            }
        });
        let retry =
            RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(50));
        let config = Config::default().batch_max_events(BATCH).retry(retry);
        let pipeline = Pipeline::with_store(config, sink, open_table(table, params)).unwrap();
        Drain {
            pipeline,
            seen,
            holding,
            release,
        }
    }

    /// Waits until the sink holds the first batch (rows `0..BATCH`, claimed).
    fn until_held(&self) {
        self.holding
            .recv_timeout(Duration::from_secs(10))
            .expect("the first batch never reached the sink");
    }

    /// Waits until the pipeline reports that the store could not reach the server.
    fn until_refused(&self, role: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let error = self.pipeline.last_error().unwrap_or_default();
            if error.contains("not permitted to log in") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the store never tried to log in again as {role}: {error:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every row is gone from `table`, then closes the pipeline: its stats, and
    /// what the sink was given.
    fn finish(self, pg: &TestPostgres, table: &str) -> (Stats, Vec<usize>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while (self.seen.lock().unwrap().len() < ROWS
            || pg.psql(&format!("SELECT count(*) FROM {table}")) != "0")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = self.pipeline.close(Duration::from_secs(5));
        assert!(report.completed, "{report:?}");
        let seen = self.seen.lock().unwrap().clone();
        (report.stats, seen)
    }
}

/// Terminates the backend of `role` that waits for `wait` (an event or its type), once it
/// does.
fn terminate_waiting(pg: &TestPostgres, role: &str, wait: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let killed = pg.psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = '{role}' AND '{wait}' IN (wait_event, wait_event_type)"
        ));
        if killed != "0" {
            assert_eq!(killed, "1");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store's delete never waited for {wait}: {}",
            pg.psql(&format!(
                "SELECT string_agg(coalesce(wait_event, '-') || ' ' || query, '; ') \
                 FROM pg_stat_activity WHERE usename = '{role}'"
            ))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes the commits of sessions with `synchronous_commit` on wait for a standby that does
/// not exist, and returns once they do: such a commit is written, and visible once its
/// session ends, but its client gets no answer.
fn commits_wait_for_a_standby(pg: &TestPostgres) {
    pg.psql("CREATE TABLE IF NOT EXISTS probe (n int)");
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
    pg.psql("SELECT pg_reload_conf()");
    // The checkpointer turns the setting on when it reloads its configuration: probe until
    // a commit waits (then cancel the wait; the probe's row is committed all the same).
    let url = format!("{}?application_name=probe", pg.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = std::thread::spawn({
            let url = url.clone();
            move || {
                let mut client = Client::connect(&url, NoTls).unwrap();
                client
                    .batch_execute("SET synchronous_commit = on; INSERT INTO probe VALUES (1)")
                    .unwrap();
            }
        });
        let waited = loop {
            let waiting = pg.psql(
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'probe' AND wait_event = 'SyncRep'",
            );
            if waiting != "0" {
                break true;
            }
            if probe.is_finished() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        probe.join().unwrap();
        if waited {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "commits never waited for the standby"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Names no standby any more: commits are answered at once again.
fn commits_answer_again(pg: &TestPostgres) {
    pg.psql("ALTER SYSTEM RESET synchronous_standby_names");
    pg.psql("SELECT pg_reload_conf()");
}

/// Every row sent exactly once, in order, and counted so: delivered once each, nothing
/// re-sent, nothing left in the store.
fn assert_exact(stats: &Stats, seen: &[usize]) {
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(seen, (0..ROWS).collect::<Vec<_>>(), "{stats:?}");
    assert_eq!(
        (
            stats.recovered,
            stats.delivered,
            stats.redelivered,
            stats.stored
        ),
        (ROWS as u64, ROWS as u64, 0, 0),
        "recovered, delivered, redelivered, stored: {stats:?}"
    );
}

/// The delete is written on the server, then the connection breaks before its answer
/// arrives (the session is ended while its commit waits for a synchronous standby), and
/// the server refuses the store's new connection: the commit failed as far as the store
/// can tell, but the rows are gone. Nothing is sent again, so nothing may be counted as
/// sent again.
#[test]
fn a_delete_written_before_the_connection_broke_counts_its_rows_once() {
    // A server of its own: making commits wait for a standby holds up every session that
    // asks for synchronous commits.
    let pg = TestPostgres::start();
    let (role, table) = ("ambiguous_app", "ambiguous");
    let drain = Drain::start(&pg, role, table);
    drain.until_held();
    // The store's session stays; the new one it makes at once when that one breaks is
    // refused, so the delete is not simply made again on it.
    pg.psql(&format!("ALTER ROLE {role} NOLOGIN"));
    commits_wait_for_a_standby(&pg);
    drain.release.send(()).unwrap();
    terminate_waiting(&pg, role, "SyncRep");
    drain.until_refused(role);
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {table}")),
        (ROWS - BATCH).to_string(),
        "the delete of the first batch took effect"
    );
    commits_answer_again(&pg);
    pg.psql(&format!("ALTER ROLE {role} LOGIN"));
    let (stats, seen) = drain.finish(&pg, table);
    assert_exact(&stats, &seen);
}

/// The connection breaks while the delete waits for a row lock, so it never takes effect,
/// and the server refuses the store's new connection: the rows are still there, and are
/// removed, not sent again, once the server takes connections again.
#[test]
fn a_delete_cut_before_it_took_effect_is_made_once_the_server_is_back() {
    let pg = TestPostgres::shared();
    let (role, table) = ("cut_commit_app", "cut_commit");
    let drain = Drain::start(pg, role, table);
    drain.until_held();
    let mut locker = Client::connect(&pg.url(), NoTls).unwrap();
    let mut lock = locker.transaction().unwrap();
    lock.execute(
        &format!("SELECT id FROM {table} ORDER BY id LIMIT 1 FOR UPDATE"),
        &[],
    )
    .unwrap();
    // As above: the delete is not made again at once on a new session.
    pg.psql(&format!("ALTER ROLE {role} NOLOGIN"));
    drain.release.send(()).unwrap();
    terminate_waiting(pg, role, "Lock");
    drain.until_refused(role);
    lock.rollback().unwrap();
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {table}")),
        ROWS.to_string(),
        "the delete of the first batch did not take effect"
    );
    pg.psql(&format!("ALTER ROLE {role} LOGIN"));
    let (stats, seen) = drain.finish(pg, table);
    assert_exact(&stats, &seen);
}

/// Sent rows whose delete keeps failing on a live connection (here the store's role lost
/// the DELETE privilege) stay with the replica that sent them: its ticks renew their lease,
/// so no other replica takes them and sends them again, and they go once the delete works.
#[test]
fn sent_rows_whose_delete_keeps_failing_keep_their_lease() {
    let pg = TestPostgres::shared();
    let (role, table) = ("undeleting_app", "undeleting");
    pg.psql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}"
    ));
    let url = pg.url().replacen("postgres@", &format!("{role}@"), 1);
    let mut live = open_table(table, json!({"url": url, "lease_ms": 400}));
    live.append(&[b"{\"n\":1}", b"{\"n\":2}"]).unwrap();
    assert_eq!(payloads(&mut *live, 10).len(), 2);
    pg.psql(&format!("REVOKE DELETE ON {table} FROM {role}"));
    // Settled: the delete fails, and is made again later.
    live.commit(2).unwrap();
    let mut other = open_table(table, json!({"lease_ms": 400}));
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        // Fails for as long as the delete does; the renewals go on.
        let _ = live.tick();
        assert!(
            payloads(&mut *other, 10).is_empty(),
            "another replica took rows sent already"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pg.psql(&format!("GRANT DELETE ON {table} TO {role}"));
    live.tick().unwrap();
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM {table}")), "0");
    assert!(payloads(&mut *other, 10).is_empty());
}
