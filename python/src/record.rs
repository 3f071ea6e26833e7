//! `Pipeline.record(event)`: a dict written as JSON straight into the slot, or JSON text
//! (bytes, bytearray, memoryview or str) copied in as it is.

use auditbuf::{Error, Pipeline};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString};

use crate::encode::{self, type_name};
use crate::errors::{raised, wrong_type};
use crate::pipeline::{error_of, finish};
use crate::wait::GilPark;

/// Records `event`; see `Pipeline.record` in `_auditbuf.pyi`.
pub(crate) fn record(py: Python<'_>, p: &Pipeline, event: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut park = GilPark::new(py);
    if let Ok(d) = event.cast::<PyDict>() {
        let mut failed = None;
        let result = p.record_encoded_with(&mut park, |out, limit| {
            encode::write_object(d, out, limit, encode::MAX_DEPTH).map_err(|f| {
                let e = error_of(&f, limit, "");
                failed = Some((f, ""));
                e
            })
        });
        return finish(py, result, park, failed);
    }
    if let Ok(b) = event.cast::<PyBytes>() {
        let result = p.record_with(&mut park, |out, limit| copy_json(b.as_bytes(), out, limit));
        return finish(py, result, park, None);
    }
    if let Ok(s) = event.cast::<PyString>() {
        let result = match utf8_or_offset(s) {
            Ok(text) => p.record_with(&mut park, |out, limit| copy_json(text, out, limit)),
            Err(e) => {
                p.count_rejected(&e);
                Err(e)
            }
        };
        return finish(py, result, park, None);
    }
    // Mutable buffers: copied first, as another thread may change them while this one
    // waits without the GIL.
    let copy: Vec<u8> = if let Ok(b) = event.cast::<PyByteArray>() {
        b.to_vec()
    } else if event.is_instance_of::<PyMemoryView>() {
        // A released memoryview raises ValueError: raised as it is, and counted.
        let bytes = event
            .call_method0("tobytes")
            .and_then(|b| b.cast_into::<PyBytes>().map_err(PyErr::from))
            .map_err(|err| raised(p, err))?;
        bytes.as_bytes().to_vec()
    } else {
        return Err(wrong_type(
            py,
            p,
            None,
            &format!(
                "record() takes a dict, or JSON text as bytes, bytearray, memoryview or \
                 str, not {}",
                type_name(event)
            ),
        ));
    };
    let result = p.record_with(&mut park, |out, limit| copy_json(&copy, out, limit));
    finish(py, result, park, None)
}

/// Copies raw JSON into the slot, refusing what cannot fit before copying.
fn copy_json(json: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
    let size = json.trim_ascii().len();
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    out.extend_from_slice(json);
    Ok(())
}

/// The UTF-8 of a str, or the error the core gives text that is not UTF-8 (a str with a
/// lone surrogate), with the byte offset of the first bad character.
fn utf8_or_offset<'a>(s: &'a Bound<'_, PyString>) -> Result<&'a [u8], Error> {
    encode::utf8(s).map_err(|err| {
        let py = s.py();
        let offset = err
            .value(py)
            .getattr("start")
            .and_then(|start| s.get_item(pyo3::types::PySlice::new(py, 0, start.extract()?, 1)))
            .and_then(|prefix| prefix.call_method1("encode", ("utf-8",)))
            .and_then(|b| b.len())
            .unwrap_or(0);
        Error::InvalidUtf8 { offset }
    })
}
