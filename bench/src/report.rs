//! The printed report: the scenario, a table with one column per system, notes, and the
//! checks that decide the exit status.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::args::{Args, OverflowArg, SinkRate, StoreKind};
use crate::run::RunResult;
use crate::target::{Accounting, Counts};

/// The accounting invariant, as every part of the project writes it.
pub const INVARIANT: &str = "recorded (accepted) + recovered = delivered + dead_lettered + failed + dropped + in_flight + queued + stored";

/// `5 000 000`: digits in groups of three.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `512k/s`, `1.2M/s`: compact, for the live progress line.
pub fn rate(per_second: f64) -> String {
    match per_second {
        r if r >= 1e6 => format!("{:.1}M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.0}k/s", r / 1e3),
        r => format!("{r:.0}/s"),
    }
}

/// A call's time: `310 ns`, `3.1 µs`, `1.20 ms`, `1.5 s`.
pub fn nanos(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 10_000 => format!("{:.2} µs", n as f64 / 1e3),
        n if n < 1_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.2} ms", n as f64 / 1e6),
        n => format!("{:.2} s", n as f64 / 1e9),
    }
}

/// `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `250ms`, `1s`, `1.5s`.
pub fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Events per second over `secs`, as a whole number.
fn per_second(n: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "—".to_owned();
    }
    format!("{}/s", count((n as f64 / secs).round() as u64))
}

/// One verdict of the end-of-run checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The system checked.
    pub system: &'static str,
    /// What was compared.
    pub what: String,
    /// Whether it held (`None`: not applicable, proves nothing).
    pub holds: Option<bool>,
    /// The numbers.
    pub detail: String,
}

/// The checks of every system: its accounting, the calls the producers made against what
/// the system counted, and the receiver against what the system says it delivered.
pub fn checks(results: &[RunResult]) -> Vec<Check> {
    let mut out = Vec::new();
    for r in results {
        let c = &r.finish.counts;
        let (holds, detail, what) = match &r.finish.accounting {
            Accounting::Checked { holds, detail } => (*holds, detail.clone(), INVARIANT.to_owned()),
            Accounting::ByTheBench { holds, detail } => (
                *holds,
                detail.clone(),
                "accepted = delivered + failed + dropped + in_flight + queued (the bench's count)"
                    .to_owned(),
            ),
        };
        out.push(Check {
            system: r.system,
            what,
            holds: Some(holds),
            detail,
        });
        out.push(Check {
            system: r.system,
            what: "offered = accepted + rejected".to_owned(),
            holds: Some(c.offered == c.accepted + c.rejected()),
            detail: format!(
                "{} = {} + {}",
                count(c.offered),
                count(c.accepted),
                count(c.rejected())
            ),
        });
        let acknowledged = r.receiver.acknowledged;
        let expected = c.delivered + r.finish.redelivered;
        out.push(Check {
            system: r.system,
            what: "the receiver acknowledged what the system counts as delivered".to_owned(),
            // A close that ran out of time may leave a batch the receiver took unreported.
            holds: r.finish.completed.then_some(acknowledged == expected),
            detail: format!(
                "{} = {}{}",
                count(acknowledged),
                count(c.delivered),
                if r.finish.redelivered > 0 {
                    format!(" + {} sent twice", count(r.finish.redelivered))
                } else {
                    String::new()
                }
            ),
        });
    }
    out
}

/// The scenario in two lines.
pub fn scenario(args: &Args, receiver_note: &str) -> String {
    let rate = match args.offered_rate() {
        Some(total) => format!(
            "{} producer{} × {} events/s ({}/s offered)",
            args.producers,
            if args.producers == 1 { "" } else { "s" },
            count(total / u64::from(args.producers)),
            count(total)
        ),
        None => format!(
            "{} unthrottled producer{}",
            args.producers,
            if args.producers == 1 { "" } else { "s" }
        ),
    };
    let sink_rate = match args.sink_rate {
        SinkRate::Unlimited => "as fast as it can".to_owned(),
        SinkRate::PerSecond(r) => format!("at most {} events/s", count(r)),
    };
    let store = match args.store {
        StoreKind::None => "no store".to_owned(),
        StoreKind::Memory => "memory store".to_owned(),
        StoreKind::File => "file store".to_owned(),
        StoreKind::Sqlite => "sqlite store".to_owned(),
    };
    let lanes = match args.max_lanes {
        1 => String::new(),
        n => format!(" in up to {n} lanes"),
    };
    format!(
        "auditbuf-bench: {rate} for {} s, {}-byte events, queue {}{lanes}, overflow {}\n\
         receiver on 127.0.0.1: {}, acknowledging {sink_rate}; {store}, {} durability{receiver_note}\n",
        args.duration.as_secs_f64(),
        args.event_bytes,
        count(u64::from(args.queue_capacity)),
        args.overflow.name(),
        args.sink.describe(),
        match args.durability {
            crate::args::DurabilityArg::Buffered => "buffered",
            crate::args::DurabilityArg::Wal => "wal",
        }
    )
}

