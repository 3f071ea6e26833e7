//! One run of one system: a fresh receiver, the producers, the sampler and the progress bar,
//! then the close; returns everything the report, the CSV and the chart need.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::Args;
use crate::memory;
use crate::producer::{self, Progress, Timings};
use crate::receiver::{Receiver, ReceiverTotals};
use crate::report;
use crate::series::{INTERVAL, Sample, Series};
use crate::target::{Finish, Target};

/// What one system did in one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The system's name.
    pub system: &'static str,
    /// How it closed, with its final counts.
    pub finish: Finish,
    /// Call latencies, all producers together.
    pub timings: Timings,
    /// Every 100 ms.
    pub series: Series,
    /// Seconds the producers ran.
    pub run_secs: f64,
    /// Seconds the close took.
    pub close_secs: f64,
    /// What the receiver saw.
    pub receiver: ReceiverTotals,
    /// Peak resident memory during this system's run, if known.
    pub peak_rss: Option<u64>,
    /// Whether the peak covers this system alone (it could be reset before its run).
    pub peak_is_own: bool,
}

/// Runs `args`' scenario through the target `build` makes for the receiver's URL.
pub fn run<T: Target>(
    args: &Args,
    build: impl FnOnce(&str) -> Result<T, String>,
) -> Result<RunResult, String> {
    let peak_is_own = memory::reset_peak();
    let receiver = Receiver::start(args.sink, args.sink_rate, args.seed)
        .map_err(|e| format!("cannot start the receiver on 127.0.0.1: {e}"))?;
    let target = build(&receiver.url())?;
    let bar = progress_bar(target.name(), args.duration);
    let producers: Vec<Progress> = (0..args.producers).map(|_| Progress::default()).collect();
    let offered = || {
        producers
            .iter()
            .map(|p| p.offered.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (stop, sampling) = (AtomicBool::new(false), AtomicBool::new(true));
    let samples = Mutex::new(vec![Sample::default()]);
    // Times are counted from the receiver's start, so its outage window and the series
    // share one clock.
    let started = receiver.started();
    let mut timings = Timings::new();
    let (mut run_secs, mut close_secs, mut finish) = (0.0, 0.0, Finish::default());
    std::thread::scope(|scope| -> Result<(), String> {
        let mut handles = Vec::new();
        for (i, progress) in producers.iter().enumerate() {
            let (target, stop, rate) = (&target, &stop, args.rate);
            let spawned = std::thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn_scoped(scope, move || {
                    producer::run(target, i, rate, stop, progress)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The ones already running stop when the scope joins them.
                    stop.store(true, Ordering::SeqCst);
                    return Err(format!("cannot start producer thread {i}: {e}"));
                }
            }
        }
        let sampler = std::thread::Builder::new()
            .name("sampler".to_owned())
            .spawn_scoped(scope, || {
                let mut next = started + INTERVAL;
                while sampling.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(20)));
                        continue;
                    }
                    next += INTERVAL;
                    let sample = Sample {
                        t: started.elapsed().as_secs_f64(),
                        counts: target.counts(offered()),
                    };
                    let mut samples = samples.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(last) = samples.last() {
                        bar.set_message(live_message(last, &sample));
                    }
                    samples.push(sample);
                    bar.set_position((sample.t * 1000.0) as u64);
                }
            })
            .map_err(|e| {
                stop.store(true, Ordering::SeqCst);
                format!("cannot start the sampler thread: {e}")
            })?;
        std::thread::sleep(args.duration);
        stop.store(true, Ordering::SeqCst);
        let mut panicked = 0;
        for h in handles {
            match h.join() {
                Ok(t) => timings.merge(&t),
                Err(_) => panicked += 1,
            }
        }
        run_secs = started.elapsed().as_secs_f64();
        bar.set_message("closing: sending what is left");
        let closing = Instant::now();
        finish = target.finish(offered(), args.drain_timeout);
        close_secs = closing.elapsed().as_secs_f64();
        sampling.store(false, Ordering::SeqCst);
        let _ = sampler.join();
        if panicked > 0 {
            // Its calls are counted but not timed: the latencies would be wrong.
            return Err(format!("{panicked} producer thread(s) panicked"));
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    finish.counts.offered = offered();
    let mut samples = samples.into_inner().unwrap_or_else(|p| p.into_inner());
    samples.push(Sample {
        t: started.elapsed().as_secs_f64(),
        counts: finish.counts,
    });
    Ok(RunResult {
        system: target.name(),
        finish,
        timings,
        series: Series {
            system: target.name(),
            samples,
            run_end: run_secs,
        },
        run_secs,
        close_secs,
        receiver: receiver.totals(),
        peak_rss: memory::peak_rss(),
        peak_is_own,
    })
}

/// A bar on stderr while a terminal watches; nothing otherwise (CI logs, pipes).
fn progress_bar(name: &str, duration: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:16}] {elapsed:>3}/{len_s} {wide_msg}")
    {
        let len_s = format!("{:.0}s", duration.as_secs_f64());
        bar.set_style(
            style
                .with_key(
                    "len_s",
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&len_s);
                    },
                )
                .progress_chars("=> "),
        );
    }
    bar.set_prefix(name.to_owned());
    bar
}

fn live_message(before: &Sample, now: &Sample) -> String {
    let dt = (now.t - before.t).max(1e-6);
    let per_s = |f: fn(&crate::target::Counts) -> u64| {
        report::rate(f(&now.counts).saturating_sub(f(&before.counts)) as f64 / dt)
    };
    format!(
        "offered {}, delivered {}, rejected/lost {}, queued {}",
        per_s(|c| c.offered),
        per_s(|c| c.delivered),
        per_s(|c| c.lost()),
        report::count(now.counts.queued)
    )
}
