//! Resident memory of this process, from `/proc/self/status` (Linux).

/// Peak resident set size in bytes (`VmHWM`), if the system tells.
pub fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident set size in bytes (`VmRSS`), if the system tells.
pub fn rss() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the peak to the current size, so that each system of a comparison has its own
/// peak. False if the system does not allow it (then peaks include earlier runs).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, field)
}

fn parse_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t    2064 kB\nVmRSS:\t  1000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(2064));
        assert_eq!(parse_kib(status, "VmRSS:"), Some(1000));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }
}
