//! `store verify` and `store inspect`: what a store holds and what opening it would do,
//! read without changing it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use auditbuf::{DeadLetter, StoreCheck};
use serde_json::{Value, json};

use crate::output::{self, age, age_seconds, bytes, count, one_line, time};
use crate::{Failure, StoreArgs, source};

/// `auditbuf store verify`: exit code 0 healthy, 1 damaged.
pub(crate) fn verify(args: &StoreArgs) -> Result<u8, Failure> {
    let check = source::store(args)?.verify()?;
    let text = if args.json {
        json_line(&verify_json(&check))
    } else {
        verify_text(&check)
    };
    output::print(&text)?;
    Ok(if check.is_healthy() { 0 } else { 1 })
}

/// `auditbuf store inspect`.
pub(crate) fn inspect(args: &StoreArgs) -> Result<u8, Failure> {
    let config = source::store(args)?;
    let check = config.verify()?;
    let letters = config.read_dead_letters()?;
    let reasons = by_reason(&letters);
    let text = if args.json {
        json_line(&inspect_json(&check, &letters, &reasons))
    } else {
        inspect_text(&check, &letters, &reasons)
    };
    output::print(&text)?;
    Ok(0)
}

fn json_line(value: &Value) -> String {
    format!("{value}\n")
}

fn title(check: &StoreCheck) -> String {
    format!("{} store {}", check.kind, check.location)
}

/// What a recovery would do, in a few words: `lose 1 event, cut 66 bytes`; `fail` for a
/// store that would not open.
pub(crate) fn summary(check: &StoreCheck) -> String {
    if check.open_error.is_some() {
        return "fail".to_owned();
    }
    let mut parts = Vec::new();
    if check.lost_events > 0 {
        parts.push(format!(
            "lose {}",
            count(check.lost_events, "event", "events")
        ));
    }
    if !check.missing.is_empty() {
        // Gone already, not lost by opening: named so that the store is not taken for healthy.
        parts.push("find segments missing, whose unsent events are lost".to_owned());
    }
    if !check.quarantined.is_empty() || check.quarantined_events > 0 {
        parts.push(if check.quarantined_events > 0 {
            format!(
                "move {} to the dead letters",
                count(check.quarantined_events, "event", "events")
            )
        } else {
            format!(
                "quarantine {}",
                count(check.quarantined.len() as u64, "segment", "segments")
            )
        });
    }
    if check.cut_bytes > 0 {
        parts.push(format!("cut {}", count(check.cut_bytes, "byte", "bytes")));
    }
    if check.cursor_reset {
        parts.push("send some events again".to_owned());
    }
    parts.join(", ")
}

fn verify_text(check: &StoreCheck) -> String {
    let mut out = String::new();
    if check.is_healthy() {
        let _ = writeln!(out, "{}: healthy", title(check));
    } else {
        let what = summary(check);
        let _ = writeln!(
            out,
            "{}: DAMAGED{}",
            title(check),
            if what.is_empty() {
                String::new()
            } else {
                format!(" (opening it would {what})")
            }
        );
    }
    out.push('\n');
    table(&mut out, check);
    out.push('\n');
    if let Some(why) = &check.open_error {
        unopenable_text(&mut out, check, why);
        return out;
    }
    let _ = writeln!(out, "opening the store would");
    let kept = kept_line(check);
    let _ = writeln!(out, "  keep        {kept}");
    let cut = if check.cut_bytes > 0 {
        format!(
            "{} of a torn last record",
            count(check.cut_bytes, "byte", "bytes")
        )
    } else {
        "nothing".to_owned()
    };
    let _ = writeln!(out, "  cut         {cut}");
    let quarantine = if check.quarantined.is_empty() {
        "nothing".to_owned()
    } else {
        let mut q = check.quarantined.join(", ");
        if check.quarantined_events > check.quarantined.len() as u64 {
            let _ = write!(
                q,
                " … ({} in all)",
                count(check.quarantined_events, "row", "rows")
            );
        }
        q
    };
    let _ = writeln!(out, "  quarantine  {quarantine}");
    let lose = if check.lost_events > 0 {
        format!(
            "{} in {} of damage",
            count(check.lost_events, "event", "events"),
            count(check.damaged_bytes, "byte", "bytes")
        )
    } else if check.damaged_bytes > 0 {
        format!(
            "nothing ({} of damage held no unsent event)",
            count(check.damaged_bytes, "byte", "bytes")
        )
    } else {
        "nothing".to_owned()
    };
    // Not a number: the store keeps no count of what a segment held outside it.
    let missing = format!(
        "the events of {}, missing (how many cannot be known)",
        check.missing.join(", ")
    );
    let lose = match (check.missing.is_empty(), lose.as_str()) {
        (true, _) => lose,
        (false, "nothing") => missing,
        (false, _) => format!("{lose}; {missing}"),
    };
    let _ = writeln!(out, "  lose        {lose}");
    if check.cursor_reset {
        let _ = writeln!(
            out,
            "  resend      from the oldest event kept (the saved read position is unusable)"
        );
    }
    last_lines(&mut out, check, None);
    out
}

