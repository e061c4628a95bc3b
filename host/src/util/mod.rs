//! Small helpers that several parts of the host need, kept in one place so
//! that each is written (and reasoned about) once.
//!
//! # Layout
//! - `sync`: [`sync::lock`], [`sync::read`], [`sync::write`], lock guards
//!   that recover a poisoned lock, and why that is right here

pub(crate) mod sync;
