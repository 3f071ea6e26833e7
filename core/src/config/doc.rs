//! Configuration as JSON documents (`${PREFIX}_CONFIG`, `${PREFIX}_BACKING_STORE`, and the
//! bindings' configuration strings): strict reading, and the range checks every setting
//! shares.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use super::json_path::{key_path_at, number_as_written};
use super::{Config, Durability, Overflow};
use crate::Error;
use crate::encode::json::{MAX_DEPTH, scan_object};

/// Deserialises `text` into `T`, naming the offending field in the error. The document
/// must be one JSON object and nothing after it, with no duplicate keys at any level (a
/// second `"path"` would otherwise silently win), no `\u0000` and no out-of-range number.
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    check_objects(text)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        // A duplicate is reported at the object that holds it: name the key itself.
        let duplicate = reason
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.split('`').next());
        // An empty key has an empty path: the reason names it (``unknown field ``, ...``).
        let field = match (path.as_str(), duplicate) {
            ("." | "?" | "", Some(key)) => key.to_owned(),
            (_, Some(key)) => format!("{path}.{key}"),
            ("." | "?" | "", None) => "(document)".to_owned(),
            (_, None) => path,
        };
        number_as_written(Error::config(field, reason), text, "")
    })?;
    de.end().map_err(|e| {
        Error::config(
            "(document)",
            format!("{e}: nothing may follow the JSON object"),
        )
    })?;
    check_keys(text, "")?;
    Ok(value)
}

/// For bindings that read a configuration document into their own values (Python's
/// `config=` given as a str) before handing it on: refuses what a value would hide, a
/// duplicate key at any level (the last one would win), with the core's message. Not part
/// of the stable API.
///
/// # Errors
///
/// [`Error::Config`] naming the duplicate key's path after `prefix`.
#[doc(hidden)]
pub fn check_document(text: &str, prefix: &str) -> Result<(), Error> {
    check_keys(text, prefix)
}

/// Refuses a duplicate key at any level of the object `text` (and what else the JSON
/// check refuses), naming the key after `prefix` (`sink.url`), or the document.
pub(crate) fn check_keys(text: &str, prefix: &str) -> Result<(), Error> {
    scan_object(text.as_bytes(), MAX_DEPTH).map_err(|e| {
        let mut field = if prefix.is_empty() {
            "(document)".to_owned()
        } else {
            prefix.to_owned()
        };
        let reason = match e {
            Error::InvalidJson { offset, reason, .. } if reason.starts_with("duplicate") => {
                let at = (offset as usize).saturating_add(1);
                let key = text
                    .get(at..)
                    .unwrap_or_default()
                    .split('"')
                    .next()
                    .unwrap_or_default();
                // By its whole path, as serde names a duplicate it finds: `params.path`, not
                // `path`, which could be a key at any depth.
                let path = key_path_at(text, offset as usize)
                    .or_else(|| (!key.is_empty() && !key.contains('\\')).then(|| key.to_owned()));
                if let Some(path) = path {
                    field = if prefix.is_empty() {
                        path
                    } else {
                        format!("{prefix}.{path}")
                    };
                }
                format!("{reason}: \"{key}\" at byte {offset}")
            }
            Error::InvalidJson { offset, reason, .. } => format!("{reason} at byte {offset}"),
            Error::NotAnObject => "must be a JSON object".to_owned(),
            other => other.to_string(),
        };
        Error::config(field, reason)
    })?;
    Ok(())
}

/// Members whose value must be a JSON object (or `null`, refused with its own message).
const OBJECT_MEMBERS: [&str; 1] = ["retry"];

