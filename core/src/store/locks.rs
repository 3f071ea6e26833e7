//! Which processes hold a lock on a file, from `/proc/locks` (Linux; elsewhere nobody is
//! found), so that "in use by another process" can say which.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The processes holding a POSIX or `flock` lock on `path`, lowest pid first, without
/// duplicates. Empty if none, or if it cannot be told.
pub(crate) fn holders(path: &Path) -> Vec<u32> {
    let Ok(meta) = fs::metadata(path) else {
        return Vec::new();
    };
    let Ok(table) = fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let mut pids = parse(&table, meta.dev(), meta.ino());
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The pids of the locks in `table` (the text of `/proc/locks`) on inode `ino` of device
/// `dev`. Lines of waiters (`->`) are skipped: they hold nothing yet.
fn parse(table: &str, dev: u64, ino: u64) -> Vec<u32> {
    // Linux's dev_t: 12 bits of major and 20 of minor, split around the low byte.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    table
        .lines()
        .filter(|line| !line.contains("->"))
        .filter_map(|line| {
            // `1: POSIX  ADVISORY  WRITE 21561 fe:00:9994259 1073741826 1073742335`
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid = fields.get(4)?.parse::<u32>().ok()?;
            let mut id = fields.get(5)?.split(':');
            let (maj, min, inode) = (id.next()?, id.next()?, id.next()?);
            let same = u64::from_str_radix(maj, 16).ok()? == major
                && u64::from_str_radix(min, 16).ok()? == minor
                && inode.parse::<u64>().ok()? == ino;
            same.then_some(pid)
        })
        .collect()
}

/// ` (pid 123)`, ` (pids 1, 2)` or nothing, for messages.
pub(crate) fn describe(pids: &[u32]) -> String {
    match pids {
        [] => String::new(),
        [one] => format!(" (pid {one})"),
        many => {
            let list: Vec<String> = many.iter().map(u32::to_string).collect();
            format!(" (pids {})", list.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_holders_of_one_inode() {
        let table = "1: POSIX  ADVISORY  WRITE 21561 fe:00:9994259 1073741826 1073742335\n\
                     1: -> POSIX  ADVISORY  WRITE 999 fe:00:9994259 1073741826 1073742335\n\
                     2: POSIX  ADVISORY  WRITE 21561 fe:00:9994259 1073741824 1073741824\n\
                     3: FLOCK  ADVISORY  WRITE 15834 fe:00:14598447 0 EOF\n\
                     4: FLOCK  ADVISORY  READ 77 103:02:9994259 0 EOF\n";
        assert_eq!(parse(table, 0xfe00, 9_994_259), vec![21561, 21561]);
        assert_eq!(parse(table, 0xfe00, 14_598_447), vec![15834]);
        assert_eq!(parse(table, (0x103 << 8) | 2, 9_994_259), vec![77]);
        assert_eq!(describe(&[5]), " (pid 5)");
        assert_eq!(describe(&[5, 6]), " (pids 5, 6)");
    }

    #[test]
    fn finds_a_lock_this_process_holds() {
        let path = std::env::temp_dir().join(format!("auditbuf-locks-{}", std::process::id()));
        let file = fs::File::create(&path).unwrap();
        file.lock().unwrap();
        let found = holders(&path);
        drop(file);
        let _ = fs::remove_file(&path);
        if Path::new("/proc/locks").exists() {
            assert_eq!(found, vec![std::process::id()]);
        }
    }
}
