//! `auditbuf`: check, inspect and repair auditbuf's backing stores offline — the tools an
//! operator needs when a receiver was down, a disk filled up or a host crashed — and a
//! DataStorage receiver to try a pipeline against on one machine.
//!
//! ```text
//! auditbuf store verify   <store>   what opening the store would keep, cut, quarantine, lose
//! auditbuf store inspect  <store>   counts, bytes, ages, dead letters by reason
//! auditbuf dead-letters replay <store> [--reason TEXT] [--older-than 2h] [--dry-run]
//! auditbuf dead-letters export <store> [--reason TEXT] [--older-than 2h] [--output FILE]
//! auditbuf receive [--listen 127.0.0.1:8080] [--print] [--status CODE]
//!                                   a DataStorage batch endpoint to try a pipeline against
//! ```
//!
//! `<store>` is the store's JSON as `${PREFIX}_BACKING_STORE` holds it, or (`--from-env
//! PREFIX`) that variable itself, or a bare path: a file store's directory (or an SQLite
//! database file). Exit codes: 0 success (for `verify`: healthy; for `receive`: stopped by
//! Ctrl-C or SIGTERM), 1 `verify` found damage, 2 the command could not do its job (usage,
//! no such store, the store is in use, an address `receive` cannot listen on, …).

#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_debug_implementations)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod letters;
mod output;
mod receive;
mod report;
mod source;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Check, inspect and repair auditbuf's backing stores offline; receive batches on this
/// machine to try a pipeline against (auditbuf receive).
///
/// STORE is the store's JSON, as the ${PREFIX}_BACKING_STORE variable of the program that
/// uses it holds it ('{"type":"file","params":{"path":"/var/lib/audit"}}'), or a path: a
/// file store's directory, or an SQLite database file. Or pass --from-env PREFIX to read
/// that variable.
///
/// Exit codes: 0 done (verify: healthy), 1 verify found damage, 2 could not do it (bad
/// arguments, no such store, the store is in use by another process, …).
#[derive(Debug, Parser)]
#[command(name = "auditbuf", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a backing store, or look inside it, without changing it.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Export the events a receiver refused, or move them back to be sent again.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
    /// Serve DataStorage's batch endpoint on this machine, to try a pipeline against.
    ///
    /// Answers POST /api/v1/audit/events/batch: 201 with {"event_ids":[…],"message":…} for
    /// a JSON array of 1 to 500 objects; 400 with RFC 7807 problem JSON for any other body,
    /// 413 for one over 5 MiB; 405 for another method on that path, 404 for other paths.
    /// Prints "listening on http://ADDR" first, then a line per request (time, status,
    /// events, bytes), and the totals at Ctrl-C or
    /// SIGTERM (exit code 0; a second Ctrl-C ends it at once), counted by request: a batch
    /// sent again counts again. Checks the body's shape only, not DataStorage's field rules.
    Receive(ReceiveArgs),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Check every record and say what opening the store would keep, cut, quarantine and
    /// lose. Changes nothing.
    ///
    /// Exit code 0 when opening the store would change nothing, 1 when it would cut,
    /// quarantine or lose something (or the store is damaged in a way it cannot repair),
    /// 2 when the store could not be checked.
    Verify(StoreArgs),
    /// Counts, bytes, the oldest and newest event's age, dead letters by reason. Changes
    /// nothing.
    Inspect(StoreArgs),
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Move dead letters back into the store, oldest first, so that they are sent again
    /// once the receiver is fixed.
    ///
    /// Each dead letter moved leaves the dead-letter area in the same step, so a crash
    /// never leaves one in both places and replaying twice never sends one twice. The
    /// store must not be open in another process (stop the program first); for Postgres,
    /// rows replicas hold are not touched.
    Replay(ReplayArgs),
    /// Write dead letters as NDJSON, one {"reason":…,"at":…,"event":…} a line, oldest
    /// first. Changes nothing.
    Export(ExportArgs),
}

/// Which store, and how to print.
#[derive(Debug, Args)]
struct StoreArgs {
    /// The store: its JSON ('{"type":"sqlite","params":{"path":"/var/lib/audit.db"}}'), or a
    /// path (a file store's directory, or an SQLite database file).
    #[arg(
        value_name = "STORE",
        required_unless_present = "from_env",
        conflicts_with = "from_env"
    )]
    store: Option<String>,
    /// Read the store's JSON from the environment variable PREFIX_BACKING_STORE.
    #[arg(long, value_name = "PREFIX")]
    from_env: Option<String>,
    /// Print JSON, for scripts, instead of text.
    #[arg(long)]
    json: bool,
}

/// Which dead letters.
#[derive(Debug, Args)]
struct Filter {
    /// Only dead letters whose reason contains TEXT (ignoring case).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Only dead letters dead-lettered at least this long ago: 90s, 30m, 2h, 7d, "1h 30m".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Option<Duration>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    filter: Filter,
    /// List what would be moved, and move nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    filter: Filter,
    /// Write to FILE (created with mode 0600, or replaced) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct ReceiveArgs {
    /// Address to listen on, taken as given: 0.0.0.0:8080 takes batches from other hosts
    /// too; port 0 picks a free port, which the first line shows.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Also print each event's JSON, one a line, under its batch's line.
    #[arg(long)]
    print: bool,
    /// Answer every well-formed batch with CODE instead of 201: 503 to watch a pipeline
    /// retry, then keep its events in its backing store if it has one, else count them
    /// failed once its retries are spent, or dropped if it is closed before that; 202 for
    /// DataStorage's "queued in its own dead-letter queue" answer. Bad bodies still get 400.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(200..=599))]
    status: Option<u16>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write it like 90s, 30m, 2h, 7d or \"1h 30m\")"))
}

/// A command that could not do its job: the message, for standard error (exit code 2).
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl From<auditbuf::Error> for Failure {
    fn from(e: auditbuf::Error) -> Self {
        let message = e.to_string();
        if message.contains("in use by another process") {
            Failure(format!(
                "{message}\nstop that process first (or copy the store and work on the copy)"
            ))
        } else {
            Failure(message)
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Store(StoreCommand::Verify(args)) => report::verify(&args),
        Command::Store(StoreCommand::Inspect(args)) => report::inspect(&args),
        Command::DeadLetters(DeadLetterCommand::Replay(args)) => letters::replay(&args),
        Command::DeadLetters(DeadLetterCommand::Export(args)) => letters::export(&args),
        Command::Receive(args) => receive::receive(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure(message)) => {
            output::error(&message);
            ExitCode::from(2)
        }
    }
}