/// What `verify` says of a store that would not open: why, and what a recovery finds.
fn unopenable_text(out: &mut String, check: &StoreCheck, why: &str) {
    let _ = writeln!(out, "opening the store would fail: {why}");
    let _ = writeln!(out, "  readable    {}", kept_line(check));
    if check.lost_events > 0 {
        let _ = writeln!(
            out,
            "  unreadable  at least {}",
            count(check.lost_events, "event", "events")
        );
    }
    last_lines(out, check, Some(why));
}

/// The dead letters, then the problems and notes, less what was said already: the damage
/// the table shows, and `said`.
fn last_lines(out: &mut String, check: &StoreCheck, said: Option<&str>) {
    let _ = writeln!(
        out,
        "dead letters  {}",
        count(check.dead_letters, "event", "events")
    );
    let shown = |problem: &str| {
        said.is_some_and(|said| problem.ends_with(said))
            || check.parts.iter().any(|p| {
                p.damaged
                    && problem
                        .strip_prefix(&format!("{}: ", p.name))
                        .is_some_and(|rest| p.state.contains(rest))
            })
    };
    let problems: Vec<String> = check
        .problems
        .iter()
        .filter(|p| !shown(p))
        .cloned()
        .collect();
    list(out, "problems", &problems);
    list(out, "notes", &check.notes);
}

fn kept_line(check: &StoreCheck) -> String {
    let mut kept = format!(
        "{} ({})",
        count(check.events, "event", "events"),
        bytes(check.bytes)
    );
    if let (Some(oldest), Some(newest)) = (check.oldest, check.newest) {
        let _ = write!(
            kept,
            ", stored {} ({}) to {} ({})",
            time(oldest),
            age(oldest),
            time(newest),
            age(newest)
        );
    }
    kept
}

fn list(out: &mut String, heading: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{heading}");
    for item in items {
        let _ = writeln!(out, "  - {item}");
    }
}

/// The parts of a check, one line each.
fn table(out: &mut String, check: &StoreCheck) {
    let rows: Vec<[String; 5]> = check
        .parts
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.bytes.to_string(),
                p.records.to_string(),
                if p.dead_letters {
                    "-".to_owned()
                } else {
                    p.kept.to_string()
                },
                p.state.clone(),
            ]
        })
        .collect();
    let header = [
        "name".to_owned(),
        "bytes".to_owned(),
        "records".to_owned(),
        "kept".to_owned(),
        "state".to_owned(),
    ];
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "  {:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
}

fn opt_time(at: Option<SystemTime>) -> Value {
    at.map_or(Value::Null, |t| json!(time(t)))
}

fn opt_age(at: Option<SystemTime>) -> Value {
    at.map_or(Value::Null, |t| json!(age_seconds(t)))
}

fn verify_json(check: &StoreCheck) -> Value {
    json!({
        "store": check.kind,
        "location": check.location,
        "healthy": check.is_healthy(),
        "opens": check.open_error.is_none(),
        "open_error": check.open_error,
        // A store that would not open keeps nothing: what it holds is readable, no more.
        (if check.open_error.is_none() { "keep" } else { "readable" }): {
            "events": check.events,
            "bytes": check.bytes,
            "oldest": opt_time(check.oldest),
            "newest": opt_time(check.newest),
        },
        "cut_bytes": check.cut_bytes,
        "damaged_bytes": check.damaged_bytes,
        "lost_events": check.lost_events,
        "missing": check.missing,
        "quarantine": {
            "events": check.quarantined_events,
            "items": check.quarantined,
        },
        "cursor_reset": check.cursor_reset,
        "dead_letters": check.dead_letters,
        "parts": check.parts.iter().map(|p| json!({
            "name": p.name,
            "bytes": p.bytes,
            "records": p.records,
            "kept": p.kept,
            "dead_letters": p.dead_letters,
            "damaged": p.damaged,
            "state": p.state,
        })).collect::<Vec<_>>(),
        "problems": check.problems,
        "notes": check.notes,
    })
}

