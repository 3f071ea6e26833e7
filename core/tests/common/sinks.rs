//! In-process sinks the pipeline tests share: one that holds every batch until the test
//! lets it go, one that collects every event.

use std::sync::{Arc, Mutex};

use auditbuf::{CallbackSink, Outcome, Sink};
use crossbeam_channel::{Receiver, Sender};

/// A sink that blocks every send until the test lets it go, reporting each batch it got.
pub(crate) struct GatedSink {
    pub(crate) gate: Receiver<()>,
    pub(crate) seen: Sender<Vec<Vec<u8>>>,
}

impl Sink for GatedSink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        let _ = self.gate.recv();
        let _ = self.seen.send(batch.iter().map(|e| e.to_vec()).collect());
        Outcome::Delivered
    }
}

pub(crate) type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A sink that collects every event it is given.
pub(crate) fn collecting() -> (impl Sink, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            seen.lock()
                .unwrap()
                .extend(batch.iter().map(|e| e.to_vec()));
            Outcome::Delivered
        }
    });
    (sink, seen)
}
