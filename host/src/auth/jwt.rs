//! `[auth.jwt]`: tokens signed by an identity provider (Keycloak and the like).
//!
//! Keys are an HS256 `secret` and/or the public keys of a JWKS file
//! (`{"keys": [...]}`, the format of Keycloak's
//! `/realms/<realm>/protocol/openid-connect/certs`). The file is read once,
//! when the [`Authenticator`](super::Authenticator) is built.
//!
//! # Which key verifies a token
//! - The token names a `kid`: the JWKS key with that `kid`. A `kid` no JWKS
//!   key has falls back to the HS256 secret (some issuers put a `kid` on
//!   HS256 tokens too), and only when the token says HS256.
//! - No `kid`: the one key whose algorithm is the token's `alg`; none is
//!   an unknown key, several an ambiguous one (refused: guessing would
//!   make the result depend on key order).
//!
//! # Algorithm confusion
//! Each key carries the one algorithm it is for, fixed at load time from the
//! key itself (`kty`, `crv`, its `alg` field): a token's `alg` only picks
//! among keys and must then equal the key's. So an HS256 token "signed" with
//! an RSA public key as the HMAC secret is refused (`alg HS256 not accepted
//! for this key`), and `alg: none` is refused before any key is looked at.
//!
//! Key parsing, key choice and the claims checks are shared with
//! `[auth.oidc]` (`oidc.rs`), which gets its keys from its issuer instead.
//!
//! # Claims
//! `exp` is required; `nbf` is checked when present; `iss` and `aud` are
//! required and checked when `issuer`/`audience` are configured (and `aud`
//! is ignored when no audience is configured). All with `leeway_secs`.

use std::{
    fmt,
    path::Path,
    str::FromStr,
    time::{Duration, SystemTime},
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use super::{AuthSetupError, JwtError, Principal, Source, claims};
use crate::config::JwtConfig;

/// Largest JWKS file read. Keycloak's certs for a realm with a few rotated
/// keys is a few KiB.
const MAX_JWKS_FILE_BYTES: u64 = 1024 * 1024;

/// Smallest RSA modulus accepted from the JWKS (2048 bits, NIST's floor).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// base64url, padding optional: JWTs never pad, a few JWKS writers do.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether `token` has the shape of a JWS compact JWT: three dot-separated
/// base64url parts, the first two non-empty. The signature may be empty, so
/// that an `alg: none` token is recognised as a JWT (and refused) rather
/// than passed on to the bootstrap URL.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

/// Verifies JWTs against the configured keys and turns their claims into a
/// [`Principal`].
pub(crate) struct JwtVerifier {
    keys: Vec<VerifyKey>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway_secs: u64,
    user_claim: String,
    roles_claim: String,
    rooms_claim: String,
}

/// One key and the single algorithm it verifies (`[auth.oidc]` keeps its
/// issuer's keys as these too).
pub(super) struct VerifyKey {
    /// The JWKS `kid`; `None` for the HS256 secret and for JWKS keys without one.
    kid: Option<String>,
    /// `true` for `[auth.jwt] secret`.
    is_secret: bool,
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material (the HS256 secret in particular).
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| match (&k.kid, k.is_secret) {
                (_, true) => format!("secret/{:?}", k.alg),
                (Some(kid), _) => format!("{kid}/{:?}", k.alg),
                (None, _) => format!("(no kid)/{:?}", k.alg),
            })
            .collect();
        f.debug_struct("JwtVerifier")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Load the secret and the JWKS file.
    pub(crate) fn new(cfg: &JwtConfig) -> Result<JwtVerifier, AuthSetupError> {
        let mut keys = Vec::new();
        if let Some(secret) = &cfg.secret {
            if secret.is_empty() {
                return Err(AuthSetupError::EmptyJwtSecret);
            }
            keys.push(VerifyKey {
                kid: None,
                is_secret: true,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &cfg.jwks_file {
            keys.extend(load_jwks(path)?);
        }
        if keys.is_empty() {
            return Err(AuthSetupError::JwtNoKey);
        }
        Ok(JwtVerifier {
            keys,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway_secs: cfg.leeway.as_secs(),
            user_claim: cfg.user_claim.clone(),
            roles_claim: cfg.roles_claim.clone(),
            rooms_claim: cfg.rooms_claim.clone(),
        })
    }

    /// Verify `token` and read the principal from its claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let (alg, kid) = peek_header(token)?;
        let key = select_key(&self.keys, kid.as_deref(), alg)?;

        let claims = decode_claims(
            token,
            key,
            &ClaimChecks {
                issuer: self.issuer.as_deref(),
                audience: &self.audience,
                leeway_secs: self.leeway_secs,
            },
        )?;

        let user = claims::user_at(&claims, &self.user_claim)
            .ok_or_else(|| JwtError::MissingUserClaim(self.user_claim.clone()))?;
        let roles = claims::roles_at(&claims, &self.roles_claim);
        let allowed_rooms = claims::rooms_from(claims::lookup_path(&claims, &self.rooms_claim))
            .map_err(|_| JwtError::BadRoomsClaim(self.rooms_claim.clone()))?;
        Ok(Principal {
            user,
            roles,
            allowed_rooms,
            source: Source::Jwt {
                expires: expiry(&claims, self.leeway_secs),
            },
        })
    }
}

/// Pick the key of `keys` for a token with `kid` and `alg` (see the module
/// docs); shared with `[auth.oidc]`, whose keys come from its issuer.
pub(super) fn select_key<'k>(
    keys: &'k [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'k VerifyKey, JwtError> {
    let alg_name = || format!("{alg:?}");
    if let Some(kid) = kid {
        let mut by_kid = keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        if by_kid.peek().is_some() {
            return by_kid
                .find(|k| k.alg == alg)
                .ok_or_else(|| JwtError::AlgorithmNotAllowed { alg: alg_name() });
        }
        return keys
            .iter()
            .find(|k| k.is_secret && k.alg == alg)
            .ok_or_else(|| JwtError::UnknownKid {
                kid: Some(shown(kid)),
                alg: alg_name(),
            });
    }
    let mut matching = keys.iter().filter(|k| k.alg == alg);
    match (matching.next(), matching.count()) {
        (Some(key), 0) => Ok(key),
        (Some(_), more) => Err(JwtError::AmbiguousKey {
            alg: alg_name(),
            count: more + 1,
        }),
        (None, _) => Err(JwtError::UnknownKid {
            kid: None,
            alg: alg_name(),
        }),
    }
}

/// The registered claims a token must satisfy besides its signature.
pub(super) struct ClaimChecks<'a> {
    /// Required `iss`, when set.
    pub(super) issuer: Option<&'a str>,
    /// Accepted `aud` values; empty: `aud` is not checked.
    pub(super) audience: &'a [String],
    /// Clock skew tolerated for `exp` and `nbf`.
    pub(super) leeway_secs: u64,
}

/// Check `token`'s signature with `key` and its registered claims (`exp`
/// required, `nbf` when present, `iss`/`aud` as `checks` says), and return
/// its claims.
pub(super) fn decode_claims(
    token: &str,
    key: &VerifyKey,
    checks: &ClaimChecks<'_>,
) -> Result<Value, JwtError> {
    // The accepted algorithm comes from the key, never from the token.
    let mut validation = Validation::new(key.alg);
    validation.leeway = checks.leeway_secs;
    validation.validate_nbf = true;
    validation.validate_exp = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = checks.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    if checks.audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(checks.audience);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    jsonwebtoken::decode::<Value>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| map_error(e.into_kind()))
}

