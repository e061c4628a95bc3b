//! Tests for `signing::envelope`: parsing, validation, the signed bytes.

use super::*;
use proptest::prelude::*;

fn sample() -> Envelope {
    Envelope {
        format: FORMAT,
        module: "notes".into(),
        version: "1.4.2".into(),
        seq: 42,
        abi: "modhost-plugin-api=0.1;abi_stable=0.11;x86_64-unknown-linux-gnu".into(),
        size: 684_216,
        sha512: [0xab; 64],
        key_id: "3f9c2a1b7d0e4c55".into(),
        signature: [7; 64],
    }
}

/// `sample().to_toml()` with one line replaced.
fn with_line(key: &str, line: &str) -> String {
    sample()
        .to_toml()
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} =")) {
                line
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn without(key: &str) -> String {
    sample()
        .to_toml()
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} =")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn round_trips_the_documented_example() {
    let env = sample();
    let text = env.to_toml();
    assert!(
        text.starts_with("format = 1\nmodule = \"notes\"\n"),
        "{text}"
    );
    assert_eq!(Envelope::parse(&text).unwrap(), env);
}

#[test]
fn signed_message_layout_is_exact() {
    let env = sample();
    let msg = env.signed_message();
    let mut expected = b"modhost/module-signature/v1\0".to_vec();
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.extend_from_slice(b"notes");
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.extend_from_slice(b"1.4.2");
    expected.extend_from_slice(&8u64.to_le_bytes());
    expected.extend_from_slice(&42u64.to_le_bytes());
    expected.extend_from_slice(&(env.abi.len() as u64).to_le_bytes());
    expected.extend_from_slice(env.abi.as_bytes());
    expected.extend_from_slice(&8u64.to_le_bytes());
    expected.extend_from_slice(&684_216u64.to_le_bytes());
    expected.extend_from_slice(&64u64.to_le_bytes());
    expected.extend_from_slice(&[0xab; 64]);
    assert_eq!(msg, expected);
}

#[test]
fn signed_message_is_injective_across_field_boundaries() {
    let mut a = sample();
    a.module = "ab".into();
    a.version = "c".into();
    let mut b = sample();
    b.module = "a".into();
    b.version = "bc".into();
    assert_ne!(a.signed_message(), b.signed_message());
}

#[test]
fn key_id_is_not_signed() {
    let mut other = sample();
    other.key_id = "0000000000000000".into();
    assert_eq!(other.signed_message(), sample().signed_message());
}

#[test]
fn refuses_oversized_text() {
    let text = format!("{}#{}", sample().to_toml(), "x".repeat(MAX_ENVELOPE_BYTES));
    assert!(matches!(
        Envelope::parse(&text),
        Err(EnvelopeError::TooLarge { .. })
    ));
}

#[test]
fn refuses_bad_toml() {
    let err = Envelope::parse("format = = 1").unwrap_err();
    assert!(matches!(err, EnvelopeError::Syntax { .. }), "{err}");
    let dup = format!("{}module = \"x\"\n", sample().to_toml());
    assert!(matches!(
        Envelope::parse(&dup),
        Err(EnvelopeError::Syntax { .. })
    ));
}

#[test]
fn refuses_unknown_keys() {
    let text = format!("{}extra = 1\n", sample().to_toml());
    let err = Envelope::parse(&text).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::UnknownKey {
            key: "extra".into()
        }
    );
    assert!(err.to_string().contains("unknown key `extra`"), "{err}");
    let table = format!("{}[x]\na = 1\n", sample().to_toml());
    assert!(matches!(
        Envelope::parse(&table),
        Err(EnvelopeError::UnknownKey { .. })
    ));
}

#[test]
fn refuses_missing_keys() {
    for key in KEYS {
        let err = Envelope::parse(&without(key)).unwrap_err();
        assert_eq!(err, EnvelopeError::MissingKey { key }, "{key}");
    }
}

#[test]
fn refuses_wrong_types() {
    let err = Envelope::parse(&with_line("seq", "seq = \"42\"")).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::WrongType {
            key: "seq",
            expected: "an integer"
        }
    );
    let err = Envelope::parse(&with_line("module", "module = 5")).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::WrongType {
            key: "module",
            expected: "a string"
        }
    );
}

#[test]
fn refuses_other_formats() {
    for n in ["0", "2", "-1"] {
        let err = Envelope::parse(&with_line("format", &format!("format = {n}"))).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::UnsupportedFormat { .. }),
            "{err}"
        );
    }
}

