//! Helpers shared by integration tests.

#![allow(dead_code)]

pub(crate) mod file_store;
pub(crate) mod fork;
pub(crate) mod rejected;
pub(crate) mod sinks;
pub(crate) mod store_contract;