struct Table {
    columns: usize,
    rows: Vec<(String, Vec<String>)>,
}

impl Table {
    fn row(&mut self, label: &str, cells: Vec<String>) {
        self.rows.push((label.to_owned(), cells));
    }

    fn render(&self, header: &[&str]) -> String {
        let label_width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = (0..self.columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|(_, c)| c.get(i))
                    .chain(header.get(i).map(|h| h.to_string()).as_ref())
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let pad =
            |s: &str, w: usize| format!("{}{s}", " ".repeat(w.saturating_sub(s.chars().count())));
        let _ = write!(out, "{}", " ".repeat(label_width));
        for (h, w) in header.iter().zip(&widths) {
            let _ = write!(out, "   {}", pad(h, *w));
        }
        out.push('\n');
        for (label, cells) in &self.rows {
            let _ = write!(
                out,
                "{label}{}",
                " ".repeat(label_width - label.chars().count())
            );
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(out, "   {}", pad(c, *w));
            }
            out.push('\n');
        }
        out
    }
}

/// The table: one column per system.
pub fn table(args: &Args, results: &[RunResult]) -> String {
    let mut t = Table {
        columns: results.len(),
        rows: Vec::new(),
    };
    let col = |f: &dyn Fn(&RunResult) -> String| results.iter().map(f).collect::<Vec<_>>();
    let any = |f: fn(&Counts) -> u64| results.iter().any(|r| f(&r.finish.counts) > 0);
    let num = |f: fn(&Counts) -> u64| col(&|r| count(f(&r.finish.counts)));

    t.row("offered", num(|c| c.offered));
    t.row("accepted", num(|c| c.accepted));
    if any(|c| c.recovered) {
        t.row("  + found in the store", num(|c| c.recovered));
    }
    t.row("  delivered", num(|c| c.delivered));
    t.row("  dead-lettered", num(|c| c.dead_lettered));
    t.row("  failed", num(|c| c.failed));
    t.row("  dropped", num(|c| c.dropped()));
    for (label, f) in [
        (
            "    oldest evicted",
            (|c: &Counts| c.dropped_oldest) as fn(&Counts) -> u64,
        ),
        ("    at shutdown", |c| c.dropped_shutdown),
        ("    store full", |c| c.dropped_store_full),
        ("    damaged in the store", |c| c.dropped_damaged),
    ] {
        if any(f) {
            t.row(label, num(f));
        }
    }
    t.row("  stored at the end", num(|c| c.stored));
    if any(|c| c.queued + c.in_flight) {
        t.row(
            "  still queued or in flight",
            num(|c| c.queued + c.in_flight),
        );
    }
    t.row("rejected", num(|c| c.rejected()));
    for (label, f) in [
        (
            "  queue full",
            (|c: &Counts| c.rejected_full) as fn(&Counts) -> u64,
        ),
        ("  block timeout", |c| c.rejected_timeout),
        ("  other reasons", |c| c.rejected_other),
    ] {
        if any(f) {
            t.row(label, num(f));
        }
    }
    latency_rows(&mut t, results, "calls that took the event", |r| {
        &r.timings.accepted
    });
    let refused_label = match args.overflow {
        OverflowArg::Block(_) => "calls turned away (after waiting)",
        _ => "calls turned away",
    };
    latency_rows(&mut t, results, refused_label, |r| &r.timings.refused);
    t.row(
        "offered/s",
        col(&|r| per_second(r.series.at_run_end().offered, r.run_secs)),
    );
    t.row(
        "delivered/s while offered",
        col(&|r| per_second(r.series.at_run_end().delivered, r.run_secs)),
    );
    t.row("close took", col(&|r| format!("{:.2} s", r.close_secs)));
    t.row("receiver requests", col(&|r| count(r.receiver.requests)));
    for (label, f) in [
        (
            "  answered 503 (outage)",
            (|r: &RunResult| r.receiver.outage_answers) as fn(&RunResult) -> u64,
        ),
        ("  answered 500 (errors)", |r| r.receiver.error_answers),
        ("  answered 400 (reject)", |r| r.receiver.reject_answers),
    ] {
        if results.iter().any(|r| f(r) > 0) {
            t.row(label, col(&|r| count(f(r))));
        }
    }
    t.row(
        "peak RSS",
        col(&|r| r.peak_rss.map_or_else(|| "unknown".to_owned(), mib)),
    );
    let header: Vec<&str> = results.iter().map(|r| r.system).collect();
    t.render(&header)
}

