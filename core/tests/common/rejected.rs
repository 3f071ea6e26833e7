//! The `stats.rejected` counter of a refusal, by the error's name (`Error::name`), for
//! tests that read the expected refusal from a vector file.

use auditbuf::Stats;

/// The count in `stats.rejected` for the refusals named `reason`, e.g. `"invalid_json"`.
pub(crate) fn rejected_by(stats: &Stats, reason: &str) -> u64 {
    let r = stats.rejected;
    match reason {
        "invalid_json" => r.invalid_json,
        "invalid_utf8" => r.invalid_utf8,
        "not_an_object" => r.not_an_object,
        "missing_field" => r.missing_field,
        "invalid_field" => r.invalid_field,
        "too_large" => r.too_large,
        other => panic!("unknown reason {other}"),
    }
}
