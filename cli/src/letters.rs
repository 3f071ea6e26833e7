//! `dead-letters replay` and `dead-letters export`: the events a receiver refused, moved
//! back to be sent again, or written out as NDJSON.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use auditbuf::{DeadLetter, StoreConfig};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::output::{self, age, count, one_line, time};
use crate::{ExportArgs, Failure, Filter, ReplayArgs, report, source};

/// Whether a dead letter passes `--reason` and `--older-than`.
fn filter(f: &Filter) -> impl FnMut(&DeadLetter) -> bool + use<> {
    let reason = f.reason.as_ref().map(|r| r.to_lowercase());
    let older_than = f.older_than;
    let now = SystemTime::now();
    move |letter: &DeadLetter| {
        reason
            .as_ref()
            .is_none_or(|r| letter.reason.to_lowercase().contains(r))
            && older_than.is_none_or(|min| now.duration_since(letter.at).is_ok_and(|a| a >= min))
    }
}

/// `auditbuf dead-letters replay`.
pub(crate) fn replay(args: &ReplayArgs) -> Result<u8, Failure> {
    let config = source::store(&args.store)?;
    let mut select = filter(&args.filter);
    if args.dry_run {
        let letters = config.read_dead_letters()?;
        let picked: Vec<&DeadLetter> = letters.iter().filter(|l| select(l)).collect();
        let text = if args.store.json {
            format!(
                "{}\n",
                json!({"dry_run": true, "would_move": picked.len(), "dead_letters": letters.len()})
            )
        } else {
            let mut out = format!(
                "would move {} of {} back into the store, oldest first (nothing moved: --dry-run)\n",
                picked.len(),
                count(letters.len() as u64, "dead letter", "dead letters")
            );
            for letter in picked {
                let _ = writeln!(
                    out,
                    "  {}  {:<14}  {}  {}",
                    time(letter.at),
                    age(letter.at),
                    one_line(&letter.reason),
                    preview(&letter.event)
                );
            }
            out
        };
        output::print(&text)?;
        return Ok(0);
    }
    // A file store is opened as a pipeline opens it, which repairs what a crash or damage
    // left: say so, rather than repair it silently.
    let before = config.verify()?;
    // (Damage in the dead letters alone has no summary: nothing there is repaired.)
    let repaired = (before.kind == "file" && !before.is_healthy())
        .then(|| report::summary(&before))
        .filter(|what| !what.trim().is_empty());
    let moved = config.replay_dead_letters(&mut select)?;
    let ownership = match &config {
        StoreConfig::File(c) => give_to_owner(c.path()),
        _ => Vec::new(),
    };
    let left = config.read_dead_letters().ok().map(|l| l.len());
    let text = if args.store.json {
        format!(
            "{}\n",
            json!({"moved": moved, "dead_letters_left": left, "repaired": repaired})
        )
    } else {
        let mut out = String::new();
        if let Some(what) = &repaired {
            let _ = writeln!(
                out,
                "opening the store to replay repaired it as a pipeline would: it had to {what}"
            );
        }
        if moved == 0 {
            out.push_str("no dead letter matched; nothing moved\n");
        } else {
            let _ = writeln!(
                out,
                "moved {} back into the store, oldest first{}; a pipeline that opens the store sends them",
                count(moved, "dead letter", "dead letters"),
                left.map_or_else(String::new, |n| format!(" ({n} left)"))
            );
        }
        out
    };
    output::print(&text)?;
    for warning in ownership {
        eprintln!("auditbuf: {warning}");
    }
    Ok(0)
}

/// Gives the files of the store's directory `dir` that this command created or replaced
/// (segments, the cursor, the dead letters, as root) to the directory's owner, so that the
/// service running as that user can still open its store. What cannot be given (this
/// command not run as root) is returned, as warnings.
fn give_to_owner(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == owner.uid() && meta.gid() == owner.gid() {
            continue;
        }
        if let Err(e) = std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())) {
            warnings.push(format!(
                "{}: owned by uid {}, not the store's owner (uid {}), and could not be given \
                 to it ({e}): the service may not open the store",
                path.display(),
                meta.uid(),
                owner.uid()
            ));
        }
    }
    warnings
}

