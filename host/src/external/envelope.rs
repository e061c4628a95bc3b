//! The signed frame, both ways.
//!
//! A module sends `{"signed_msg": base64(sig64 ‖ inner), "origin", "resolve_id"}`
//! (PyNaCl's `SigningKey.sign(..., encoder=Base64Encoder)` output), where
//! `inner` is the request as JSON text repeating `origin` and `resolve_id`.
//! The signature is over `inner`'s exact bytes, so nothing is re-encoded
//! before it is checked; the outer fields are only a hint of which key to
//! use and must agree with the signed ones.
//!
//! The host's frames to a module are the reply object itself, so a client
//! that reads plain JSON (sse-platform's) works unchanged, plus one field:
//! `"signed_msg": base64(sig64 ‖ inner)`, `inner` being the same object
//! without `signed_msg`, signed with the host key (`GET /module/key`). A
//! module that verifies takes `inner` from there and ignores the rest.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest `resolve_id` accepted (sse-platform's are 36-character uuid4s).
pub(super) const MAX_RESOLVE_ID: usize = 128;

/// Why a module's frame was refused; [`EnvelopeError::reply`] is the error
/// frame the module gets (sse-platform's error types).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or a key missing or of the wrong type.
    #[error("{0}")]
    Format(String),
    /// No key for the origin, a signature that does not verify, or signed
    /// fields that disagree with the envelope.
    #[error("{0}")]
    Signature(String),
}

impl EnvelopeError {
    /// The error frame for the module.
    pub fn reply(&self) -> Value {
        match self {
            Self::Format(why) => serde_json::json!({
                "type": "message_format_error",
                "description": why,
            }),
            Self::Signature(why) => serde_json::json!({
                "type": "signature_verification_error",
                "reason": why,
            }),
        }
    }
}

#[derive(Deserialize)]
struct Outer {
    signed_msg: Option<String>,
    origin: Option<Value>,
    resolve_id: Option<Value>,
}

/// The unverified envelope: whose key to check `signed` with.
#[derive(Debug)]
pub(super) struct Claimed {
    /// The module the frame says it is from.
    pub origin: String,
    /// The frame's id, echoed in the reply.
    pub resolve_id: String,
    signed: Vec<u8>,
}

/// A verified frame.
#[derive(Debug)]
pub struct Inbound {
    /// The module that signed it.
    pub origin: String,
    /// Its id, echoed in the reply.
    pub resolve_id: String,
    /// The signed request.
    pub body: Map<String, Value>,
}

impl Inbound {
    /// The request type (`""` when the frame has none).
    pub fn kind(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

fn missing(key: &str) -> EnvelopeError {
    EnvelopeError::Format(format!("Message misses key '{key}'"))
}

fn text_field(value: Option<Value>, key: &str) -> Result<String, EnvelopeError> {
    match value {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(EnvelopeError::Format(format!("'{key}' must be a string"))),
        None => Err(missing(key)),
    }
}

/// Reads the envelope of `text` without trusting anything in it yet.
pub(super) fn parse(text: &str) -> Result<Claimed, EnvelopeError> {
    let outer: Outer = serde_json::from_str(text)
        .map_err(|e| EnvelopeError::Format(format!("the frame is not a JSON object ({e})")))?;
    let origin = text_field(outer.origin, "origin")?;
    let resolve_id = text_field(outer.resolve_id, "resolve_id")?;
    if resolve_id.is_empty() || resolve_id.len() > MAX_RESOLVE_ID {
        return Err(EnvelopeError::Format(format!(
            "'resolve_id' must be 1 to {MAX_RESOLVE_ID} characters (a uuid4)"
        )));
    }
    let signed_msg = outer.signed_msg.ok_or_else(|| missing("signed_msg"))?;
    // PyNaCl's Base64Encoder output; whitespace is not part of it.
    let signed = BASE64
        .decode(signed_msg.trim())
        .map_err(|e| EnvelopeError::Signature(format!("signed_msg is not base64: {e}")))?;
    Ok(Claimed {
        origin,
        resolve_id,
        signed,
    })
}

impl Claimed {
    /// Checks the signature with any of `keys` (the origin's `.pub` lines)
    /// and that the signed `origin` and `resolve_id` are the envelope's.
    pub(super) fn verify(self, keys: &[VerifyingKey]) -> Result<Inbound, EnvelopeError> {
        let bad = |why: String| EnvelopeError::Signature(why);
        if keys.is_empty() {
            return Err(bad(format!(
                "no verify key for module {:?}: add verify_keys/{}.pub on the host",
                self.origin, self.origin
            )));
        }
        if self.signed.len() < Signature::BYTE_SIZE {
            return Err(bad("signed_msg is shorter than a signature".to_owned()));
        }
        let (sig, inner) = self.signed.split_at(Signature::BYTE_SIZE);
        let sig = Signature::from_slice(sig).map_err(|e| bad(format!("bad signature: {e}")))?;
        if !keys.iter().any(|k| k.verify_strict(inner, &sig).is_ok()) {
            return Err(bad(format!(
                "the signature does not verify with module {:?}'s key",
                self.origin
            )));
        }
        let body: Map<String, Value> = serde_json::from_slice(inner).map_err(|e| {
            EnvelopeError::Format(format!("the signed message is not a JSON object ({e})"))
        })?;
        let signed_origin = body.get("origin").and_then(Value::as_str);
        let signed_id = body.get("resolve_id").and_then(Value::as_str);
        if signed_origin != Some(self.origin.as_str()) || signed_id != Some(&self.resolve_id) {
            return Err(bad(
                "the signed origin and resolve_id must equal the envelope's".to_owned(),
            ));
        }
        Ok(Inbound {
            origin: self.origin,
            resolve_id: self.resolve_id,
            body,
        })
    }
}

/// A frame to a module: `body` as JSON plus its `signed_msg` (see the
/// module docs). `body` must be an object.
pub(super) fn seal(key: &SigningKey, body: &Value) -> String {
    let inner = body.to_string();
    let sig = key.sign(inner.as_bytes());
    let mut signed = Vec::with_capacity(Signature::BYTE_SIZE + inner.len());
    signed.extend_from_slice(&sig.to_bytes());
    signed.extend_from_slice(inner.as_bytes());
    let signed_msg = BASE64.encode(&signed);
    // `inner` ends with the object's `}`: splice the field in before it.
    let open = inner.strip_suffix('}').unwrap_or(&inner);
    let sep = if open.ends_with('{') { "" } else { "," };
    format!("{open}{sep}\"signed_msg\":\"{signed_msg}\"}}")
}
