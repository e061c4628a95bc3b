//! Tests for `signing::verify`: signing and verifying bytes and files.

use super::*;
use std::fs;

const ABI: &str = "modhost-plugin-api=0.1;abi_stable=0.11;x86_64-unknown-linux-gnu";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ring(entries: &[(&str, &SigningKey)]) -> Keyring {
    let mut ring = Keyring::default();
    for (module, key) in entries {
        ring.insert(module, key.verifying_key()).unwrap();
    }
    ring
}

fn lib() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn sign_then_verify_round_trips() {
    let (bytes, k) = (lib(), key(1));
    let env = sign(&bytes, &k, "notes", "1.4.2", 42, ABI);
    let ok = verify(&bytes, &env, &ring(&[("notes", &k)])).unwrap();
    assert_eq!(
        ok,
        Verified {
            module: "notes".into(),
            version: "1.4.2".into(),
            seq: 42,
            abi: ABI.into(),
            key_id: key_id(&k.verifying_key()),
        }
    );
    // Through the text form too.
    let parsed = Envelope::parse(&env.to_toml()).unwrap();
    assert!(verify(&bytes, &parsed, &ring(&[("notes", &k)])).is_ok());
}

#[test]
fn any_rotated_key_verifies_and_key_id_names_it() {
    let (bytes, old, new) = (lib(), key(1), key(2));
    let env = sign(&bytes, &new, "notes", "1", 1, ABI);
    let ok = verify(&bytes, &env, &ring(&[("notes", &old), ("notes", &new)])).unwrap();
    assert_eq!(ok.key_id, key_id(&new.verifying_key()));
}

#[test]
fn envelope_key_id_is_not_trusted() {
    let (bytes, k) = (lib(), key(1));
    let mut env = sign(&bytes, &k, "notes", "1", 1, ABI);
    env.key_id = "0123456789abcdef".into();
    let ok = verify(&bytes, &env, &ring(&[("notes", &k)])).unwrap();
    assert_eq!(ok.key_id, key_id(&k.verifying_key()));
}

