//! Watching for lost events from the flush thread: a log line per reason per interval, and,
//! when asked for, a gap marker in the audit trail itself.
//!
//! Callers only bump atomic counters when they turn an event away (a `record` must stay
//! cheap), so the flush thread reads the counters about once a second and reports what
//! changed. A gap marker is a synthetic event, `auditbuf.events.lost`, put ahead of what
//! waits to be sent: the receiver's trail then says how many events are missing, why, and
//! between which times. It counts as recorded (and in `gap_markers`), and is delivered,
//! stored or dropped like any event — never silently.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::encode::event::encode_event;
use crate::encode::rules::EventRules;
use crate::encode::time;
use crate::throttle::Throttle;
use crate::{AuditEvent, EventData, Stats};

/// How often the counters are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The event type of a gap marker.
pub const GAP_MARKER_EVENT_TYPE: &str = "auditbuf.events.lost";

/// Every way an event gets lost: its name (the `reason` of the metrics), what the log
/// says, and whether a gap marker reports it (bad input is the caller's own error, told
/// at the call; a close has no later batch to carry a marker).
const REASONS: [(&str, &str, bool); 16] = [
    ("queue_full", "turned away: the queue was full", true),
    (
        "block_timeout",
        "turned away: no slot came free within the block timeout",
        true,
    ),
    ("oldest", "evicted from the full queue for newer ones", true),
    ("store_full", "lost: the backing store was full", true),
    ("store_error", "turned away: the backing store failed", true),
    ("damaged", "lost to damage in the backing store", true),
    (
        "failed",
        "failed: retries ran out with no backing store",
        true,
    ),
    (
        "shutdown",
        "dropped at close: still buffered at the deadline",
        false,
    ),
    ("closed", "turned away: the pipeline was closed", false),
    ("invalid_utf8", "refused: not UTF-8", false),
    ("invalid_json", "refused: not JSON", false),
    ("not_an_object", "refused: not a JSON object", false),
    ("too_large", "refused: over max_event_bytes", false),
    (
        "missing_field",
        "refused: a required field was empty",
        false,
    ),
    (
        "invalid_field",
        "refused: a field the receiver would refuse",
        false,
    ),
    ("serialize", "refused: could not be serialised", false),
];

fn counts(s: &Stats) -> [u64; REASONS.len()] {
    let (r, d) = (s.rejected, s.dropped);
    [
        r.queue_full,
        r.block_timeout,
        d.oldest,
        r.store_full + d.store_full,
        r.store_error,
        d.damaged,
        s.failed,
        d.shutdown,
        r.closed,
        r.invalid_utf8,
        r.invalid_json,
        r.not_an_object,
        r.too_large,
        r.missing_field,
        r.invalid_field,
        r.serialize,
    ]
}

#[derive(Debug)]
pub(crate) struct LossWatch {
    seen: [u64; REASONS.len()],
    logs: [Throttle; REASONS.len()],
    last_check: Instant,
    /// The wall-clock time of the last look: losses seen at a look happened after the one
    /// before it, where a marker's `from` starts.
    last_look: SystemTime,
    markers: Option<Markers>,
}

/// Losses not yet reported by a marker.
#[derive(Debug)]
struct Markers {
    service: String,
    max_event_bytes: usize,
    pending: [u64; REASONS.len()],
    /// The look before the one that first saw them: they happened after it.
    since: Option<SystemTime>,
    made: u64,
}

impl LossWatch {
    pub(crate) fn new(markers: bool, service: &str, max_event_bytes: usize) -> Self {
        LossWatch {
            seen: [0; REASONS.len()],
            logs: Default::default(),
            last_check: Instant::now(),
            last_look: SystemTime::now(),
            markers: markers.then(|| Markers {
                service: service.to_owned(),
                max_event_bytes,
                pending: [0; REASONS.len()],
                since: None,
                made: 0,
            }),
        }
    }

    /// Whether it is time to look at the counters again.
    pub(crate) fn due(&self) -> bool {
        self.last_check.elapsed() >= CHECK_EVERY
    }

