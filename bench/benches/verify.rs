//! Signature verification of the release echo `.so`: SHA-512 over the whole
//! file plus one ed25519 check (the cost paid before every load and reload).

use criterion::{Criterion, criterion_group, criterion_main};
use modhost::signing::verify;

mod common;

fn bench(c: &mut Criterion) {
    let bytes = common::echo_bytes();
    let (key, keyring) = common::key_and_keyring();
    let envelope = common::envelope(&bytes, &key, "0.1.0");
    verify(&bytes, &envelope, &keyring).expect("a good signature");
    let mut group = c.benchmark_group("signature");
    group.throughput(criterion::Throughput::Bytes(bytes.len() as u64));
    group.bench_function(
        format!("verify_release_echo_so_{}_bytes", bytes.len()),
        |b| b.iter(|| verify(std::hint::black_box(&bytes), &envelope, &keyring).expect("verifies")),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