#[test]
fn flipped_byte_is_a_digest_mismatch() {
    let (mut bytes, k) = (lib(), key(1));
    let env = sign(&bytes, &k, "notes", "1", 1, ABI);
    bytes[1000] ^= 0x01;
    let err = verify(&bytes, &env, &ring(&[("notes", &k)])).unwrap_err();
    assert!(
        matches!(err, SignatureError::DigestMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("changed after signing"), "{err}");
}

#[test]
fn truncated_or_appended_is_a_size_mismatch() {
    let (bytes, k) = (lib(), key(1));
    let env = sign(&bytes, &k, "notes", "1", 1, ABI);
    let keys = ring(&[("notes", &k)]);
    let err = verify(&bytes[..bytes.len() - 1], &env, &keys).unwrap_err();
    assert!(
        matches!(
            err,
            SignatureError::SizeMismatch {
                signed: 4096,
                actual: 4095,
                ..
            }
        ),
        "{err}"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    let err = verify(&longer, &env, &keys).unwrap_err();
    assert!(
        matches!(err, SignatureError::SizeMismatch { actual: 4097, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("truncated or grown"), "{err}");
}

#[test]
fn tampered_envelope_fields_break_the_signature() {
    let (bytes, k) = (lib(), key(1));
    let keys = ring(&[("notes", &k), ("other", &k)]);
    let env = sign(&bytes, &k, "notes", "1.4.2", 42, ABI);
    type Edit = fn(&mut Envelope);
    let tampered: [(&str, Edit); 4] = [
        // Same key registered for "other", so this reaches the signature check.
        ("module", |e| e.module = "other".into()),
        ("version", |e| e.version = "1.4.3".into()),
        ("seq", |e| e.seq = 43),
        ("abi", |e| {
            e.abi = "modhost-plugin-api=0.2;abi_stable=0.11;x".into()
        }),
    ];
    for (field, edit) in tampered {
        let mut bad = env.clone();
        edit(&mut bad);
        let err = verify(&bytes, &bad, &keys).unwrap_err();
        assert!(
            matches!(err, SignatureError::BadSignature { keys: 1, .. }),
            "{field}: {err}"
        );
    }
    let mut bad = env.clone();
    bad.signature[0] ^= 1;
    assert!(matches!(
        verify(&bytes, &bad, &keys),
        Err(SignatureError::BadSignature { .. })
    ));
}

#[test]
fn wrong_key_is_refused() {
    let bytes = lib();
    let env = sign(&bytes, &key(1), "notes", "1", 1, ABI);
    let err = verify(&bytes, &env, &ring(&[("notes", &key(2))])).unwrap_err();
    assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("signed with another key"), "{err}");
}

#[test]
fn key_of_module_a_never_validates_module_b() {
    let (bytes, a_key) = (lib(), key(1));
    // Signed honestly as "b" with a's key; only a.pub lists that key.
    let env = sign(&bytes, &a_key, "b", "1", 1, ABI);
    let keys = ring(&[("a", &a_key), ("b", &key(2))]);
    let err = verify(&bytes, &env, &keys).unwrap_err();
    assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    // And with no b.pub at all, it is a missing key, not a fallback to a's.
    let err = verify(&bytes, &env, &ring(&[("a", &a_key)])).unwrap_err();
    assert!(matches!(err, SignatureError::NoKey { .. }), "{err}");
}

#[test]
fn missing_key_says_where_to_add_it() {
    let bytes = lib();
    let env = sign(&bytes, &key(1), "x", "1", 1, ABI);
    let err = verify(&bytes, &env, &Keyring::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no verify key for module \"x\": add its public key to verify_keys/x.pub"
    );
}

#[test]
fn missing_key_file_via_keyring_load() {
    let dir = tempfile::tempdir().unwrap();
    let verify_keys = dir.path().join("verify_keys");
    fs::create_dir(&verify_keys).unwrap();
    let bytes = lib();
    let env = sign(&bytes, &key(1), "notes", "1", 1, ABI);
    let keys = Keyring::load(&[verify_keys]).unwrap();
    assert!(matches!(
        verify(&bytes, &env, &keys),
        Err(SignatureError::NoKey { .. })
    ));
}

#[test]
fn invalid_envelope_in_code_is_refused() {
    let (bytes, k) = (lib(), key(1));
    let mut env = sign(&bytes, &k, "notes", "1", 1, ABI);
    env.module = "../notes".into();
    let err = verify(&bytes, &env, &ring(&[("notes", &k)])).unwrap_err();
    assert!(
        matches!(err, SignatureError::InvalidEnvelope { sig: None, .. }),
        "{err}"
    );
}

#[test]
fn verify_file_returns_the_verified_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, k) = (lib(), key(1));
    let path = dir.path().join("libnotes.so");
    fs::write(&path, &bytes).unwrap();
    let env = sign(&bytes, &k, "notes", "1", 1, ABI);
    fs::write(sig_path(&path), env.to_toml()).unwrap();
    let (got_env, got_bytes) = verify_file(&path, &ring(&[("notes", &k)])).unwrap();
    assert_eq!((got_env, got_bytes), (env, bytes));
    assert_eq!(sig_path(&path), dir.path().join("libnotes.so.sig"));
}

#[test]
fn verify_file_refuses_an_edited_sig() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, k) = (lib(), key(1));
    let path = dir.path().join("libnotes.so");
    fs::write(&path, &bytes).unwrap();
    let text = sign(&bytes, &k, "notes", "1", 42, ABI).to_toml();
    fs::write(sig_path(&path), text.replace("seq = 42", "seq = 4200")).unwrap();
    let err = verify_file(&path, &ring(&[("notes", &k)])).unwrap_err();
    assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
}

#[test]
fn verify_file_without_sig_says_how_to_sign() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnotes.so");
    fs::write(&path, lib()).unwrap();
    let err = verify_file(&path, &Keyring::default()).unwrap_err();
    assert!(
        matches!(err, SignatureError::MissingSignature { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("no signature: expected "), "{msg}");
    assert!(
        msg.contains("libnotes.so.sig") && msg.contains("modhost sign"),
        "{msg}"
    );
}

#[test]
fn verify_file_reports_bad_envelope_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnotes.so");
    fs::write(&path, lib()).unwrap();
    fs::write(sig_path(&path), "format = 2\n").unwrap();
    let err = verify_file(&path, &Keyring::default()).unwrap_err();
    assert!(
        matches!(err, SignatureError::InvalidEnvelope { sig: Some(_), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("libnotes.so.sig"), "{err}");
    fs::write(sig_path(&path), [0xff, 0xfe]).unwrap();
    let err = verify_file(&path, &Keyring::default()).unwrap_err();
    assert!(
        matches!(err, SignatureError::InvalidEnvelope { .. }),
        "{err}"
    );
}

#[test]
fn verify_file_with_missing_library_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnotes.so");
    let env = sign(&lib(), &key(1), "notes", "1", 1, ABI);
    fs::write(sig_path(&path), env.to_toml()).unwrap();
    let err = verify_file(&path, &Keyring::default()).unwrap_err();
    assert!(matches!(err, SignatureError::Read { .. }), "{err}");
}

#[test]
fn oversized_library_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.so");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_MODULE_BYTES + 1).unwrap(); // sparse: no disk used
    let err = read_library(&path).unwrap_err();
    assert!(matches!(err, SignatureError::TooLarge { .. }), "{err}");
}
