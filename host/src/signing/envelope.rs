//! The `.sig` envelope: a small TOML file next to each module library
//! (DESIGN §3), and the exact bytes its ed25519 signature covers.
//!
//! ```toml
//! format = 1
//! module = "notes"
//! version = "1.4.2"
//! seq = 42
//! abi = "modhost-plugin-api=0.1;abi_stable=0.11;x86_64-unknown-linux-gnu"
//! size = 684216
//! sha512 = "…128 hex chars…"
//! key_id = "…16 hex chars…"
//! signature = "…base64 of 64 bytes…"
//! ```
//!
//! Parsing is strict on purpose: an envelope is written by `modhost sign`,
//! never by hand, so anything unexpected (an unknown key, a short hash, a
//! second format) is far more likely an attack or a mix-up than a typo worth
//! tolerating. Everything here is pure: no I/O.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The only envelope format this host understands.
pub const FORMAT: u32 = 1;

/// Envelopes longer than this are refused before parsing. A real one is
/// about 400 bytes; the bound keeps a hostile `.sig` from costing memory.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;

/// Domain separation for the signed message, so an ed25519 signature made
/// for anything else (another tool, another format version) can never be
/// replayed as a module signature.
pub const DOMAIN_TAG: &[u8] = b"modhost/module-signature/v1\0";

/// Largest `seq` and `size` an envelope can hold: TOML integers are signed
/// 64-bit, so the top half of `u64` cannot be written down.
pub const MAX_TOML_INT: u64 = i64::MAX as u64;

/// Longest accepted `module` name (and the rule is `[a-z0-9_-]{1,64}`).
pub(crate) const MAX_MODULE_NAME: usize = 64;
/// Longest accepted `version` string (printable ASCII).
pub(crate) const MAX_VERSION_LEN: usize = 128;
/// Longest accepted `abi` string (printable ASCII).
pub(crate) const MAX_ABI_LEN: usize = 256;
/// Length of `key_id`: the first 16 hex chars of SHA-256(public key).
pub(crate) const KEY_ID_LEN: usize = 16;

/// The keys an envelope has, in the order `to_toml` writes them.
const KEYS: [&str; 9] = [
    "format",
    "module",
    "version",
    "seq",
    "abi",
    "size",
    "sha512",
    "key_id",
    "signature",
];

/// A parsed, validated `.sig` envelope.
///
/// Parsing checks the shape of every field; whether the signature is good
/// is [`verify`](super::verify())'s job.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The module name the signer vouches for; it picks the verify key.
    pub module: String,
    /// The module version; the loaded manifest must report the same.
    pub version: String,
    /// Monotonic per module: the rollback guard.
    pub seq: u64,
    /// The ABI id the library was built against.
    pub abi: String,
    /// Length of the library file in bytes.
    pub size: u64,
    /// SHA-512 of the library file.
    pub sha512: [u8; 64],
    /// `hex(SHA-256(public key))[..16]` of the signing key. Informational
    /// only: the verifier recomputes it from whichever key verifies.
    pub key_id: String,
    /// ed25519 signature over [`Envelope::signed_message`].
    pub signature: [u8; 64],
}