/// Refuses an export written over the store's own files (its directory's, or the
/// database and its journals): the command changes nothing.
fn refuse_inside_store(config: &StoreConfig, output: &Path) -> Result<(), Failure> {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    // The output may not exist yet: its directory does.
    let out_dir = output
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .and_then(canonical);
    let out = out_dir
        .zip(output.file_name())
        .map(|(dir, name)| dir.join(name));
    let clash = match config {
        StoreConfig::File(c) => out_dir_is(&out, canonical(c.path())),
        StoreConfig::Sqlite(c) => canonical(c.path()).is_some_and(|db| {
            let db = db.to_string_lossy().into_owned();
            out.as_ref().is_some_and(|o| {
                let o = o.to_string_lossy();
                o == db || o == format!("{db}-wal") || o == format!("{db}-shm")
            })
        }),
        _ => false,
    };
    if clash {
        return Err(Failure(format!(
            "{}: is the store's own; write the export outside it",
            output.display()
        )));
    }
    Ok(())
}

fn out_dir_is(out: &Option<PathBuf>, dir: Option<PathBuf>) -> bool {
    matches!((out.as_ref().and_then(|o| o.parent()), dir), (Some(p), Some(d)) if p == d)
}

/// The first 80 characters of an event, on one line.
fn preview(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut short: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        short.push('…');
    }
    one_line(&short)
}

/// One line of the export.
#[derive(Serialize)]
struct Line<'a> {
    reason: &'a str,
    at: String,
    /// The event as it was stored, when it is JSON (it always is, unless it was damaged).
    event: Option<&'a RawValue>,
    /// Otherwise its bytes, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_bytes: Option<String>,
}

fn line(letter: &DeadLetter) -> Result<String, serde_json::Error> {
    let raw = std::str::from_utf8(&letter.event)
        .ok()
        .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
        .filter(|raw| !raw.get().contains(['\n', '\r']));
    let line = Line {
        reason: &letter.reason,
        at: time(letter.at),
        event: raw,
        event_bytes: match raw {
            Some(_) => None,
            None => Some(String::from_utf8_lossy(&letter.event).into_owned()),
        },
    };
    match raw {
        Some(_) => serde_json::to_string(&line),
        // A multi-line or damaged event: re-encoded, or kept as text.
        None => match serde_json::from_slice::<serde_json::Value>(&letter.event) {
            Ok(event) => serde_json::to_string(&json!({
                "reason": letter.reason, "at": time(letter.at), "event": event
            })),
            Err(_) => serde_json::to_string(&line),
        },
    }
}

/// `auditbuf dead-letters export`.
pub(crate) fn export(args: &ExportArgs) -> Result<u8, Failure> {
    let config = source::store(&args.store)?;
    let letters = config.read_dead_letters()?;
    let mut select = filter(&args.filter);
    let picked: Vec<&DeadLetter> = letters.iter().filter(|l| select(l)).collect();
    let write_all = |out: &mut dyn Write| -> io::Result<()> {
        for letter in &picked {
            let text = line(letter).map_err(io::Error::other)?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    match &args.output {
        Some(path) => {
            refuse_inside_store(&config, path)?;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            // A file replaced keeps its mode otherwise: dead letters are audit events.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            write_all(&mut BufWriter::new(file))
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            let text = if args.store.json {
                format!(
                    "{}\n",
                    json!({"exported": picked.len(), "output": path.display().to_string()})
                )
            } else {
                format!(
                    "exported {} to {}\n",
                    count(picked.len() as u64, "dead letter", "dead letters"),
                    path.display()
                )
            };
            output::print(&text)?;
        }
        None => {
            let stdout = io::stdout();
            match write_all(&mut BufWriter::new(stdout.lock())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn letter(event: &[u8]) -> DeadLetter {
        DeadLetter {
            event: event.to_vec(),
            reason: "HTTP 400: bad \"field\"".to_owned(),
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn export_lines_carry_the_event_as_json() {
        assert_eq!(
            line(&letter(br#"{"n":1,"s":"x"}"#)).unwrap(),
            r#"{"reason":"HTTP 400: bad \"field\"","at":"2023-11-14T22:13:20.123Z","event":{"n":1,"s":"x"}}"#
        );
        let multi = line(&letter(b"{\"n\":\n1}")).unwrap();
        assert!(!multi.contains('\n'), "{multi}");
        let bad = line(&letter(b"{\"n\":1")).unwrap();
        assert!(
            bad.contains(r#""event":null,"event_bytes":"{\"n\":1""#),
            "{bad}"
        );
    }

    #[test]
    fn filters_by_reason_and_age() {
        let old = letter(b"{}");
        let mut select = filter(&Filter {
            reason: Some("BAD \"FIELD".to_owned()),
            older_than: Some(Duration::from_secs(3600)),
        });
        assert!(select(&old));
        let mut fresh = letter(b"{}");
        fresh.at = SystemTime::now();
        assert!(!select(&fresh));
        let mut other = letter(b"{}");
        other.reason = "HTTP 422".to_owned();
        assert!(!select(&other));
    }
}
