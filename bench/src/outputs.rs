//! Where the time series and the chart go: given with `--csv` and `--png`, or else in
//! `auditbuf-bench/` under cargo's target directory, so that a build redirected with
//! `CARGO_TARGET_DIR` does not leave a stray `./target` behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The variable cargo reads for its target directory.
pub const TARGET_DIR_VAR: &str = "CARGO_TARGET_DIR";

/// The two files a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// The CSV time series.
    pub csv: PathBuf,
    /// The PNG chart.
    pub png: PathBuf,
}

impl Outputs {
    /// The paths from the flags, each missing one in [`default_dir`]; an error if both are the
    /// same file, which the chart would overwrite.
    pub fn choose(
        csv: Option<&Path>,
        png: Option<&Path>,
        target_dir: Option<&OsStr>,
    ) -> Result<Outputs, String> {
        let dir = default_dir(target_dir);
        let outputs = Outputs {
            csv: csv.map_or_else(|| dir.join("series.csv"), Path::to_path_buf),
            png: png.map_or_else(|| dir.join("chart.png"), Path::to_path_buf),
        };
        if outputs.csv == outputs.png {
            return Err(format!(
                "--csv and --png name the same file ({}): the chart would overwrite the series",
                outputs.csv.display()
            ));
        }
        Ok(outputs)
    }

    /// As [`Outputs::choose`], with this process's `CARGO_TARGET_DIR`.
    pub fn from_env(csv: Option<&Path>, png: Option<&Path>) -> Result<Outputs, String> {
        Outputs::choose(csv, png, std::env::var_os(TARGET_DIR_VAR).as_deref())
    }
}

/// `auditbuf-bench/` in cargo's target directory: `target_dir` (the value of
/// `CARGO_TARGET_DIR`) when set, taken as it is — a relative one is relative to the current
/// directory, as cargo reads it — else `./target`. An empty value counts as unset: joined as
/// it is it would put the files in the current directory itself, which is no target directory.
pub fn default_dir(target_dir: Option<&OsStr>) -> PathBuf {
    let target = target_dir
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("auditbuf-bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn the_defaults_follow_cargo_target_dir() {
        let unset = Outputs::choose(None, None, None).unwrap();
        assert_eq!(unset.csv, Path::new("target/auditbuf-bench/series.csv"));
        assert_eq!(unset.png, Path::new("target/auditbuf-bench/chart.png"));

        let absolute = Outputs::choose(None, None, dir("/work/target-x")).unwrap();
        assert_eq!(
            absolute.csv,
            Path::new("/work/target-x/auditbuf-bench/series.csv")
        );
        assert_eq!(
            absolute.png,
            Path::new("/work/target-x/auditbuf-bench/chart.png")
        );

        // Relative to the current directory, as cargo takes it.
        let relative = Outputs::choose(None, None, dir("build/out")).unwrap();
        assert_eq!(
            relative.csv,
            Path::new("build/out/auditbuf-bench/series.csv")
        );

        assert_eq!(Outputs::choose(None, None, dir("")).unwrap(), unset);
    }

    #[test]
    fn paths_given_are_kept_whatever_cargo_target_dir_says() {
        let given =
            Outputs::choose(Some(Path::new("out/s.csv")), None, dir("/work/target-x")).unwrap();
        assert_eq!(given.csv, Path::new("out/s.csv"));
        assert_eq!(
            given.png,
            Path::new("/work/target-x/auditbuf-bench/chart.png")
        );
        let both = Outputs::choose(
            Some(Path::new("a.csv")),
            Some(Path::new("b/c.png")),
            dir("/elsewhere"),
        )
        .unwrap();
        assert_eq!(both.csv, Path::new("a.csv"));
        assert_eq!(both.png, Path::new("b/c.png"));
    }

    #[test]
    fn one_file_for_both_is_an_error_also_when_one_is_a_default() {
        let err = Outputs::choose(
            None,
            Some(Path::new("/t/auditbuf-bench/series.csv")),
            dir("/t"),
        )
        .unwrap_err();
        assert!(err.contains("same file"), "{err}");
    }
}