/// Read `alg` and `kid` from the token's header, refusing `alg: none`
/// (in any letter case) explicitly so the log says so.
pub(super) fn peek_header(token: &str) -> Result<(Algorithm, Option<String>), JwtError> {
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = B64URL
        .decode(encoded)
        .map_err(|_| JwtError::Malformed("header is not base64url".into()))?;
    let header: Value = serde_json::from_slice(&bytes)
        .map_err(|_| JwtError::Malformed("header is not JSON".into()))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("header has no alg".into()))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgNone);
    }
    let alg = Algorithm::from_str(alg)
        .map_err(|_| JwtError::Malformed(format!("unsupported alg {:?}", shown(alg))))?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtError::Malformed("kid is not a string".into())),
    };
    Ok((alg, kid))
}

/// The `iss` a token's payload claims, read without checking anything: it
/// only chooses which verifier looks at the token, and that verifier then
/// checks the signature and `iss` itself.
pub(super) fn peek_issuer(token: &str) -> Option<String> {
    let encoded = token.split('.').nth(1)?;
    let bytes = B64URL.decode(encoded).ok()?;
    let payload: Value = serde_json::from_slice(&bytes).ok()?;
    payload.get("iss")?.as_str().map(str::to_owned)
}

/// Longest piece of a token's header that goes into a log line.
const SHOWN_CHARS: usize = 64;

/// `text` as logged: at most [`SHOWN_CHARS`] characters, and an ellipsis
/// when cut. A header is the sender's to fill, and a `kid` as long as the
/// token limit would otherwise be copied into every refusal's log line.
fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn map_error(kind: ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            JwtError::MissingClaim(claim)
        }
        ErrorKind::InvalidAlgorithm => JwtError::AlgorithmNotAllowed {
            alg: "(from header)".into(),
        },
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => {
            JwtError::BadSignature
        }
        other => JwtError::Malformed(format!("{other:?}")),
    }
}

/// `{"keys": [...]}`; each key is read on its own so one key in a format we
/// don't know (an encryption key, a new `kty`) doesn't spoil the others.
#[derive(Deserialize)]
struct JwksFile {
    keys: Vec<Value>,
}

/// The JWK members we read; everything else is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
}

