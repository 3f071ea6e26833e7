//! The library's log lines, caught through the `log` facade for tests that look at them.
//! The logger is process-wide: a test filters the lines by something of its own (its
//! directory, its receiver's address).

use std::sync::Mutex;

/// Every line logged by `auditbuf` since [`install`], as `LEVEL message`.
pub(crate) static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("auditbuf") {
            let line = format!("{} {}", record.level(), record.args());
            LINES.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Catches the library's lines from here on, up to `level` (again: no effect but the level).
pub(crate) fn install(level: log::LevelFilter) {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(level);
}
