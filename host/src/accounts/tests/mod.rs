//! Unit tests of the account store, passwords, tokens and limits.

mod config;
mod crash;
mod store;
mod tokens;