/// Read the JWKS file; keys that cannot verify signatures are skipped with
/// a warning, and a file left with none is an error.
fn load_jwks(path: &Path) -> Result<Vec<VerifyKey>, AuthSetupError> {
    use std::io::Read as _;

    let read_err = |source| AuthSetupError::JwksRead {
        path: path.to_owned(),
        source,
    };
    let parse_err = |reason: String| AuthSetupError::JwksParse {
        path: path.to_owned(),
        reason,
    };

    let file = crate::util::fs::open_regular(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_JWKS_FILE_BYTES {
        return Err(parse_err(format!(
            "larger than {MAX_JWKS_FILE_BYTES} bytes"
        )));
    }
    let (keys, skipped) = parse_jwks(&bytes).map_err(parse_err)?;
    for reason in &skipped {
        tracing::warn!(path = %path.display(), "jwks_file: skipping {reason}");
    }
    if keys.is_empty() {
        return Err(AuthSetupError::JwksNoUsableKey {
            path: path.to_owned(),
            skipped: if skipped.is_empty() {
                "the file lists no keys".into()
            } else {
                skipped.join("; ")
            },
        });
    }
    Ok(keys)
}

/// A JWKS document's keys that can verify signatures, and why each other
/// key was skipped (`key "kid": reason`). `Err` when the document is not
/// `{"keys": [...]}` JSON. Shared by `jwks_file` and `[auth.oidc]`.
pub(super) fn parse_jwks(bytes: &[u8]) -> Result<(Vec<VerifyKey>, Vec<String>), String> {
    let jwks: JwksFile = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in jwks.keys.into_iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
        let label = match &kid {
            Some(kid) => format!("key {:?}", shown(kid)),
            None => format!("key #{i}"),
        };
        match serde_json::from_value::<RawJwk>(raw)
            .map_err(|e| e.to_string())
            .and_then(verify_key)
        {
            Ok(key) => keys.push(key),
            Err(reason) => skipped.push(format!("{label}: {reason}")),
        }
    }
    Ok((keys, skipped))
}

/// One JWK → a key and its algorithm, or why it cannot verify signatures.
fn verify_key(jwk: RawJwk) -> Result<VerifyKey, String> {
    if let Some(use_) = &jwk.use_
        && use_ != "sig"
    {
        return Err(format!("use is {use_:?}, not \"sig\""));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    if jwk.d.is_some() {
        tracing::warn!(
            kid = ?jwk.kid,
            "a JWKS key holds private key material (\"d\"); only the public part is needed"
        );
    }
    let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let v = v.as_deref().ok_or_else(|| format!("missing {name:?}"))?;
        B64URL
            .decode(v)
            .map_err(|_| format!("{name:?} is not base64url"))
    };
    // When the JWK states its `alg`, it must be one this key type can do.
    let stated = |allowed: &[Algorithm], default: Algorithm| -> Result<Algorithm, String> {
        match &jwk.alg {
            None => Ok(default),
            Some(name) => Algorithm::from_str(name)
                .ok()
                .filter(|a| allowed.contains(a))
                .ok_or_else(|| format!("alg {name:?} is not a signature algorithm for this key")),
        }
    };

    let (alg, key) = match jwk.kty.as_str() {
        "RSA" => {
            use Algorithm::*;
            let alg = stated(&[RS256, RS384, RS512, PS256, PS384, PS512], RS256)?;
            let n = field(&jwk.n, "n")?;
            let e = field(&jwk.e, "e")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!(
                    "RSA modulus of {} bits is below 2048",
                    significant * 8
                ));
            }
            if e.iter().all(|b| *b == 0) {
                return Err("RSA exponent is zero".into());
            }
            (alg, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (default, len) = match jwk.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                other => return Err(format!("curve {other:?} is not supported")),
            };
            let alg = stated(&[default], default)?;
            let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length for the curve".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04); // uncompressed SEC1 point
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (alg, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(format!("curve {:?} is not supported", jwk.crv));
            }
            // RFC 9864 names the algorithm "Ed25519"; older JWKS say "EdDSA".
            if let Some(name) = &jwk.alg
                && name != "EdDSA"
                && name != "Ed25519"
            {
                return Err(format!("alg {name:?} is not EdDSA"));
            }
            let x: [u8; 32] = field(&jwk.x, "x")?
                .try_into()
                .map_err(|_| "Ed25519 key is not 32 bytes".to_string())?;
            ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| "Ed25519 key is not a valid curve point".to_string())?;
            (Algorithm::EdDSA, DecodingKey::from_ed_der(&x))
        }
        "oct" => {
            return Err("symmetric keys are not read from jwks_file; use [auth.jwt] secret".into());
        }
        other => return Err(format!("kty {other:?} is not supported")),
    };
    Ok(VerifyKey {
        kid: jwk.kid,
        is_secret: false,
        alg,
        key,
    })
}

/// When a session on a token with these (already validated) claims must
/// end: `exp` plus the leeway it was accepted with. An `exp` too far out
/// to represent never ends the session early.
pub(super) fn expiry(claims: &Value, leeway_secs: u64) -> SystemTime {
    let far = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    claims
        .get("exp")
        .and_then(Value::as_f64)
        .and_then(|exp| Duration::try_from_secs_f64(exp).ok())
        .and_then(|exp| exp.checked_add(Duration::from_secs(leeway_secs)))
        .and_then(|at| SystemTime::UNIX_EPOCH.checked_add(at))
        .map_or(far, |at| at.min(far))
}
