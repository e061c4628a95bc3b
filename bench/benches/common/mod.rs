//! Shared by the benches that need a real module build: the release
//! `libecho.so`, signed in a temp folder with a key made here.

#![allow(dead_code)]

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use modhost::signing::{Envelope, Keyring, sign};

/// `target/release/libecho.so`, or `$MODHOST_BENCH_ECHO_SO`.
pub(crate) fn echo_so() -> PathBuf {
    std::env::var_os("MODHOST_BENCH_ECHO_SO").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/libecho.so"),
        PathBuf::from,
    )
}

/// The release echo build, or a message on how to make it.
pub(crate) fn echo_bytes() -> Vec<u8> {
    let path = echo_so();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it first: cargo build --release -p modhost-echo",
            path.display()
        )
    })
}

/// A fixed key (benchmarks need no secrecy) and a keyring trusting it for `echo`.
pub(crate) fn key_and_keyring() -> (SigningKey, Keyring) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut keyring = Keyring::default();
    keyring
        .insert("echo", key.verifying_key())
        .expect("insert key");
    (key, keyring)
}

/// Signs `bytes` as echo 0.1.0, seq 1, for the host's ABI.
pub(crate) fn envelope(bytes: &[u8], key: &SigningKey, version: &str) -> Envelope {
    sign(bytes, key, "echo", version, 1, modhost_plugin_api::abi::ABI)
}