/// Why a `.sig` text is not a valid envelope. Each message says what is
/// wrong; the fix is nearly always "sign the library again with
/// `modhost sign`".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The text is longer than [`MAX_ENVELOPE_BYTES`].
    #[error(
        "signature envelope is {len} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit: \
         this is not a .sig written by `modhost sign`"
    )]
    TooLarge {
        /// Length of the refused text.
        len: usize,
    },
    /// Not TOML at all.
    #[error("signature envelope is not valid TOML: {message}")]
    Syntax {
        /// The TOML parser's message (includes line and column).
        message: String,
    },
    /// A key this format does not have.
    #[error(
        "unknown key `{key}` in signature envelope (format {FORMAT} has: {}); \
         was it written by a newer `modhost sign`?",
        KEYS.join(", ")
    )]
    UnknownKey {
        /// The unexpected key.
        key: String,
    },
    /// A required key is absent.
    #[error("signature envelope has no `{key}`: sign the library again with `modhost sign`")]
    MissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// A key holds the wrong TOML type.
    #[error("`{key}` in signature envelope must be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold, e.g. "an integer".
        expected: &'static str,
    },
    /// `format` is not [`FORMAT`].
    #[error(
        "signature envelope has format = {found}, this host understands format = {FORMAT} only: \
         sign with a matching `modhost sign`"
    )]
    UnsupportedFormat {
        /// The format number found.
        found: i64,
    },
    /// `module` is empty or not `[a-z0-9_-]{1,64}`.
    #[error("invalid module name {name:?}: {reason}")]
    InvalidModule {
        /// The refused name.
        name: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// `version` or `abi` is empty, too long or not printable ASCII.
    #[error("invalid `{key}` in signature envelope: {reason}")]
    InvalidText {
        /// `version` or `abi`.
        key: &'static str,
        /// What rule it breaks.
        reason: String,
    },
    /// `seq` or `size` is negative (TOML integers are signed).
    #[error("`{key}` in signature envelope is {value}; it must be between 0 and {MAX_TOML_INT}")]
    OutOfRange {
        /// `seq` or `size`.
        key: &'static str,
        /// The value found (as written, for the message).
        value: String,
    },
    /// `sha512` or `key_id` is not hex of the right length.
    #[error("`{key}` in signature envelope must be {expected_chars} hex characters: {reason}")]
    BadHex {
        /// `sha512` or `key_id`.
        key: &'static str,
        /// How many hex characters it must have.
        expected_chars: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `signature` is not base64 of 64 bytes.
    #[error("`signature` in signature envelope must be base64 of 64 bytes: {reason}")]
    BadSignatureEncoding {
        /// What is wrong with it.
        reason: String,
    },
}

impl Envelope {
    /// Parses and validates a `.sig` text.
    ///
    /// Refuses texts over [`MAX_ENVELOPE_BYTES`], unknown keys, missing
    /// keys, any `format` other than [`FORMAT`], module names that are not
    /// `[a-z0-9_-]{1,64}`, and hashes or signatures of the wrong length.
    pub fn parse(text: &str) -> Result<Envelope, EnvelopeError> {
        if text.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge { len: text.len() });
        }
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| EnvelopeError::Syntax {
                    message: e.to_string().trim_end().to_owned(),
                })?;
        if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(EnvelopeError::UnknownKey { key: key.clone() });
        }

        let format = get_int(&table, "format")?;
        if format != i64::from(FORMAT) {
            return Err(EnvelopeError::UnsupportedFormat { found: format });
        }
        let envelope = Envelope {
            format: FORMAT,
            module: get_str(&table, "module")?.to_owned(),
            version: get_str(&table, "version")?.to_owned(),
            seq: get_u64(&table, "seq")?,
            abi: get_str(&table, "abi")?.to_owned(),
            size: get_u64(&table, "size")?,
            sha512: decode_hex::<64>("sha512", get_str(&table, "sha512")?)?,
            key_id: get_str(&table, "key_id")?.to_owned(),
            signature: decode_signature(get_str(&table, "signature")?)?,
        };
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks the field rules [`Envelope::parse`] enforces, for an envelope
    /// built in code (the fields are public).
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.format != FORMAT {
            return Err(EnvelopeError::UnsupportedFormat {
                found: i64::from(self.format),
            });
        }
        validate_module_name(&self.module)?;
        validate_text("version", &self.version, MAX_VERSION_LEN)?;
        validate_text("abi", &self.abi, MAX_ABI_LEN)?;
        for (key, value) in [("seq", self.seq), ("size", self.size)] {
            if value > MAX_TOML_INT {
                return Err(EnvelopeError::OutOfRange {
                    key,
                    value: value.to_string(),
                });
            }
        }
        let id = &self.key_id;
        if id.len() != KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EnvelopeError::BadHex {
                key: "key_id",
                expected_chars: KEY_ID_LEN,
                reason: format!("found {id:?}"),
            });
        }
        Ok(())
    }

    /// The envelope as the TOML text `modhost sign` writes; `parse` reads
    /// it back to an equal envelope.
    pub fn to_toml(&self) -> String {
        format!(
            "format = {}\nmodule = {}\nversion = {}\nseq = {}\nabi = {}\nsize = {}\n\
             sha512 = \"{}\"\nkey_id = {}\nsignature = \"{}\"\n",
            self.format,
            toml_string(&self.module),
            toml_string(&self.version),
            self.seq,
            toml_string(&self.abi),
            self.size,
            hex::encode(self.sha512),
            toml_string(&self.key_id),
            BASE64.encode(self.signature),
        )
    }

    /// The bytes the ed25519 signature covers.
    ///
    /// Layout (every integer is little-endian; `len(x)` is a `u64`):
    ///
    /// ```text
    /// b"modhost/module-signature/v1\0"     28 bytes, the domain tag
    /// len(module)  = n   ‖ module  UTF-8   8 + n bytes
    /// len(version) = n   ‖ version UTF-8   8 + n bytes
    /// len(seq)     = 8   ‖ seq     u64 LE  8 + 8 bytes
    /// len(abi)     = n   ‖ abi     UTF-8   8 + n bytes
    /// len(size)    = 8   ‖ size    u64 LE  8 + 8 bytes
    /// len(sha512)  = 64  ‖ SHA-512 of file 8 + 64 bytes
    /// ```
    ///
    /// Length prefixes make the encoding injective: no two different field
    /// tuples produce the same bytes (`"ab","c"` vs `"a","bc"`). `format` is
    /// covered by the `v1` in the tag; `key_id` is deliberately not signed,
    /// since it is never trusted.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            DOMAIN_TAG.len() + 6 * 8 + self.module.len() + self.version.len() + self.abi.len() + 80,
        );
        out.extend_from_slice(DOMAIN_TAG);
        push_field(&mut out, self.module.as_bytes());
        push_field(&mut out, self.version.as_bytes());
        push_field(&mut out, &self.seq.to_le_bytes());
        push_field(&mut out, self.abi.as_bytes());
        push_field(&mut out, &self.size.to_le_bytes());
        push_field(&mut out, &self.sha512);
        out
    }
}

