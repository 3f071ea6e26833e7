//! Python objects to JSON, written straight into a buffer (the pipeline's slot): str, int
//! (big ones too), float (finite), bool, None, list, tuple, dict with str keys, and
//! `datetime` (RFC 3339, UTC). Anything else fails naming where it sits
//! (`event_data.items[3]`); the path is built only on failure.

mod escape;

use std::cell::RefCell;
use std::ffi::c_char;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use auditbuf::{Encoded, Error};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyDate, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyTzInfo,
};

use escape::write_str;

/// Deepest nesting of an event, the event itself counted: the core's limit for every record
/// path (126 levels). A value written inside an event (`event_data`, a CADF attachment's
/// content) gets what is left at its place, so a dict is refused exactly where its JSON text
/// would be; a dict that contains itself must end somewhere too.
pub(crate) const MAX_DEPTH: usize = 126;

/// Why an object could not be encoded.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A type JSON has no place for (or a dict key that is not a str, NaN, too deep).
    Unsupported { path: Vec<Seg>, what: String },
    /// Past `limit` bytes.
    TooLarge,
    /// Python code the encoder called (a tzinfo, an `int` subclass) raised.
    Raised(PyErr),
}

/// One step of the path to a failing value, innermost first while it unwinds.
#[derive(Debug)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl Fail {
    fn unsupported(what: impl Into<String>) -> Self {
        Fail::Unsupported {
            path: Vec::new(),
            what: what.into(),
        }
    }

    /// Adds the step `seg` to the path of a failure coming out of a nested value.
    fn at(mut self, seg: impl FnOnce() -> Seg) -> Self {
        if let Fail::Unsupported { path, .. } = &mut self {
            path.push(seg());
        }
        self
    }

    /// The message naming the path: `event_data.items[3]: cannot encode a set as JSON`.
    pub(crate) fn message(&self, prefix: &str) -> String {
        match self {
            Fail::Unsupported { path, what } => {
                let mut at = prefix.to_owned();
                for seg in path.iter().rev() {
                    match seg {
                        Seg::Key(k) if at.is_empty() => at.push_str(k),
                        Seg::Key(k) => {
                            at.push('.');
                            at.push_str(k);
                        }
                        Seg::Index(i) => {
                            let _ = write!(at, "[{i}]");
                        }
                    }
                }
                if at.is_empty() {
                    what.clone()
                } else {
                    format!("{at}: {what}")
                }
            }
            Fail::TooLarge => "event is over max_event_bytes".to_owned(),
            Fail::Raised(e) => e.to_string(),
        }
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail::Raised(e)
    }
}

#[allow(unsafe_code)]
unsafe extern "C" {
    /// In the limited API only from 3.10, but exported by every CPython 3: the UTF-8 of a
    /// str, cached in the object, without a copy.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// The UTF-8 bytes of `s`, borrowed from the object (no copy). Fails on a str that holds
/// a lone surrogate, which has no UTF-8 form.
#[allow(unsafe_code)]
pub(crate) fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    // Safety: `s` is a live str (the borrow keeps it alive) and we are attached to the
    // interpreter. The returned buffer belongs to the str object, which is immutable, and
    // lives as long as the object: the lifetime `'a` of the borrow of `s`.
    let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if data.is_null() {
        return Err(PyErr::fetch(s.py()));
    }
    let len = usize::try_from(size).unwrap_or(0);
    // Safety: CPython returned a non-null pointer to `size` initialised bytes (see above).
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// A required typed field of `record_event`.
pub(crate) fn text<'a>(field: &'static str, s: &'a Bound<'_, PyString>) -> Result<&'a [u8], Error> {
    utf8(s).map_err(|_| Error::InvalidField {
        field,
        reason: "is not valid UTF-8",
    })
}

/// An optional typed field.
pub(crate) fn opt<'a>(
    field: &'static str,
    s: &'a Option<Bound<'_, PyString>>,
) -> Result<Option<&'a [u8]>, Error> {
    match s {
        Some(s) => text(field, s).map(Some),
        None => Ok(None),
    }
}

