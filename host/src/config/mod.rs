//! config.toml → [`Config`].
//!
//! # Layout
//! - `model`: the validated types every part of the host reads

mod model;

pub use model::*;