/// One line for humans: what was signed, by which key.
impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "module {} version {} seq {} ({} bytes, abi {}, key {})",
            self.module, self.version, self.seq, self.size, self.abi, self.key_id
        )
    }
}

/// Checks a module name against `[a-z0-9_-]{1,64}`. Module names become
/// file names (`verify_keys/<module>.pub`, the seq store), so this also
/// keeps `..` and `/` out of paths.
pub fn validate_module_name(name: &str) -> Result<(), EnvelopeError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_MODULE_NAME {
        "it is longer than 64 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        "it has characters other than a-z, 0-9, '_' and '-'"
    } else {
        return Ok(());
    };
    Err(EnvelopeError::InvalidModule {
        name: name.to_owned(),
        reason,
    })
}

/// `version` and `abi` end up in log lines and the admin API, so they are
/// kept to printable ASCII (no control or bidi characters).
fn validate_text(key: &'static str, value: &str, max: usize) -> Result<(), EnvelopeError> {
    let reason = if value.is_empty() {
        "it is empty".to_owned()
    } else if value.len() > max {
        format!("it is {} bytes, over the {max}-byte limit", value.len())
    } else if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        format!("{c:?} is not printable ASCII")
    } else {
        return Ok(());
    };
    Err(EnvelopeError::InvalidText { key, reason })
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A TOML basic string. Validated fields never need more than `\"` and
/// `\\`, but anything else is escaped too so the output is always TOML.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn get<'t>(table: &'t toml::Table, key: &'static str) -> Result<&'t toml::Value, EnvelopeError> {
    table.get(key).ok_or(EnvelopeError::MissingKey { key })
}

fn get_str<'t>(table: &'t toml::Table, key: &'static str) -> Result<&'t str, EnvelopeError> {
    get(table, key)?.as_str().ok_or(EnvelopeError::WrongType {
        key,
        expected: "a string",
    })
}

fn get_int(table: &toml::Table, key: &'static str) -> Result<i64, EnvelopeError> {
    get(table, key)?
        .as_integer()
        .ok_or(EnvelopeError::WrongType {
            key,
            expected: "an integer",
        })
}

fn get_u64(table: &toml::Table, key: &'static str) -> Result<u64, EnvelopeError> {
    let value = get_int(table, key)?;
    u64::try_from(value).map_err(|_| EnvelopeError::OutOfRange {
        key,
        value: value.to_string(),
    })
}

fn decode_hex<const N: usize>(key: &'static str, text: &str) -> Result<[u8; N], EnvelopeError> {
    let bad = |reason: String| EnvelopeError::BadHex {
        key,
        expected_chars: 2 * N,
        reason,
    };
    if text.len() != 2 * N {
        return Err(bad(format!("found {} characters", text.len())));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|e| bad(e.to_string()))?;
    Ok(out)
}

fn decode_signature(text: &str) -> Result<[u8; 64], EnvelopeError> {
    let bad = |reason: String| EnvelopeError::BadSignatureEncoding { reason };
    // 64 bytes are 88 base64 characters; refuse anything far off before
    // decoding so the error names the length rather than a decoder detail.
    if text.len() != 88 {
        return Err(bad(format!("found {} characters, expected 88", text.len())));
    }
    let bytes = BASE64.decode(text).map_err(|e| bad(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("decodes to {} bytes", b.len())))
}

#[cfg(test)]
mod tests;
