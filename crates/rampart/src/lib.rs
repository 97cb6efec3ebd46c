//! `rampart`: the binary's library half — command implementations and the glue
//! between the engine crates. `main.rs` only dispatches to it.

pub mod cli;
pub mod client;
pub mod config_cmd;
pub mod corpus;
pub mod engine;
pub mod journal;
pub mod logread;
pub mod regex_cmd;
pub mod server;
