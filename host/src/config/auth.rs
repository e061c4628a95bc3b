//! `[auth]` validation: static tokens, `[auth.jwt]`, and the bootstrap URL
//! and reply paths, from their raw structs (`raw.rs`) into [`AuthConfig`].
//!
//! These tables are lists of clients and secrets rather than settings with
//! a default each, so they are checked by hand here instead of being
//! declared in `settings.rs`; their keys are still declared once, by the
//! raw structs.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::{
    codec::{OneOrMany, bounded, resolve},
    declare::keyed,
    error::{KeyPath, Problem},
    json_path::{JsonPath, JsonPathError},
    model::{AccountsConfig, AuthConfig, BootstrapConfig, JwtConfig, RoleRooms, StaticToken},
    value::{describe, to_json, token_text},
};

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawAuth {
        pub(super) tokens: Vec<RawToken>,
        pub(super) jwt: Option<RawJwt>,
        pub(super) bootstrap: Option<RawBootstrap>,
        /// Shorthand for `[auth.bootstrap] url = ...`.
        pub(super) bootstrap_url: Option<String>,
        pub(super) oidc: Option<super::oidc::RawOidc>,
        pub(super) roles: Vec<RawRole>,
        pub(super) accounts: Option<RawAccounts>,
    }
}

keyed! {
    #[derive(Debug, Deserialize)]
    pub(super) struct RawRole {
        pub(super) name: String,
        #[serde(default)]
        pub(super) allowed_rooms: Vec<toml::Value>,
    }
}

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawAccounts {
        pub(super) enabled: Option<bool>,
        pub(super) access_token_secs: Option<u64>,
        pub(super) refresh_token_secs: Option<u64>,
    }
}

keyed! {
    #[derive(Debug, Deserialize)]
    pub(super) struct RawToken {
        pub(super) token: String,
        pub(super) user: String,
        pub(super) roles: Option<Vec<String>>,
        #[serde(default)]
        pub(super) allowed_rooms: Vec<toml::Value>,
    }
}

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawJwt {
        pub(super) secret: Option<String>,
        pub(super) jwks_file: Option<String>,
        pub(super) issuer: Option<String>,
        pub(super) audience: OneOrMany,
        pub(super) user_claim: Option<String>,
        pub(super) roles_claim: Option<String>,
        pub(super) rooms_claim: Option<String>,
        pub(super) leeway_secs: Option<u64>,
    }
}

keyed! {
    #[derive(Debug, Deserialize)]
    pub(super) struct RawBootstrap {
        pub(super) url: String,
        pub(super) timeout_ms: Option<u64>,
        pub(super) user_id_path: Option<String>,
        pub(super) roles_path: Option<String>,
    }
}

const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;
const DEFAULT_BOOTSTRAP_TIMEOUT_MS: u64 = 5000;
/// Where a bootstrap reply's roles are unless `roles_path` says otherwise.
const DEFAULT_BOOTSTRAP_ROLES_PATH: &str = "roles";
/// Roles of a `[[auth.tokens]]` entry that lists none.
const DEFAULT_ROLES: &[&str] = &["user"];

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn millis(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(super) fn validate_auth(raw: RawAuth, base: &Path) -> Result<AuthConfig, Problem> {
    let table = KeyPath::default().key("auth");
    let tokens = validate_tokens(raw.tokens, &table)?;
    let jwt = raw
        .jwt
        .map(|j| validate_jwt(j, &table.key("jwt"), base))
        .transpose()?;

    let bootstrap = match (raw.bootstrap, raw.bootstrap_url) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid(
                &table.key("bootstrap_url"),
                "auth.bootstrap_url and [auth.bootstrap] are both set",
                "bootstrap_url is shorthand for [auth.bootstrap] url; keep one of them",
            ));
        }
        (Some(b), None) => {
            let path = table.key("bootstrap");
            let url = bootstrap_url(&path.key("url"), &b.url)?;
            let timeout = bounded(
                &path.key("timeout_ms"),
                b.timeout_ms.unwrap_or(DEFAULT_BOOTSTRAP_TIMEOUT_MS),
                1,
                300_000,
                "how long to wait for the bootstrap URL, in milliseconds, at most 5 minutes (default 5000)",
            )?;
            let user_id_path = b
                .user_id_path
                .map(|p| reply_path(&path.key("user_id_path"), &p, "user.id"))
                .transpose()?;
            let roles_path = reply_path(
                &path.key("roles_path"),
                b.roles_path
                    .as_deref()
                    .unwrap_or(DEFAULT_BOOTSTRAP_ROLES_PATH),
                "user.roles",
            )?;
            Some(BootstrapConfig {
                url,
                timeout: millis(timeout),
                user_id_path,
                roles_path,
            })
        }
        (None, Some(url)) => Some(BootstrapConfig {
            url: bootstrap_url(&table.key("bootstrap_url"), &url)?,
            timeout: millis(DEFAULT_BOOTSTRAP_TIMEOUT_MS),
            user_id_path: None,
            roles_path: default_roles_path(),
        }),
        (None, None) => None,
    };
    let roles = validate_roles(raw.roles, &table)?;
    let accounts = validate_accounts(raw.accounts.unwrap_or_default(), &table.key("accounts"))?;
    let oidc = raw
        .oidc
        .map(|o| super::oidc::validate_oidc(o, &table.key("oidc"), base))
        .transpose()?;
    Ok(AuthConfig {
        tokens,
        jwt,
        bootstrap,
        roles,
        accounts,
        oidc,
    })
}

