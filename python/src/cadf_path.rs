//! Where a value sits in a CADF event given as a dict, for the binding's messages
//! (`initiator.addresses[1].url`) and for the nesting left to an attachment's content.

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::cadf::Refusal;

/// Where a value sits, rendered only on failure: `initiator.addresses[1].url`.
pub(crate) struct At<'a> {
    up: Option<&'a At<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    /// The event itself.
    Event,
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    pub(crate) const EVENT: At<'static> = At {
        up: None,
        step: Step::Event,
    };

    pub(crate) fn key(&'a self, key: &'a str) -> Self {
        At {
            up: Some(self),
            step: Step::Key(key),
        }
    }

    /// The JSON containers around the value at this place: one per step before the last.
    pub(crate) fn containers(&self) -> usize {
        std::iter::successors(self.up, |at| at.up).count()
    }

    pub(crate) fn index(&'a self, index: usize) -> Self {
        At {
            up: Some(self),
            step: Step::Index(index),
        }
    }

    /// The path with list indices (`initiator.addresses[1].url`), or without them: the
    /// field's name as the core's errors give it (`initiator.addresses.url`).
    pub(crate) fn render(&self, indices: bool) -> String {
        let mut steps = vec![self.step];
        let mut up = self.up;
        while let Some(at) = up {
            steps.push(at.step);
            up = at.up;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(i) if indices => out.push_str(&format!("[{i}]")),
                Step::Index(_) | Step::Event => {}
            }
        }
        out
    }

    pub(crate) fn invalid(&self, reason: impl std::fmt::Display) -> Refusal {
        Refusal::Field {
            missing: false,
            field: self.render(false),
            message: format!("field {}: {reason}", self.render(true)),
        }
    }

    pub(crate) fn missing(&self) -> Refusal {
        Refusal::Field {
            missing: true,
            field: self.render(false),
            message: format!("required field {} is missing", self.render(true)),
        }
    }

    pub(crate) fn unknown(&self, key: &Bound<'_, PyAny>, of: &str) -> Refusal {
        let key = match key.cast::<PyString>() {
            Ok(k) => k.to_string_lossy().into_owned(),
            Err(_) => key.repr().map(|r| r.to_string()).unwrap_or_default(),
        };
        self.key(&key).invalid(format!("unknown field of {of}"))
    }
}
