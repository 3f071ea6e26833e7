//! Events the sink rejected for good, kept in a bounded ring for inspection.

use std::collections::VecDeque;
use std::time::SystemTime;

use parking_lot::Mutex;

/// An event the sink rejected for good, with the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The encoded event, exactly as it was sent.
    pub event: Vec<u8>,
    /// The sink's reason, e.g. the `detail` of an HTTP problem response.
    pub reason: String,
    /// When it was dead-lettered.
    pub at: SystemTime,
}

/// The newest `capacity` dead letters; older ones are evicted (they stay counted).
#[derive(Debug)]
pub(crate) struct DeadLetters {
    ring: Mutex<VecDeque<DeadLetter>>,
    capacity: usize,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        DeadLetters {
            ring: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub(crate) fn push(&self, event: &[u8], reason: &str) {
        if self.capacity == 0 {
            return;
        }
        let letter = DeadLetter {
            event: event.to_vec(),
            reason: reason.to_owned(),
            at: SystemTime::now(),
        };
        let mut ring = self.ring.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(letter);
    }

    pub(crate) fn snapshot(&self) -> Vec<DeadLetter> {
        self.ring.lock().iter().cloned().collect()
    }

    pub(crate) fn take(&self) -> Vec<DeadLetter> {
        self.ring.lock().drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let d = DeadLetters::new(2);
        d.push(b"1", "a");
        d.push(b"2", "b");
        d.push(b"3", "c");
        let got: Vec<_> = d.snapshot().into_iter().map(|l| l.event).collect();
        assert_eq!(got, vec![b"2".to_vec(), b"3".to_vec()]);
        assert_eq!(d.take().len(), 2);
        assert!(d.snapshot().is_empty());
    }
}
