//! Tests of the command line (`args.rs`): defaults, ranges and their messages, flags that
//! cannot go together, values with units.

use super::*;

fn parse(args: &[&str]) -> Result<Args, String> {
    let args = Args::try_parse_from(std::iter::once("auditbuf-bench").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    args.validate()?;
    Ok(args)
}

#[test]
fn the_defaults_are_ten_times_overload_for_ten_seconds() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.offered_rate(), Some(500_000));
    assert_eq!(a.sink_rate, SinkRate::PerSecond(50_000));
    assert_eq!(a.duration, Duration::from_secs(10));
    assert_eq!(a.overflow, OverflowArg::DropNewest);
}

#[test]
fn out_of_range_flags_are_errors() {
    for bad in [
        &["--producers", "0"][..],
        &["--producers", "257"],
        &["--rate", "0"],
        &["--rate", "fast"],
        &["--queue-capacity", "0"],
        &["--event-bytes", "70000"],
        &["--duration", "0"],
        &["--duration", "-1"],
        &["--overflow", "block:0"],
        &["--overflow", "block:0.001"],
        &["--overflow", "drop"],
        &["--csv", "out/x", "--png", "out/x"],
        &["--queue-capacity", "16777216", "--event-bytes", "8000"],
        &["--sink", "errors:1.5"],
        &["--sink", "outage:5-2"],
        &["--sink", "latency:20000"],
        &["--sink", "slow"],
        &["--sink-rate", "0"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn errors_name_the_range_and_the_words_accepted() {
    for (args, expected) in [
        (
            &["--sink-rate", "-1"][..],
            "-1 is out of range: 1 to 100000000 events per second, or unlimited",
        ),
        (
            &["--rate", "fast"],
            "\"fast\" is not a whole number of events per second, or unthrottled",
        ),
        (
            &["--producers", "0"],
            "0 is out of range: 1 to 256 producers",
        ),
        (
            &["--producers", "-3"],
            "-3 is out of range: 1 to 256 producers",
        ),
        (
            &["--queue-capacity", "16777217"],
            "16777217 is out of range: 1 to 16777216 events",
        ),
        (
            &["--queue-capacity", "20_000_000"],
            "20_000_000 is out of range: 1 to 16777216 events",
        ),
        (
            &["--event-bytes", "335"],
            "335 is out of range: 336 to 65536 bytes",
        ),
        (
            &["--duration", "-1"],
            "-1 is out of range: 0.1 to 3600 seconds",
        ),
    ] {
        let err = parse(args).unwrap_err();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(parse(&["--producers", "4"]).unwrap().producers, 4);
    assert_eq!(parse(&["--max-lanes", "8"]).unwrap().max_lanes, 8);
    assert!(
        parse(&["--max-lanes", "3"])
            .unwrap_err()
            .contains("1, 2, 4 or 8")
    );
    assert_eq!(
        parse(&["--queue-capacity", "1_000"])
            .unwrap()
            .queue_capacity,
        1000
    );
}

#[test]
fn combinations_that_cannot_work_are_errors() {
    let err = parse(&["--durability", "wal", "--store", "memory"]).unwrap_err();
    assert!(err.contains("--store file"), "{err}");
    assert!(parse(&["--overflow", "spill"]).is_err());
    assert!(parse(&["--fsync", "always"]).is_err());
    assert!(parse(&["--sink", "outage:20-30"]).is_err());
    assert!(parse(&["--idle", "--compare"]).is_err());
    // `--idle` measures a pipeline at defaults: the run's flags would be ignored.
    for flag in [
        ["--producers", "4"],
        ["--store", "file"],
        ["--duration", "3s"],
    ] {
        let err = parse(&[&["--idle"][..], &flag[..]].concat()).unwrap_err();
        assert!(err.contains("--idle") && err.contains(flag[0]), "{err}");
    }
    assert!(parse(&["--idle", "--event-bytes", "600"]).is_ok());
}

#[test]
fn values_with_units_are_read() {
    let a = parse(&[
        "--overflow",
        "block:250",
        "--sink",
        "latency:5,outage:2-4.5,errors:0.1",
        "--duration",
        "5.5",
        "--rate",
        "unthrottled",
    ])
    .unwrap();
    assert_eq!(a.overflow, OverflowArg::Block(Duration::from_millis(250)));
    assert_eq!(a.sink.latency, Duration::from_millis(5));
    assert_eq!(a.sink.outage, Some((2.0, 4.5)));
    assert_eq!(a.sink.errors, 0.1);
    assert_eq!(a.duration, Duration::from_millis(5500));
    assert_eq!(a.rate, Rate::Unthrottled);
    assert_eq!(
        parse_overflow("block:2s").unwrap(),
        OverflowArg::Block(Duration::from_secs(2))
    );
    assert_eq!(a.sink.describe(), "latency:5,outage:2-4.5,errors:0.1");
}
