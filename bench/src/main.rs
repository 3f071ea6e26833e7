//! `auditbuf-bench`: the drop-behaviour benchmark. Offers a pipeline more audit events than
//! a receiver on 127.0.0.1 takes, and shows what became of every one — and, with
//! `--compare`, what became of them in tracing-appender and a naive queue. See `--help`.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod args;
mod chart;
mod compare;
mod event;
mod idle;
mod memory;
mod outputs;
mod pipeline;
mod poster;
mod producer;
mod receiver;
mod report;
mod run;
mod series;
mod stalls;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::Args;
use compare::{Naive, Tracing};
use pipeline::Auditbuf;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = args.validate() {
        Args::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    match bench(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("auditbuf-bench: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs what the flags ask; `Ok(false)` when a check failed.
fn bench(args: &Args) -> Result<bool, String> {
    let pad = event::padding_for(args.event_bytes as usize)?;
    if args.idle {
        let (text, holds) = idle::measure(pad, args.event_bytes)?;
        out(&text);
        return Ok(holds);
    }
    let outputs = args.outputs()?;
    // Fail before the run, not after it, if the outputs cannot be written (without
    // emptying what an earlier run wrote there: this run may yet be interrupted).
    for path in [&outputs.csv, &outputs.png] {
        series::check_writable(path)?;
    }
    let load_before = load_average();
    // Before the producers start, so it measures the machine and not the run.
    let stalls = stalls::probe(STALL_PROBE);
    out(&report::scenario(args, ""));
    let capacity = args.queue_capacity as usize;
    let mut results = vec![run::run(args, |url| Auditbuf::new(args, url, pad))?];
    if args.compare {
        results.push(run::run(args, |url| {
            Tracing::new(capacity, args.overflow, url, pad)
        })?);
        results.push(run::run(args, |url| {
            Naive::new(capacity, args.overflow, url, pad)
        })?);
    }
    let load_after = load_average();
    let checks = report::checks(&results);
    out(&format!(
        "\n{}\n{}\n{}",
        report::table(args, &results),
        report::notes(args, &results),
        report::render_checks(&checks)
    ));

    let series: Vec<_> = results.iter().map(|r| r.series.clone()).collect();
    series::write_file(&outputs.csv, series::csv(&series).as_bytes())?;
    let title = if args.compare {
        format!(
            "auditbuf vs tracing-appender vs naive queue: {}",
            short_scenario(args)
        )
    } else {
        format!("auditbuf: {}", short_scenario(args))
    };
    chart::draw(
        &outputs.png,
        &series,
        &title,
        chart::Marks {
            outage: args.sink.outage,
        },
    )?;
    let mut tail = String::from("\n");
    if let (Some(a), Some(b)) = (load_before, load_after) {
        tail += &format!(
            "machine load (1-minute average): {a:.2} before, {b:.2} after, on {} cores\n",
            cores()
        );
    }
    tail += &format!(
        "machine stalls: spinning for {} before the run, a thread was stopped for {} or more \
         {} times a second (longest {}); one would hit about {:.2} % of 1 µs calls\n",
        report::duration(stalls.span),
        report::nanos(stalls::STALL.as_nanos() as u64),
        report::count(stalls.per_second.round() as u64),
        report::nanos(stalls.longest.as_nanos() as u64),
        100.0 * stalls.share_of_calls(std::time::Duration::from_micros(1)),
    );
    tail += &format!(
        "time series: {}\nchart:       {}\n",
        outputs.csv.display(),
        outputs.png.display()
    );
    out(&tail);
    Ok(checks.iter().all(|c| c.holds != Some(false)))
}

/// Prints to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// The scenario in a few words, for the chart's title.
fn short_scenario(args: &Args) -> String {
    let offered = args.offered_rate().map_or_else(
        || "unthrottled".to_owned(),
        |r| format!("{}/s offered", report::count(r)),
    );
    let taken = match args.sink_rate {
        args::SinkRate::Unlimited => "receiver unthrottled".to_owned(),
        args::SinkRate::PerSecond(r) => format!("receiver takes {}/s", report::count(r)),
    };
    format!(
        "{offered}, {taken}, {}, queue {}, {}",
        args.overflow.name(),
        report::count(u64::from(args.queue_capacity)),
        args.sink.describe()
    )
}

/// How long the machine's stalls are counted before the run.
const STALL_PROBE: std::time::Duration = std::time::Duration::from_millis(500);

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
