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
mod tests {
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
}