#[test]
fn refuses_bad_module_names() {
    for name in ["", "Notes", "no tes", "../x", "a/b", "é", &"a".repeat(65)] {
        let line = format!("module = {}", toml_string(name));
        let err = Envelope::parse(&with_line("module", &line)).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::InvalidModule { .. }),
            "{name:?}: {err}"
        );
    }
    let err = Envelope::parse(&with_line("module", "module = \"\"")).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(
        Envelope::parse(&with_line(
            "module",
            &format!("module = \"{}\"", "a".repeat(64))
        ))
        .is_ok()
    );
    assert!(Envelope::parse(&with_line("module", "module = \"a-b_9\"")).is_ok());
}

#[test]
fn refuses_bad_version_and_abi() {
    for (key, line) in [
        ("version", "version = \"\""),
        ("version", "version = \"1.0\\n\""),
        ("version", "version = \"1.0\u{202e}\""),
        ("abi", "abi = \"\""),
    ] {
        let err = Envelope::parse(&with_line(key, line)).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::InvalidText { .. }),
            "{line}: {err}"
        );
    }
    let long = format!("version = \"{}\"", "1".repeat(MAX_VERSION_LEN + 1));
    assert!(matches!(
        Envelope::parse(&with_line("version", &long)),
        Err(EnvelopeError::InvalidText { key: "version", .. })
    ));
}

#[test]
fn refuses_negative_numbers() {
    let err = Envelope::parse(&with_line("seq", "seq = -1")).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::OutOfRange { key: "seq", .. }),
        "{err}"
    );
    let err = Envelope::parse(&with_line("size", "size = -5")).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::OutOfRange { key: "size", .. }),
        "{err}"
    );
}

#[test]
fn refuses_bad_hash_lengths_and_digits() {
    let short = format!("sha512 = \"{}\"", "ab".repeat(63));
    let err = Envelope::parse(&with_line("sha512", &short)).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::BadHex { key: "sha512", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("128 hex characters"), "{err}");
    let not_hex = format!("sha512 = \"{}\"", "zz".repeat(64));
    assert!(matches!(
        Envelope::parse(&with_line("sha512", &not_hex)),
        Err(EnvelopeError::BadHex { key: "sha512", .. })
    ));
    let upper = format!("sha512 = \"{}\"", "AB".repeat(64));
    assert_eq!(
        Envelope::parse(&with_line("sha512", &upper))
            .unwrap()
            .sha512,
        [0xab; 64]
    );
    for id in ["", "3f9c", "3f9c2a1b7d0e4c55aa", "3f9c2a1b7d0e4cZZ"] {
        let line = format!("key_id = \"{id}\"");
        let err = Envelope::parse(&with_line("key_id", &line)).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::BadHex { key: "key_id", .. }),
            "{id}: {err}"
        );
    }
}

#[test]
fn refuses_bad_signature_encoding() {
    let short = format!("signature = \"{}\"", BASE64.encode([1u8; 63]));
    let long = format!("signature = \"{}\"", BASE64.encode([1u8; 65]));
    let junk = format!("signature = \"{}\"", "!".repeat(88));
    for line in [short, long, junk, "signature = \"\"".to_owned()] {
        let err = Envelope::parse(&with_line("signature", &line)).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::BadSignatureEncoding { .. }),
            "{line}: {err}"
        );
    }
}

#[test]
fn validate_catches_values_toml_cannot_hold() {
    let mut env = sample();
    env.seq = u64::MAX;
    assert!(matches!(
        env.validate(),
        Err(EnvelopeError::OutOfRange { key: "seq", .. })
    ));
    let mut env = sample();
    env.format = 2;
    assert!(matches!(
        env.validate(),
        Err(EnvelopeError::UnsupportedFormat { found: 2 })
    ));
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        "[a-z0-9_-]{1,64}",
        "[ -~]{1,128}",
        0..=MAX_TOML_INT,
        "[ -~]{1,256}",
        0..=MAX_TOML_INT,
        prop::collection::vec(any::<u8>(), 64),
        "[0-9a-f]{16}",
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(
            |(module, version, seq, abi, size, sha, key_id, sig)| Envelope {
                format: FORMAT,
                module,
                version,
                seq,
                abi,
                size,
                sha512: sha.try_into().unwrap(),
                key_id,
                signature: sig.try_into().unwrap(),
            },
        )
}

proptest! {
    #[test]
    fn parse_inverts_to_toml(env in arb_envelope()) {
        prop_assert_eq!(Envelope::parse(&env.to_toml()).unwrap(), env);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,512}") {
        let _ = Envelope::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_misses(env in arb_envelope(), cut in 0usize..600, junk in "[ -~\n]{0,8}") {
        let mut text = env.to_toml();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.insert_str(cut, &junk);
        let _ = Envelope::parse(&text);
    }
}
