//! The event every producer records: the typed DataStorage event of the README, its
//! `event_data` padded so that the encoded event is exactly `--event-bytes` long.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditbuf::{AuditEvent, CallbackSink, Config, EventData, Outcome, Pipeline};

/// The owned strings one producer's events borrow.
#[derive(Debug, Clone)]
pub struct EventParts {
    /// `bench-000`, `bench-001`, …: the same length for every producer, so every event has
    /// the same size.
    pub correlation_id: String,
    /// The `event_data` object, with its padding.
    pub event_data: String,
}

impl EventParts {
    /// Producer `index`'s event, with `pad` bytes of padding in `event_data`.
    pub fn new(index: usize, pad: usize) -> EventParts {
        EventParts {
            correlation_id: format!("bench-{index:03}"),
            // The padding lengthens a value rather than adding a key, so the smallest event
            // is the plain one of the criterion benches.
            event_data: format!(
                r#"{{"signal_name":"OOMKilled","fingerprint":"fp-abc123{}"}}"#,
                "x".repeat(pad)
            ),
        }
    }

    /// The typed event of the criterion benches (`benches/benches/common`), borrowing these
    /// strings; the timestamp is filled in by `record`.
    pub fn event(&self) -> AuditEvent<'_> {
        AuditEvent {
            actor_id: Some("gateway"),
            event_data: EventData::Json(&self.event_data),
            ..AuditEvent::new(
                "gateway.signal.received",
                "gateway",
                "received",
                "success",
                &self.correlation_id,
            )
        }
    }
}

/// What auditbuf puts on the wire for `parts`: the bytes the peers are handed, already
/// encoded, in a comparison.
pub fn encode(parts: &EventParts) -> Result<Vec<u8>, String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            if let Ok(mut seen) = seen.lock() {
                seen.extend(batch.iter().map(|e| e.to_vec()));
            }
            Outcome::Delivered
        }
    });
    let pipeline = Pipeline::new(Config::default(), sink).map_err(|e| e.to_string())?;
    pipeline.record(&parts.event()).map_err(|e| e.to_string())?;
    let report = pipeline.close(Duration::from_secs(5));
    if report.stats.delivered != 1 {
        return Err("could not encode the bench's event".to_owned());
    }
    let mut seen = seen.lock().map_err(|_| "encoder poisoned".to_owned())?;
    seen.pop()
        .ok_or_else(|| "could not encode the bench's event".to_owned())
}

/// The padding that makes the encoded event `bytes` long, or an error naming the smallest
/// size possible.
pub fn padding_for(bytes: usize) -> Result<usize, String> {
    let smallest = encode(&EventParts::new(0, 0))?.len();
    bytes.checked_sub(smallest).ok_or_else(|| {
        format!(
            "--event-bytes {bytes} is too small: the bench's event is at least {smallest} bytes"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_padded_to_the_exact_size() {
        for size in [340, 1024, 4096] {
            let pad = padding_for(size).unwrap();
            for producer in [0, 7, 255] {
                assert_eq!(encode(&EventParts::new(producer, pad)).unwrap().len(), size);
            }
        }
        assert!(padding_for(100).unwrap_err().contains("at least"));
        let smallest = crate::args::SMALLEST_EVENT_BYTES as usize;
        assert_eq!(
            padding_for(smallest),
            Ok(0),
            "--event-bytes' lower bound is not the event's size"
        );
    }
}
