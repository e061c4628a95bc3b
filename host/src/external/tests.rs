//! Unit tests: the envelope both ways, the replay guard's bounds, template
//! name confinement, manifests.

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};

use super::{
    endpoint::parse_manifest,
    envelope::{self, EnvelopeError},
    replay::ReplayGuard,
    templates::{self, TemplateError},
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// What sse-platform's client sends: tornado's `json_encode` (Python's
/// `json.dumps` spacing) signed with PyNaCl's Base64Encoder.
fn frame(key: &SigningKey, origin: &str, rid: &str, inner: &str) -> String {
    let sig = key.sign(inner.as_bytes());
    let mut signed = sig.to_bytes().to_vec();
    signed.extend_from_slice(inner.as_bytes());
    format!(
        "{{\"signed_msg\": \"{}\", \"origin\": \"{origin}\", \"resolve_id\": \"{rid}\"}}",
        BASE64.encode(signed)
    )
}

#[test]
fn a_pynacl_signed_frame_verifies_and_keeps_its_fields() {
    let k = key(1);
    let inner = r#"{"type": "module_start", "module_name": "m", "port": 8000, "origin": "m", "resolve_id": "r1"}"#;
    let claimed = envelope::parse(&frame(&k, "m", "r1", inner)).unwrap();
    let verified = claimed.verify(&[k.verifying_key()]).unwrap();
    assert_eq!(verified.kind(), "module_start");
    assert_eq!(verified.body["port"], 8000);
    assert_eq!(verified.origin, "m");
}

#[test]
fn wrong_key_tampering_and_disagreeing_fields_are_signature_errors() {
    let (k, other) = (key(1), key(2));
    let inner = r#"{"type": "x", "origin": "m", "resolve_id": "r1"}"#;
    let text = frame(&k, "m", "r1", inner);
    let wrong = envelope::parse(&text)
        .unwrap()
        .verify(&[other.verifying_key()]);
    assert!(matches!(wrong, Err(EnvelopeError::Signature(_))));
    let none = envelope::parse(&text).unwrap().verify(&[]);
    assert!(
        matches!(none, Err(EnvelopeError::Signature(ref w)) if w.contains("verify_keys/m.pub"))
    );
    // Signed as origin "n" but sent as "m".
    let inner_n = r#"{"type": "x", "origin": "n", "resolve_id": "r1"}"#;
    let lying = envelope::parse(&frame(&k, "m", "r1", inner_n)).unwrap();
    assert!(matches!(
        lying.verify(&[k.verifying_key()]),
        Err(EnvelopeError::Signature(_))
    ));
    // Same signature, another resolve_id outside.
    let moved = envelope::parse(&frame(&k, "m", "r2", inner)).unwrap();
    assert!(matches!(
        moved.verify(&[k.verifying_key()]),
        Err(EnvelopeError::Signature(_))
    ));
    // One flipped byte in the signed part.
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let mut raw = BASE64.decode(v["signed_msg"].as_str().unwrap()).unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 1;
    v["signed_msg"] = BASE64.encode(raw).into();
    let tampered = envelope::parse(&v.to_string()).unwrap();
    assert!(matches!(
        tampered.verify(&[k.verifying_key()]),
        Err(EnvelopeError::Signature(_))
    ));
}

#[test]
fn missing_keys_are_format_errors_in_sse_platform_words() {
    let e = envelope::parse(r#"{"signed_msg": "", "origin": "m"}"#).unwrap_err();
    assert_eq!(
        e.reply(),
        json!({"type": "message_format_error", "description": "Message misses key 'resolve_id'"})
    );
    assert!(matches!(
        envelope::parse("not json"),
        Err(EnvelopeError::Format(_))
    ));
    let long = "x".repeat(envelope::MAX_RESOLVE_ID + 1);
    let e = envelope::parse(&format!(
        r#"{{"signed_msg":"","origin":"m","resolve_id":"{long}"}}"#
    ));
    assert!(matches!(e, Err(EnvelopeError::Format(_))));
}

#[test]
fn host_frames_are_plain_json_with_a_verifiable_signed_msg() {
    let k = key(9);
    let body = json!({"type": "module_start_response", "resolve_id": "r", "success": true});
    let text = envelope::seal(&k, &body);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "module_start_response");
    assert_eq!(v["success"], true);
    let signed = BASE64.decode(v["signed_msg"].as_str().unwrap()).unwrap();
    let (sig, inner) = signed.split_at(64);
    let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
    k.verifying_key().verify_strict(inner, &sig).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(inner).unwrap(), body);
}

