//! Loopback servers shared by the tests (and the benchmark).

pub mod hub;
pub mod server;