/// Dead letters grouped by reason, the most frequent first.
#[derive(Debug, Default)]
struct Reason {
    count: u64,
    bytes: u64,
    oldest: Option<SystemTime>,
    newest: Option<SystemTime>,
}

fn by_reason(letters: &[DeadLetter]) -> Vec<(String, Reason)> {
    let mut map: BTreeMap<&str, Reason> = BTreeMap::new();
    for letter in letters {
        let r = map.entry(letter.reason.as_str()).or_default();
        r.count += 1;
        r.bytes += letter.event.len() as u64;
        r.oldest = Some(r.oldest.map_or(letter.at, |o| o.min(letter.at)));
        r.newest = Some(r.newest.map_or(letter.at, |n| n.max(letter.at)));
    }
    let mut list: Vec<(String, Reason)> = map
        .into_iter()
        .map(|(reason, r)| (reason.to_owned(), r))
        .collect();
    list.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
    list
}

fn inspect_text(
    check: &StoreCheck,
    letters: &[DeadLetter],
    reasons: &[(String, Reason)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", title(check));
    let _ = writeln!(
        out,
        "  events        {} ({})",
        check.events,
        bytes(check.bytes)
    );
    for (label, at) in [("oldest", check.oldest), ("newest", check.newest)] {
        if let Some(at) = at {
            let _ = writeln!(out, "  {label}        stored {} ({})", age(at), time(at));
        }
    }
    let state = if check.is_healthy() {
        "healthy".to_owned()
    } else {
        let what = summary(check);
        format!(
            "DAMAGED{}: `auditbuf store verify` says more",
            if what.is_empty() {
                String::new()
            } else {
                format!(" (opening it would {what})")
            }
        )
    };
    let _ = writeln!(out, "  state         {state}");
    let letter_bytes: u64 = letters.iter().map(|l| l.event.len() as u64).sum();
    let _ = writeln!(
        out,
        "  dead letters  {} ({})",
        letters.len(),
        bytes(letter_bytes)
    );
    if !reasons.is_empty() {
        let rows: Vec<[String; 4]> = reasons
            .iter()
            .map(|(reason, r)| {
                [
                    r.count.to_string(),
                    r.oldest.map_or_else(String::new, age),
                    r.newest.map_or_else(String::new, age),
                    one_line(reason),
                ]
            })
            .collect();
        let header = [
            "count".to_owned(),
            "oldest".to_owned(),
            "newest".to_owned(),
            "reason".to_owned(),
        ];
        let mut widths = [0usize; 3];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        out.push('\n');
        for row in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                out,
                "  {:>w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
    }
    list(&mut out, "notes", &check.notes);
    out
}

fn inspect_json(check: &StoreCheck, letters: &[DeadLetter], reasons: &[(String, Reason)]) -> Value {
    json!({
        "store": check.kind,
        "location": check.location,
        "healthy": check.is_healthy(),
        "events": check.events,
        "bytes": check.bytes,
        "oldest": opt_time(check.oldest),
        "oldest_age_s": opt_age(check.oldest),
        "newest": opt_time(check.newest),
        "newest_age_s": opt_age(check.newest),
        "dead_letters": {
            "count": letters.len(),
            "bytes": letters.iter().map(|l| l.event.len() as u64).sum::<u64>(),
            "by_reason": reasons.iter().map(|(reason, r)| json!({
                "reason": reason,
                "count": r.count,
                "bytes": r.bytes,
                "oldest": opt_time(r.oldest),
                "newest": opt_time(r.newest),
            })).collect::<Vec<_>>(),
        },
        "problems": check.problems,
        "notes": check.notes,
    })
}