/// serde's derived structs read a JSON array too, field by field in order (`[3]` for
/// `retry` would set `max_attempts`, `["s"]` for the whole document `service`): a document
/// must spell its objects as objects.
fn check_objects(text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::config(
            "(document)",
            "is empty, must be a JSON object",
        ));
    }
    if !text.trim_start().starts_with('{') {
        return Err(Error::config("(document)", "must be a JSON object"));
    }
    // The top level's members only, their values kept as written; anything that does not
    // read is reported by the strict reading that follows.
    let Ok(members) =
        serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(text)
    else {
        return Ok(());
    };
    for key in OBJECT_MEMBERS {
        let Some(value) = members.get(key) else {
            continue;
        };
        let kind = match value.get().trim_start().as_bytes().first() {
            Some(b'{' | b'n') | None => continue,
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(_) => "a number",
        };
        return Err(Error::config(
            key,
            format!("invalid type: {kind}, expected an object"),
        ));
    }
    Ok(())
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option` field: an absent
/// field is `None`, a given one `Some`, and an explicit `null` an error — not a silent
/// default, which would hide a mistake in a generated document.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_option(Present(PhantomData))
}

struct Present<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Present<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Err(E::custom(
            "is null; leave the field out to keep its default",
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }
}

/// Fails unless `min <= value <= max`, naming the field and both limits.
pub(crate) fn in_range(
    field: impl Into<String>,
    value: u128,
    min: u128,
    max: u128,
) -> Result<(), Error> {
    if value < min {
        Err(Error::config(
            field,
            format!("is {value}, must be at least {min}"),
        ))
    } else if value > max {
        Err(Error::config(
            field,
            format!("is {value}, must be at most {max}"),
        ))
    } else {
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigDoc {
    #[serde(default, deserialize_with = "present")]
    service: Option<String>,
    #[serde(default, deserialize_with = "present")]
    queue_capacity: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    max_lanes: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    max_event_bytes: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    batch_max_events: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    batch_max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    flush_interval_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    overflow: Option<OverflowDoc>,
    #[serde(default, deserialize_with = "present")]
    block_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    durability: Option<DurabilityDoc>,
    #[serde(default, deserialize_with = "present")]
    retry: Option<RetryDoc>,
    #[serde(default, deserialize_with = "present")]
    dead_letter_capacity: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    initial_slot_bytes: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    retained_slot_bytes: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    drop_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    categories: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    check_timestamp_window: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    gap_markers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OverflowDoc {
    DropNewest,
    DropOldest,
    Block,
    Spill,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DurabilityDoc {
    Buffered,
    Wal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDoc {
    #[serde(default, deserialize_with = "present")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    max_elapsed_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    backoff_base_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    backoff_cap_ms: Option<u64>,
}

impl ConfigDoc {
    pub(super) fn into_config(self) -> Result<Config, Error> {
        let mut c = Config::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.service {
            c.service = v;
        }
        if let Some(v) = self.queue_capacity {
            c.queue_capacity = v;
        }
        if let Some(v) = self.max_lanes {
            c.max_lanes = v;
        }
        if let Some(v) = self.max_event_bytes {
            c.max_event_bytes = v;
        }
        if let Some(v) = self.batch_max_events {
            c.batch_max_events = v;
        }
        if let Some(v) = self.batch_max_bytes {
            c.batch_max_bytes = v;
        }
        if let Some(v) = self.flush_interval_ms {
            c.flush_interval = ms(v);
        }
        c.overflow = match (self.overflow, self.block_timeout_ms) {
            (None | Some(OverflowDoc::DropNewest), None) => Overflow::DropNewest,
            (Some(OverflowDoc::Spill), None) => Overflow::Spill,
            (Some(OverflowDoc::DropOldest), None) => Overflow::DropOldest,
            (Some(OverflowDoc::Block), Some(t)) => Overflow::Block { timeout: ms(t) },
            (Some(OverflowDoc::Block), None) => {
                return Err(Error::config(
                    "block_timeout_ms",
                    "is required when overflow is \"block\"",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::config(
                    "block_timeout_ms",
                    "is only allowed when overflow is \"block\"",
                ));
            }
        };
        c.durability = match self.durability {
            None | Some(DurabilityDoc::Buffered) => Durability::Buffered,
            Some(DurabilityDoc::Wal) => Durability::Wal,
        };
        if let Some(r) = self.retry {
            if let Some(v) = r.max_attempts {
                c.retry.max_attempts = v;
            }
            if let Some(v) = r.max_elapsed_ms {
                c.retry.max_elapsed = ms(v);
            }
            if let Some(v) = r.backoff_base_ms {
                c.retry.backoff_base = ms(v);
            }
            if let Some(v) = r.backoff_cap_ms {
                c.retry.backoff_cap = ms(v);
            }
        }
        if let Some(v) = self.dead_letter_capacity {
            c.dead_letter_capacity = v;
        }
        if let Some(v) = self.initial_slot_bytes {
            c.initial_slot_bytes = v;
        }
        if let Some(v) = self.retained_slot_bytes {
            c.retained_slot_bytes = v;
        }
        if let Some(v) = self.gap_markers {
            c.gap_markers = v;
        }
        if let Some(v) = self.drop_timeout_ms {
            c.drop_timeout = ms(v);
        }
        if let Some(v) = self.categories {
            if v.is_empty() {
                return Err(Error::config(
                    "categories",
                    "is empty; leave it out to accept any category",
                ));
            }
            c.categories = v;
        }
        if let Some(v) = self.check_timestamp_window {
            c.timestamp_window = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::field_of;
    use super::*;
    use crate::RetryPolicy;

    #[test]
    fn objects_must_be_objects_not_arrays() {
        for (text, field, reason) in [
            (
                r#"{"retry":[3]}"#,
                "retry",
                "invalid type: an array, expected an object",
            ),
            (
                r#"{"retry":[]}"#,
                "retry",
                "invalid type: an array, expected an object",
            ),
            (
                r#"{"retry":5}"#,
                "retry",
                "invalid type: a number, expected an object",
            ),
            (r#"["s"]"#, "(document)", "must be a JSON object"),
            ("[]", "(document)", "must be a JSON object"),
            (&"[".repeat(100_000), "(document)", "must be a JSON object"),
        ] {
            match Config::from_json(text) {
                Err(Error::Config(c)) => {
                    assert_eq!((c.field.as_str(), c.reason.as_str()), (field, reason));
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(crate::StoreConfig::from_json(r#"["memory",{}]"#).is_err());
        assert!(Config::from_json(r#" {"retry":{"max_attempts":3}}"#).is_ok());
    }

    #[test]
    fn empty_document_is_the_default() {
        assert_eq!(Config::from_json("{}").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn every_field_reads() {
        let c = Config::from_json(
            r#"{"service":"s","queue_capacity":7,"max_lanes":2,"max_event_bytes":100,"batch_max_events":3,
                "batch_max_bytes":1000,"flush_interval_ms":5,"overflow":"drop_newest",
                "retry":{"max_attempts":2,"max_elapsed_ms":9,"backoff_base_ms":1,"backoff_cap_ms":4},
                "dead_letter_capacity":0,"initial_slot_bytes":64,"retained_slot_bytes":128,
                "drop_timeout_ms":10,"categories":["gateway","security"],
                "check_timestamp_window":true}"#,
        )
        .unwrap();
        let expect = Config::default()
            .service("s")
            .queue_capacity(7)
            .max_lanes(2)
            .max_event_bytes(100)
            .batch_max_events(3)
            .batch_max_bytes(1000)
            .flush_interval(Duration::from_millis(5))
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .max_elapsed(Duration::from_millis(9))
                    .backoff(Duration::from_millis(1), Duration::from_millis(4)),
            )
            .dead_letter_capacity(0)
            .initial_slot_bytes(64)
            .retained_slot_bytes(128)
            .drop_timeout(Duration::from_millis(10))
            .categories(["gateway", "security"])
            .check_timestamp_window(true);
        assert_eq!(c, expect);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"queue_capacty":1}"#), "queue_capacty");
        assert!(
            Config::from_json(r#"{"queue_capacty":1}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field `queue_capacty`")
        );
        assert_eq!(field_of(r#"{"queue_capacity":"big"}"#), "queue_capacity");
        assert_eq!(
            field_of(r#"{"retry":{"max_attempts":-1}}"#),
            "retry.max_attempts"
        );
        assert_eq!(field_of(r#"{"retry":{"tries":1}}"#), "retry.tries");
        assert_eq!(field_of(r#"{"overflow":"spill_to_mars"}"#), "overflow");
        assert_eq!(field_of(r#"{"overflow":"block"}"#), "block_timeout_ms");
        assert_eq!(field_of(r#"{"block_timeout_ms":3}"#), "block_timeout_ms");
        assert_eq!(field_of(r#"{"queue_capacity":0}"#), "queue_capacity");
        assert_eq!(field_of(r#"{"max_lanes":3}"#), "max_lanes");
        assert_eq!(field_of(r#"{"max_lanes":0}"#), "max_lanes");
        assert_eq!(field_of(r#"{"max_lanes":-1}"#), "max_lanes");
        assert_eq!(
            field_of(r#"{"max_event_bytes":5000000}"#),
            "max_event_bytes"
        );
        assert_eq!(field_of(r#"{"flush_interval_ms":0}"#), "flush_interval_ms");
        assert_eq!(field_of("[]"), "(document)");
        assert_eq!(field_of("{"), "(document)");
        assert_eq!(field_of(r#"{"":1}"#), "(document)");
    }

    #[test]
    fn nothing_may_follow_the_document() {
        for text in [
            r#"{"queue_capacity":5} x"#,
            r#"{"queue_capacity":5}{"queue_capacity":0}"#,
            r#"{"queue_capacity":5},"#,
            "{} []",
        ] {
            let e = Config::from_json(text).unwrap_err();
            assert_eq!(field_of(text), "(document)", "{text}");
            assert!(e.to_string().contains("trailing characters"), "{e}");
        }
        Config::from_json("  {\"queue_capacity\":5}\n\t ").unwrap();
    }

    #[test]
    fn null_is_not_a_default() {
        for (text, field) in [
            (r#"{"queue_capacity":null}"#, "queue_capacity"),
            (r#"{"service":null}"#, "service"),
            (r#"{"retry":null}"#, "retry"),
            (r#"{"retry":{"max_attempts":null}}"#, "retry.max_attempts"),
            (r#"{"categories":null}"#, "categories"),
        ] {
            assert_eq!(field_of(text), field, "{text}");
            let e = Config::from_json(text).unwrap_err().to_string();
            assert!(e.contains("is null; leave the field out"), "{e}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = Config::from_json(r#"{"queue_capacity":5,"queue_capacity":0}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field"), "{e}");
        let e = Config::from_json(r#"{"retry":{"max_attempts":2,"max_attempts":3}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field"), "{e}");
        // The error names the key, where it sits, not the whole document.
        assert_eq!(
            field_of(r#"{"queue_capacity":5,"queue_capacity":0}"#),
            "queue_capacity"
        );
        assert_eq!(
            field_of(r#"{"retry":{"max_attempts":2,"max_attempts":3}}"#),
            "retry.max_attempts"
        );
    }

    #[test]
    fn categories_are_checked() {
        assert_eq!(field_of(r#"{"categories":[]}"#), "categories");
        assert_eq!(field_of(r#"{"categories":[""]}"#), "categories[0]");
        let long = format!(r#"{{"categories":["a","{}"]}}"#, "x".repeat(51));
        assert_eq!(field_of(&long), "categories[1]");
        let many: Vec<String> = (0..257).map(|i| format!("\"c{i}\"")).collect();
        let many = format!(r#"{{"categories":[{}]}}"#, many.join(","));
        assert_eq!(field_of(&many), "categories");
        assert_eq!(field_of(r#"{"categories":"gateway"}"#), "categories");
    }
}