    /// Logs what was lost since the last look and, with gap markers on, notes it for the
    /// next marker.
    pub(crate) fn check(&mut self, stats: &Stats) {
        self.last_check = Instant::now();
        let before = std::mem::replace(&mut self.last_look, SystemTime::now());
        let now = counts(stats);
        for (i, (reason, what, marked)) in REASONS.iter().enumerate() {
            let new = now[i].saturating_sub(self.seen[i]);
            self.seen[i] = now[i];
            if let Some(n) = self.logs[i].note(new) {
                log::warn!("{n} audit events {what} ({reason})");
            }
            if let Some(m) = self.markers.as_mut()
                && *marked
                && new > 0
            {
                m.pending[i] += new;
                m.since.get_or_insert(before);
            }
        }
    }

    /// Whether a gap marker is due: markers are on and losses are not reported yet.
    pub(crate) fn marker_due(&self) -> bool {
        self.markers
            .as_ref()
            .is_some_and(|m| m.since.is_some() && m.pending.iter().any(|n| *n > 0))
    }

    /// Writes the due gap marker into `out` (empty on entry, a slot of the pool: a marker
    /// must not add a buffer the pool does not know); true if it did, and the losses it
    /// reports are then forgotten.
    pub(crate) fn marker(&mut self, out: &mut Vec<u8>) -> bool {
        self.markers.as_mut().is_some_and(|m| m.make(out))
    }
}

impl Markers {
    fn make(&mut self, out: &mut Vec<u8>) -> bool {
        let lost: u64 = self.pending.iter().sum();
        let Some(since) = self.since else {
            return false;
        };
        if lost == 0 {
            return false;
        }
        let mut data = format!(r#"{{"lost":{lost},"reasons":{{"#);
        let mut first = true;
        for (i, n) in self.pending.iter().enumerate() {
            if *n > 0 {
                if !first {
                    data.push(',');
                }
                first = false;
                data.push_str(&format!(r#""{}":{n}"#, REASONS[i].0));
            }
        }
        let (from, to) = (rfc3339(since), rfc3339(SystemTime::now()));
        data.push_str(&format!(r#"}},"from":"{from}","to":"{to}"}}"#));
        self.made += 1;
        let correlation = format!("auditbuf-gap-{}-{}", std::process::id(), self.made);
        let event = AuditEvent {
            actor_type: Some("service"),
            actor_id: Some(&self.service),
            event_data: EventData::Json(&data),
            ..AuditEvent::new(
                GAP_MARKER_EVENT_TYPE,
                "security",
                "lost",
                "failure",
                &correlation,
            )
        };
        match encode_event(
            &event,
            &EventRules::default(),
            out,
            self.max_event_bytes.max(1024),
        ) {
            Ok(()) => {
                self.pending = [0; REASONS.len()];
                self.since = None;
                true
            }
            Err(e) => {
                log::error!("could not encode a gap marker: {e}");
                out.clear();
                false
            }
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    String::from_utf8_lossy(&time::at(since.as_secs(), since.subsec_millis())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_says_how_many_why_and_when() {
        let mut watch = LossWatch::new(true, "gateway", 65536);
        watch.check(&Stats::default());
        assert!(!watch.marker_due());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut s = Stats::default();
        s.rejected.queue_full = 7;
        s.dropped.oldest = 2;
        s.rejected.invalid_json = 5;
        watch.check(&s);
        assert!(watch.marker_due());
        let mut marker = Vec::new();
        assert!(watch.marker(&mut marker));
        let v: serde_json::Value = serde_json::from_slice(&marker).unwrap();
        assert_eq!(v["event_type"], GAP_MARKER_EVENT_TYPE);
        assert_eq!(v["actor_id"], "gateway");
        assert_eq!(v["event_data"]["event_type"], GAP_MARKER_EVENT_TYPE);
        assert_eq!(v["event_data"]["lost"], 9);
        assert_eq!(v["event_data"]["reasons"]["queue_full"], 7);
        assert_eq!(v["event_data"]["reasons"]["oldest"], 2);
        assert!(v["event_data"]["reasons"].get("invalid_json").is_none());
        // From the look before the losses were seen (they happened after it) to now.
        let (from, to) = (&v["event_data"]["from"], &v["event_data"]["to"]);
        assert_eq!(from.as_str().unwrap().len(), 24);
        assert!(from.as_str() < to.as_str(), "{from} {to}");
        // Nothing new, no marker.
        watch.check(&s);
        assert!(!watch.marker_due());
    }
}