/// A timestamp field: a str as it is, or a datetime formatted into `buf`. Another type
/// fails with `Fail::Unsupported` (its message for the prefix `field`: `event_timestamp:
/// must be a str or a datetime, not int`), a raising `tzinfo` with `Fail::Raised`.
pub(crate) fn time<'a>(
    field: &'static str,
    v: &'a Option<Bound<'_, PyAny>>,
    buf: &'a mut [u8; 32],
) -> Result<Result<Option<&'a [u8]>, Error>, Fail> {
    let Some(v) = v else { return Ok(Ok(None)) };
    if let Ok(dt) = v.cast::<PyDateTime>() {
        let n = format_datetime(dt, buf)?;
        return Ok(Ok(Some(&buf[..n])));
    }
    match v.cast::<PyString>() {
        Ok(s) => Ok(text(field, s).map(Some)),
        Err(_) => Err(Fail::unsupported(format!(
            "must be a str or a datetime, not {}",
            type_name(v)
        ))),
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, emptied (a fresh one if a nested call on
/// this thread is using it). The buffer keeps at most 64 KiB between calls.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Writes the dict `d` as a JSON object: compact, valid UTF-8, no raw line breaks (what
/// `Pipeline::record_encoded_with` relies on), and says whether it has top-level
/// `version` and `event_timestamp` members. Python code that changes the dict while it is
/// being written (a tzinfo's `utcoffset`, say) makes it fail instead of panicking.
/// `max_depth` is the levels it may take, itself included ([`MAX_DEPTH`] for an event).
pub(crate) fn write_object(
    d: &Bound<'_, PyDict>,
    out: &mut Vec<u8>,
    limit: usize,
    max_depth: usize,
) -> Result<Encoded, Fail> {
    let mut encoder = Encoder {
        out,
        limit,
        max_depth,
        top: Encoded::default(),
    };
    match catch_unwind(AssertUnwindSafe(|| encoder.dict(d, 0))) {
        Ok(r) => r.map(|()| encoder.top),
        Err(_) => Err(encoder_panicked()),
    }
}

/// Writes any value [`write_object`] takes inside a dict (a dict, list, tuple, str,
/// number, …) as JSON, with the same guarantees.
pub(crate) fn write_value(
    v: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
    limit: usize,
    max_depth: usize,
) -> Result<(), Fail> {
    let mut encoder = Encoder {
        out,
        limit,
        max_depth,
        top: Encoded::default(),
    };
    match catch_unwind(AssertUnwindSafe(|| encoder.value(v, 0))) {
        Ok(r) => r,
        Err(_) => Err(encoder_panicked()),
    }
}

/// A panic in the encoder: not expected (a dict that changes is caught before pyo3's
/// iterator would panic), but never let through to Python.
#[cold]
fn encoder_panicked() -> Fail {
    Fail::Raised(PyRuntimeError::new_err(
        "auditbuf: the encoder failed on this value (a bug; please report it)",
    ))
}

/// Python code run while a dict is written (a tzinfo's `utcoffset`, a str subclass's
/// method) added or removed keys: as `json.dumps` says it.
#[cold]
fn dict_changed() -> Fail {
    Fail::Raised(PyRuntimeError::new_err(
        "dictionary changed size during iteration (while auditbuf encoded it)",
    ))
}

/// Python code run while a dict is written deleted some keys and added as many others:
/// as Python's own iteration says it.
#[cold]
fn keys_changed() -> Fail {
    Fail::Raised(PyRuntimeError::new_err(
        "dictionary keys changed during iteration (while auditbuf encoded it)",
    ))
}

struct Encoder<'o> {
    out: &'o mut Vec<u8>,
    limit: usize,
    /// Levels the value may take, itself included.
    max_depth: usize,
    /// The top-level members the core completes.
    top: Encoded,
}

impl Encoder<'_> {
    #[inline]
    fn check_size(&self) -> Result<(), Fail> {
        if self.out.len() > self.limit {
            Err(Fail::TooLarge)
        } else {
            Ok(())
        }
    }

    fn dict(&mut self, d: &Bound<'_, PyDict>, depth: usize) -> Result<(), Fail> {
        if depth >= self.max_depth {
            return Err(Fail::unsupported(format!(
                "nested deeper than {MAX_DEPTH} levels in the event (does it contain itself?)"
            )));
        }
        self.out.push(b'{');
        let mut first = true;
        // Checked after each member, before pyo3's iterator takes the next one: it panics
        // on a dict that changed size (the panic would print on stderr), and on one that
        // yields more members than it had (keys deleted and others added): so no more than
        // `size` are taken, then one look for another.
        let size = d.len();
        let mut members = d.iter();
        for (key, value) in members.by_ref().take(size) {
            if !first {
                self.out.push(b',');
            }
            first = false;
            let Ok(key) = key.cast::<PyString>() else {
                return Err(Fail::unsupported(format!(
                    "dict keys must be str, not {} ({})",
                    type_name(&key),
                    key.repr().map(|r| r.to_string()).unwrap_or_default()
                )));
            };
            let Ok(k) = utf8(key) else {
                return Err(Fail::unsupported(
                    "a dict key is not valid UTF-8 (a lone surrogate)",
                ));
            };
            if depth == 0 {
                match k {
                    b"version" => self.top.has_version = true,
                    b"event_timestamp" => self.top.has_timestamp = true,
                    _ => {}
                }
            }
            if write_str(self.out, k) {
                return Err(Fail::unsupported(NUL));
            }
            self.out.push(b':');
            self.value(&value, depth + 1)
                .map_err(|f| f.at(|| Seg::Key(String::from_utf8_lossy(k).into_owned())))?;
            if d.len() != size {
                return Err(dict_changed());
            }
        }
        if members.next().is_some() {
            return Err(keys_changed());
        }
        self.out.push(b'}');
        self.check_size()
    }

    fn seq<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> Result<(), Fail> {
        if depth >= self.max_depth {
            return Err(Fail::unsupported(format!(
                "nested deeper than {MAX_DEPTH} levels in the event (does it contain itself?)"
            )));
        }
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.value(&item, depth + 1)
                .map_err(|f| f.at(|| Seg::Index(i)))?;
        }
        self.out.push(b']');
        self.check_size()
    }

    fn value(&mut self, v: &Bound<'_, PyAny>, depth: usize) -> Result<(), Fail> {
        // Exact types first: one pointer comparison each for the common cases.
        if v.is_exact_instance_of::<PyString>() {
            return self.string(v);
        }
        if v.is_exact_instance_of::<PyInt>() {
            return self.int(v);
        }
        if let Ok(b) = v.cast::<PyBool>() {
            self.out
                .extend_from_slice(if b.is_true() { b"true" } else { b"false" });
            return Ok(());
        }
        if v.is_none() {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        if let Ok(f) = v.cast::<PyFloat>() {
            return self.float(f.value());
        }
        if let Ok(d) = v.cast::<PyDict>() {
            return self.dict(d, depth);
        }
        if let Ok(l) = v.cast::<PyList>() {
            return self.seq(l.iter(), depth);
        }
        if let Ok(t) = v.cast::<PyTuple>() {
            return self.seq(t.iter(), depth);
        }
        // Subclasses (a StrEnum, an IntEnum) are written as their value.
        if v.is_instance_of::<PyString>() {
            return self.string(v);
        }
        if v.is_instance_of::<PyInt>() {
            return self.int(v);
        }
        if let Ok(dt) = v.cast::<PyDateTime>() {
            let mut buf = [0u8; 32];
            let n = format_datetime(dt, &mut buf)?;
            self.out.push(b'"');
            self.out.extend_from_slice(&buf[..n]);
            self.out.push(b'"');
            return Ok(());
        }
        if let Ok(d) = v.cast::<PyDate>() {
            use pyo3::types::PyDateAccess;
            let _ = write!(
                Utf8Sink(self.out),
                "\"{:04}-{:02}-{:02}\"",
                d.get_year(),
                d.get_month(),
                d.get_day()
            );
            return Ok(());
        }
        Err(Fail::unsupported(format!(
            "cannot encode an object of type {} as JSON",
            type_name(v)
        )))
    }

    #[inline]
    fn string(&mut self, v: &Bound<'_, PyAny>) -> Result<(), Fail> {
        // Callers checked that `v` is a str (or a subclass).
        let s = v.cast::<PyString>().map_err(PyErr::from)?;
        let Ok(bytes) = utf8(s) else {
            return Err(Fail::unsupported(
                "str is not valid UTF-8 (a lone surrogate)",
            ));
        };
        if write_str(self.out, bytes) {
            return Err(Fail::unsupported(NUL));
        }
        self.check_size()
    }

    fn int(&mut self, v: &Bound<'_, PyAny>) -> Result<(), Fail> {
        if let Ok(n) = v.extract::<i64>() {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            return Ok(());
        }
        if let Ok(n) = v.extract::<u64>() {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            return Ok(());
        }
        // A big int: its decimal digits (`int.__repr__`, so a subclass's own repr is not
        // used).
        let digits = v.py().get_type::<PyInt>().call_method1("__repr__", (v,))?;
        let digits = digits.cast::<PyString>().map_err(PyErr::from)?;
        let digits = utf8(digits)?;
        // 10**308 has 309 digits: at that magnitude the receiver's doubles overflow.
        if digits.strip_prefix(b"-").unwrap_or(digits).len() > 308 {
            return Err(Fail::unsupported(MAGNITUDE));
        }
        self.out.extend_from_slice(digits);
        self.check_size()
    }

    fn float(&mut self, f: f64) -> Result<(), Fail> {
        if !f.is_finite() {
            return Err(Fail::unsupported(format!(
                "{f} is not a JSON number (NaN and infinities are refused)"
            )));
        }
        if f.abs() >= 1e308 {
            return Err(Fail::unsupported(MAGNITUDE));
        }
        self.out
            .extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        Ok(())
    }
}

