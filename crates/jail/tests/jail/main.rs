//! Integration tests of rampart-jail (one binary: links once).

// Test helpers outside #[test] functions read generated JSON they built themselves.
#![allow(clippy::unwrap_used)]

mod differential;
mod expressions;
mod ignore;
mod pipeline;