fn latency_rows(
    t: &mut Table,
    results: &[RunResult],
    label: &str,
    h: fn(&RunResult) -> &Histogram<u64>,
) {
    // No line at all for calls nobody made.
    if results.iter().all(|r| h(r).is_empty()) {
        return;
    }
    let cell = |r: &RunResult, f: &dyn Fn(&Histogram<u64>) -> u64| {
        let h = h(r);
        if h.is_empty() {
            "—".to_owned()
        } else {
            nanos(f(h))
        }
    };
    t.row(
        &format!("{label}, timed"),
        results.iter().map(|r| count(h(r).len())).collect(),
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        t.row(
            &format!("  {name}"),
            results
                .iter()
                .map(|r| cell(r, &|h| h.value_at_quantile(q)))
                .collect(),
        );
    }
    t.row(
        "  max",
        results.iter().map(|r| cell(r, &|h| h.max())).collect(),
    );
}

/// Lines under the table: what the numbers mean for this policy, and what each system said.
pub fn notes(args: &Args, results: &[RunResult]) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str("- ");
        out.push_str(&s);
        out.push('\n');
    };
    line(match args.overflow {
        OverflowArg::DropNewest => "drop-newest: a call that found the queue full returned without waiting for a slot (auditbuf: Error::Full, yielding the CPU once every 32 refusals while its flush thread runs); the caller was told".to_owned(),
        OverflowArg::DropOldest => "drop-oldest: a call that found the queue full evicted the oldest queued event and took its place; nothing waited".to_owned(),
        OverflowArg::Block(t) => format!("block: a call that found the queue full waited up to {} for room, then gave up (auditbuf: Error::Timeout); accepted calls' times include their waits", duration(t)),
        OverflowArg::Spill => "spill: a call that found the queue full wrote the event to the store on the caller's thread".to_owned(),
    });
    if args.durability == crate::args::DurabilityArg::Wal {
        line("wal: every call that took the event waited for the store's append and sync (shared with the calls waiting at the same time)".to_owned());
    }
    line("latencies are of each call as the producer timed it (two clock reads included), over every call of the run".to_owned());
    for r in results {
        if r.timings.missed > 0 {
            line(format!(
                "{}: the producers fell behind their schedule and skipped {} calls (a busy machine, or calls that waited)",
                r.system,
                count(r.timings.missed)
            ));
        }
        for n in &r.finish.notes {
            line(n.clone());
        }
        if let Some(e) = &r.finish.last_error {
            line(format!("{}: last error: {e}", r.system));
        }
        if !r.finish.completed {
            line(format!(
                "{}: the close did not finish within {} s",
                r.system,
                args.drain_timeout.as_secs_f64()
            ));
        }
    }
    if results.iter().any(|r| r.system == "tracing-appender")
        && !matches!(args.overflow, OverflowArg::Block(_))
    {
        line("tracing-appender: its write returns Ok for a line it drops, so its \"took the event\" times cover every call".to_owned());
    }
    let own = results.iter().all(|r| r.peak_is_own);
    line(format!(
        "peak RSS: the whole bench process (producers, queue, receiver){}",
        if results.len() > 1 && own {
            ", reset before each system's run"
        } else if results.len() > 1 {
            ", not resettable here: later columns include earlier runs"
        } else {
            ""
        }
    ));
    out
}

/// The checks, one line each.
pub fn render_checks(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = match c.holds {
            Some(true) => "holds",
            Some(false) => "DOES NOT HOLD",
            None => "n/a",
        };
        let _ = writeln!(out, "{:<16} {}: {} — {verdict}", c.system, c.what, c.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_times_scaled() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1 000");
        assert_eq!(count(5_000_000), "5 000 000");
        assert_eq!(nanos(310), "310 ns");
        assert_eq!(nanos(3_140), "3.14 µs");
        assert_eq!(nanos(12_300), "12.3 µs");
        assert_eq!(nanos(1_200_000), "1.20 ms");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(1)), "1s");
        assert_eq!(per_second(1_000, 0.5), "2 000/s");
        assert_eq!(mib(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }

    #[test]
    fn the_invariant_balances_every_counter() {
        let mut c = Counts {
            offered: 100,
            accepted: 60,
            recovered: 5,
            delivered: 40,
            dead_lettered: 1,
            failed: 2,
            dropped_oldest: 3,
            dropped_shutdown: 4,
            queued: 6,
            in_flight: 2,
            stored: 7,
            rejected_full: 30,
            rejected_timeout: 10,
            ..Counts::default()
        };
        assert!(c.balances());
        assert_eq!(c.rejected(), 40);
        assert_eq!(c.dropped(), 7);
        assert_eq!(c.lost(), 49);
        c.delivered += 1;
        assert!(!c.balances());
    }

    #[test]
    fn the_table_has_a_column_per_system() {
        let mut t = Table {
            columns: 2,
            rows: Vec::new(),
        };
        t.row("offered", vec!["10".into(), "2 000".into()]);
        t.row("  delivered", vec!["1".into(), "—".into()]);
        let text = t.render(&["auditbuf", "naive"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].ends_with("      10   2 000"), "{text}");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "{text}"
        );
    }
}