#[test]
fn a_resolve_id_is_accepted_once_per_module_within_the_window() {
    let guard = ReplayGuard::default();
    let now = Instant::now();
    let window = Duration::from_secs(60);
    guard.check("a", "r1", now, window, 1024).unwrap();
    assert!(guard.check("a", "r1", now, window, 1024).is_err());
    // Another module's ids are its own.
    guard.check("b", "r1", now, window, 1024).unwrap();
    // Past the window the id is forgotten (the documented bound).
    let later = now + window;
    guard.check("a", "r1", later, window, 1024).unwrap();
    assert_eq!(guard.remembered("a"), 1);
}

#[test]
fn the_replay_guard_keeps_at_most_max_ids_per_module() {
    let guard = ReplayGuard::default();
    let now = Instant::now();
    let window = Duration::from_secs(600);
    for i in 0..5000 {
        guard
            .check("a", &format!("r{i}"), now, window, 1024)
            .unwrap();
    }
    assert_eq!(guard.remembered("a"), 1024);
    assert!(
        guard.check("a", "r4999", now, window, 1024).is_err(),
        "recent ids are kept"
    );
}

#[test]
fn template_names_stay_in_their_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("templates");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::fs::write(root.join("page.html"), "<p>hi</p>").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.html")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();

    assert_eq!(
        templates::read(&root, "page.html", 1024).unwrap(),
        "<p>hi</p>"
    );
    for name in [
        "../secret.txt",
        "/etc/passwd",
        "a/../../secret.txt",
        ".hidden",
        "",
    ] {
        let e = templates::read(&root, name, 1024).unwrap_err();
        assert!(matches!(e, TemplateError::BadName(..)), "{name}: {e}");
    }
    for name in ["link.html", "up/secret.txt"] {
        let e = templates::read(&root, name, 1024).unwrap_err();
        assert!(matches!(e, TemplateError::BadName(..)), "{name}: {e}");
    }
    let e = templates::write(&root, "up/secret.txt", "x", 1024).unwrap_err();
    assert!(matches!(e, TemplateError::BadName(..)), "{e}");
    // Writing over a symlink replaces the link, never its target.
    templates::write(&root, "link.html", "new", 1024).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secret.txt")).unwrap(),
        "secret"
    );
    assert!(matches!(
        templates::read(&root, "nope.html", 1024),
        Err(TemplateError::NotFound(_))
    ));
    assert!(matches!(
        templates::read(&root, "page.html", 3),
        Err(TemplateError::TooLarge(3))
    ));
    assert!(matches!(
        templates::read(&dir.path().join("missing"), "page.html", 1024),
        Err(TemplateError::NotSetUp(_))
    ));
}

#[test]
fn a_manifest_reads_like_an_in_process_one() {
    let m = parse_manifest(
        "py",
        &json!({"version": "1.0.0", "commands": [
            {"name": "divide", "params": ["dividend", "divisor"]},
            {"name": "count", "streams": true, "min_role": "admin"},
            {"name": "note", "needs_reply": false},
        ]}),
    )
    .unwrap();
    assert_eq!(m.name.as_str(), "py");
    assert_eq!(m.commands.len(), 3);
    assert_eq!(m.commands[0].params.len(), 2);
    assert!(m.commands[1].streams && m.commands[1].min_role.as_str() == "admin");
    assert!(!m.commands[2].needs_reply);
    assert!(parse_manifest("py", &json!({"name": "other", "commands": []})).is_err());
    assert!(parse_manifest("py", &json!({"commands": [{"name": "a"}, {"name": "a"}]})).is_err());
    assert!(parse_manifest("py", &json!({"commands": "x"})).is_err());
}
