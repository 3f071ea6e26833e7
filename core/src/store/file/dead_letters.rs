//! Dead letters of the file store: `dead-letters.log`, framed like the segments, each
//! record's event being `reason_len:u32le reason event`; two generations at most.

use std::fs;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::frame::{self, MAGIC};
use super::{FileStore, dir};
use crate::{DeadLetter, Error};

pub(super) const DEAD_LETTERS: &str = "dead-letters.log";

impl FileStore {
    /// The dead letters kept in `dead-letters.log`, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `dead-letters.log` when it exists but cannot be read.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        let path = self.config.path.join(DEAD_LETTERS);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let scan = frame::scan(&data);
        Ok(scan
            .records
            .iter()
            .filter_map(|r| {
                let body = r.event(&data);
                let reason_len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
                let reason = body.get(4..4 + reason_len)?;
                Some(DeadLetter {
                    event: body.get(4 + reason_len..)?.to_vec(),
                    reason: String::from_utf8_lossy(reason).into_owned(),
                    at: std::time::UNIX_EPOCH + Duration::from_millis(r.stored_at_ms),
                })
            })
            .collect())
    }

    /// Appends `event` with `reason` to the dead letters.
    pub(super) fn keep_dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        let path = self.config.path.join(DEAD_LETTERS);
        let file = dir::create_private(&path, false)?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut body = Vec::with_capacity(4 + reason.len() + event.len());
        body.extend_from_slice(&(reason.len() as u32).to_le_bytes());
        body.extend_from_slice(reason.as_bytes());
        body.extend_from_slice(event);
        let mut framed = if len == 0 { MAGIC.to_vec() } else { Vec::new() };
        frame::encode(&mut framed, &body, frame::now_ms());
        file.write_all_at(&framed, len)
            .map_err(|e| Error::io(&path, e))?;
        if self.durable() {
            file.sync_data().map_err(|e| Error::io(&path, e))?;
        }
        // Keep at most two generations, each about an eighth of the store's cap.
        if len + framed.len() as u64 > (self.config.max_total_bytes / 8).max(1 << 20) {
            let old = path.with_extension("log.1");
            fs::rename(&path, &old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}