pub(crate) fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Formats a datetime as RFC 3339 in UTC: `2026-11-30T10:00:00.000Z` (microseconds when
/// they are not whole milliseconds). A naive datetime is taken to be UTC already.
pub(crate) fn format_datetime(dt: &Bound<'_, PyDateTime>, buf: &mut [u8; 32]) -> PyResult<usize> {
    use pyo3::types::{PyDateAccess, PyTimeAccess, PyTzInfoAccess};
    let py = dt.py();
    let utc;
    let dt = if dt.get_tzinfo().is_some() {
        utc = dt.call_method1("astimezone", (PyTzInfo::utc(py)?,))?;
        utc.cast::<PyDateTime>().map_err(PyErr::from)?
    } else {
        dt
    };
    let micros = dt.get_microsecond();
    let mut w = ArrayWriter { buf, len: 0 };
    let _ = write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.get_year(),
        dt.get_month(),
        dt.get_day(),
        dt.get_hour(),
        dt.get_minute(),
        dt.get_second()
    );
    let _ = if micros % 1000 == 0 {
        write!(w, ".{:03}Z", micros / 1000)
    } else {
        write!(w, ".{micros:06}Z")
    };
    Ok(w.len)
}

struct ArrayWriter<'a> {
    buf: &'a mut [u8; 32],
    len: usize,
}

impl std::fmt::Write for ArrayWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The rules every record path shares (see `record_json` in the core): what Postgres and
/// the receiver's doubles cannot store is refused, not sent.
const NUL: &str = "U+0000 in a string (Postgres cannot store it)";
const MAGNITUDE: &str = "a number of magnitude 1e308 or more (beyond what a double holds)";