/// What `{user}` in a `[[auth.roles]]` room value stands for.
pub const USER_PLACEHOLDER: &str = "{user}";

/// `[[auth.roles]]`: a name each, rooms as for static tokens, and
/// `{user}` only as a whole value (it is substituted, never spliced: a
/// name put into the middle of a value could make it match other rooms).
fn validate_roles(raw: Vec<RawRole>, table: &KeyPath) -> Result<Vec<RoleRooms>, Problem> {
    let mut roles: Vec<RoleRooms> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let entry = table.key("roles").index(i);
        let name = token_text(&entry.key("name"), &r.name, "a role name such as \"user\"")?;
        if roles.iter().any(|other| other.name == name) {
            return Err(Problem::invalid(
                &entry.key("name"),
                format!("auth.roles[{i}].name {name:?} is listed twice"),
                "give each role one [[auth.roles]] entry with all its rooms",
            ));
        }
        let mut allowed_rooms = Vec::with_capacity(r.allowed_rooms.len());
        for (j, room) in r.allowed_rooms.iter().enumerate() {
            let path = entry.key("allowed_rooms").index(j);
            let pattern = room_pattern(&path, room)?;
            if let Some((key, _)) = pattern.as_object().into_iter().flatten().find(|(_, v)| {
                v.as_str()
                    .is_some_and(|s| s.contains(USER_PLACEHOLDER) && s != USER_PLACEHOLDER)
            }) {
                return Err(Problem::invalid(
                    &path.key(key),
                    format!(
                        "{} uses {USER_PLACEHOLDER} inside a longer value",
                        path.key(key)
                    ),
                    format!(
                        "{USER_PLACEHOLDER} must be the whole value: {key} = \"{USER_PLACEHOLDER}\""
                    ),
                ));
            }
            allowed_rooms.push(pattern);
        }
        roles.push(RoleRooms {
            name,
            allowed_rooms,
        });
    }
    Ok(roles)
}

/// Access tokens live 10 minutes unless `access_token_secs` says otherwise.
const DEFAULT_ACCESS_TOKEN_SECS: u64 = 600;
/// Refresh tokens live 14 days unless `refresh_token_secs` says otherwise.
const DEFAULT_REFRESH_TOKEN_SECS: u64 = 14 * 24 * 3600;

fn validate_accounts(raw: RawAccounts, path: &KeyPath) -> Result<AccountsConfig, Problem> {
    let access = bounded(
        &path.key("access_token_secs"),
        raw.access_token_secs.unwrap_or(DEFAULT_ACCESS_TOKEN_SECS),
        1,
        86_400,
        "how long an access token works, in seconds, at most 1 day (default 600)",
    )?;
    let refresh = bounded(
        &path.key("refresh_token_secs"),
        raw.refresh_token_secs.unwrap_or(DEFAULT_REFRESH_TOKEN_SECS),
        access,
        365 * 86_400,
        "how long a refresh token works, in seconds, at least access_token_secs and at most a year (default 1209600, 14 days)",
    )?;
    Ok(AccountsConfig {
        enabled: raw.enabled,
        access_token_ttl: secs(access),
        refresh_token_ttl: secs(refresh),
    })
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            enabled: None,
            access_token_ttl: secs(DEFAULT_ACCESS_TOKEN_SECS),
            refresh_token_ttl: secs(DEFAULT_REFRESH_TOKEN_SECS),
        }
    }
}

/// `[[auth.tokens]]`: each entry's secret unique, its names non-empty.
fn validate_tokens(raw: Vec<RawToken>, table: &KeyPath) -> Result<Vec<StaticToken>, Problem> {
    let mut tokens: Vec<StaticToken> = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let entry = table.key("tokens").index(i);
        let token = token_text(
            &entry.key("token"),
            &t.token,
            "the secret this client presents",
        )?;
        if let Some(first) = tokens.iter().position(|other| other.token == token) {
            return Err(Problem::invalid(
                &entry.key("token"),
                format!(
                    "auth.tokens[{i}].token is the same secret as auth.tokens[{first}].token (user {:?})",
                    tokens[first].user
                ),
                "every static token must be unique: a token decides who the client is",
            ));
        }
        let user = token_text(
            &entry.key("user"),
            &t.user,
            "the user id this token stands for",
        )?;
        let roles = match t.roles {
            Some(roles) => roles
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    token_text(
                        &entry.key("roles").index(j),
                        r,
                        "a role name such as \"user\" or \"admin\"",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_ROLES.iter().map(|r| (*r).to_owned()).collect(),
        };
        let allowed_rooms = t
            .allowed_rooms
            .iter()
            .enumerate()
            .map(|(j, room)| room_pattern(&entry.key("allowed_rooms").index(j), room))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.push(StaticToken {
            token,
            user,
            roles,
            allowed_rooms,
        });
    }
    Ok(tokens)
}

