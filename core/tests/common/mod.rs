//! Helpers shared by integration tests.

#![allow(dead_code)]

pub(crate) mod fork;
pub(crate) mod store_contract;