fn bootstrap_url(path: &KeyPath, url: &str) -> Result<String, Problem> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && url.trim() == url => {
            Ok(url.to_owned())
        }
        _ => Err(Problem::invalid(
            path,
            format!("{path} = {url:?} is not an http(s) URL"),
            "write a full URL: \"http://127.0.0.1:8000/api/bootstrap/\"",
        )),
    }
}

/// A dotted path into the bootstrap reply; `example` is a path of the same
/// kind, for the hint.
fn reply_path(path: &KeyPath, text: &str, example: &str) -> Result<JsonPath, Problem> {
    JsonPath::parse(text).map_err(|e| {
        // The text is quoted back only when it is short enough to read.
        let message = match e {
            JsonPathError::TooLong { .. } => format!("{path} is not a usable path: {e}"),
            _ => format!("{path} = {text:?} is not a usable path: {e}"),
        };
        Problem::invalid(
            path,
            message,
            format!(
                "name the reply's keys from its top level down, separated by dots: {} = \"{example}\"",
                path.last_key().unwrap_or_default()
            ),
        )
    })
}

fn default_roles_path() -> JsonPath {
    JsonPath::parse(DEFAULT_BOOTSTRAP_ROLES_PATH).expect("the default roles path is a valid path")
}

/// One `allowed_rooms` entry: an object whose values are strings, numbers or
/// booleans (`"*"` is the wildcard), as JSON.
pub(super) fn room_pattern(
    path: &KeyPath,
    room: &toml::Value,
) -> Result<serde_json::Value, Problem> {
    let example = "write a room as an inline table of plain values: { target = \"message\", customer = \"*\" }";
    let toml::Value::Table(table) = room else {
        return Err(Problem::wrong_type(
            path,
            format!("{path} is {}, not a room", describe(room)),
            example,
        ));
    };
    let mut object = serde_json::Map::new();
    for (key, value) in table {
        let vpath = path.key(key);
        let json = match value {
            toml::Value::String(_)
            | toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Datetime(_) => to_json(value, &vpath)?,
            other => {
                return Err(Problem::wrong_type(
                    &vpath,
                    format!(
                        "{vpath} is {}; room values must be strings, numbers or booleans",
                        describe(other)
                    ),
                    example,
                ));
            }
        };
        object.insert(key.clone(), json);
    }
    Ok(serde_json::Value::Object(object))
}

fn validate_jwt(raw: RawJwt, path: &KeyPath, base: &Path) -> Result<JwtConfig, Problem> {
    let secret = raw
        .secret
        .as_deref()
        .map(|s| token_text(&path.key("secret"), s, "the HS256 shared secret"))
        .transpose()?;
    let jwks_file = raw
        .jwks_file
        .as_deref()
        .map(|f| resolve(base, &path.key("jwks_file"), f))
        .transpose()?;
    if secret.is_none() && jwks_file.is_none() {
        return Err(Problem::invalid(
            path,
            "[auth.jwt] has neither secret nor jwks_file, so no token could ever be verified",
            "add secret = \"...\" (HS256) and/or jwks_file = \"keys.json\" (RS256/ES256/EdDSA public keys), or remove [auth.jwt]",
        ));
    }
    let issuer = raw
        .issuer
        .as_deref()
        .map(|s| token_text(&path.key("issuer"), s, "the expected `iss`"))
        .transpose()?;
    let audience = raw
        .audience
        .into_vec()
        .iter()
        .map(|a| token_text(&path.key("audience"), a, "an accepted `aud` value"))
        .collect::<Result<Vec<_>, _>>()?;
    let claim = |key: &str, value: Option<String>, default: &str| -> Result<String, Problem> {
        match value {
            Some(v) => token_text(&path.key(key), &v, "a claim name (dotted paths allowed)"),
            None => Ok(default.to_owned()),
        }
    };
    let user_claim = claim("user_claim", raw.user_claim, "sub")?;
    let roles_claim = claim("roles_claim", raw.roles_claim, "roles")?;
    let rooms_claim = claim("rooms_claim", raw.rooms_claim, "allowed_rooms")?;
    let leeway = bounded(
        &path.key("leeway_secs"),
        raw.leeway_secs.unwrap_or(DEFAULT_JWT_LEEWAY_SECS),
        0,
        3600,
        "clock skew tolerated for exp/nbf, in seconds, at most 1 hour (default 30)",
    )?;
    Ok(JwtConfig {
        secret,
        jwks_file,
        issuer,
        audience,
        user_claim,
        roles_claim,
        rooms_claim,
        leeway: secs(leeway),
    })
}
