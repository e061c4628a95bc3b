//! A 200 bootstrap reply's body → [`Principal`]: the user id and roles at
//! their configured paths (`[auth.bootstrap] user_id_path`, `roles_path`),
//! and a name of its own for a client the reply names nobody for. The
//! rules are in the table of `bootstrap.rs`'s module docs.
//!
//! Why an anonymous client gets a random name rather than a shared one:
//! everything per user — resume tokens (only their user may resume a
//! session), pushes to "all of a user's sessions", module state such as
//! notes and modules' per-user limits — would otherwise be shared between
//! strangers.

use serde_json::Value;

use super::{AuthError, Principal, Source, claims};
use crate::config::{JsonPath, PathBlocked};

/// What the name of a client the bootstrap reply names nobody for starts
/// with; 16 random hex digits follow, new for every connection. It makes
/// such users easy to spot in logs and the admin API. Nothing may be
/// granted or refused by it: static tokens can name any user, this prefix
/// included (JWT and named bootstrap users carry a prefix of their own).
pub const ANONYMOUS_PREFIX: &str = "anonymous-";

/// Random bytes in an anonymous name: 64 bits, so one can neither be
/// guessed nor collide with another connection's.
const ANONYMOUS_RANDOM_BYTES: usize = 8;

/// Where a reply holds the user id and the roles.
#[derive(Debug, Clone)]
pub(crate) struct ReplyPaths {
    /// `None`: `user.id` when `user` is an object, else `user` itself.
    pub(crate) user_id: Option<JsonPath>,
    /// Where the role names are.
    pub(crate) roles: JsonPath,
}

/// Parse a 200 reply's body.
pub(crate) fn principal_from_reply(
    body: &[u8],
    paths: &ReplyPaths,
) -> Result<Principal, AuthError> {
    let bad = AuthError::BootstrapBadReply;
    let reply: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(fields) = &reply else {
        return Err(bad("not a JSON object".into()));
    };
    let allowed_rooms = claims::rooms_from(fields.get("allowed_rooms"))
        .map_err(|e| bad(format!("allowed_rooms: {e}")))?;
    let (user, user_path) = paths.user_id(&reply).map_err(bad)?;
    let roles = roles_at(&reply, &paths.roles).map_err(bad)?;
    let (user, source) = match user {
        Some(user) => (user, Source::Bootstrap),
        None => {
            let name = anonymous_name()?;
            tracing::debug!(
                user = %name, path = user_path,
                "bootstrap reply names no user: the client is anonymous, under a name of its own"
            );
            (name, Source::Anonymous)
        }
    };
    Ok(Principal {
        user,
        roles,
        allowed_rooms,
        source,
    })
}

impl ReplyPaths {
    /// The user id in `reply` (`None`: none given) and the path it was
    /// looked for at, for messages.
    fn user_id<'p>(&'p self, reply: &Value) -> Result<(Option<String>, &'p str), String> {
        match &self.user_id {
            Some(path) => {
                let found = path
                    .lookup(reply)
                    .map_err(|b| blocked("user id", path, &b))?;
                Ok((user_id_value(found, path.as_str())?, path.as_str()))
            }
            // high-templar 2.x backends send the user object, others a
            // name or a number.
            None => match reply.get("user") {
                Some(Value::Object(user)) => {
                    Ok((user_id_value(user.get("id"), "user.id")?, "user.id"))
                }
                other => Ok((user_id_value(other, "user")?, "user")),
            },
        }
    }
}

/// A user id: a non-empty string, or an integer as text (Django's ids).
/// `None` for nothing there (missing, `null`, `""`).
fn user_id_value(value: Option<&Value>, path: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if !n.is_f64() => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "the user id at {path:?} is {}, not a string or an integer \
             (set [auth.bootstrap] user_id_path to where the reply has it)",
            claims::kind(other)
        )),
    }
}

/// Role names at `path`: an array of strings; nothing there means none.
fn roles_at(reply: &Value, path: &JsonPath) -> Result<Vec<String>, String> {
    let not_strings = |what: String| {
        format!(
            "the roles at {:?} are {what}, not an array of strings \
             (set [auth.bootstrap] roles_path to where the reply has them)",
            path.as_str()
        )
    };
    match path.lookup(reply).map_err(|b| blocked("roles", path, &b))? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    not_strings(format!(
                        "an array whose element {i} is {}",
                        claims::kind(item)
                    ))
                })
            })
            .collect(),
        Some(other) => Err(not_strings(claims::kind(other).to_owned())),
    }
}

/// `path` leads through something that is not an object.
fn blocked(what: &str, path: &JsonPath, b: &PathBlocked<'_>) -> String {
    format!(
        "the {what} path {:?} does not fit the reply: {} is {}, not an object",
        path.as_str(),
        b.at,
        claims::kind(b.found)
    )
}

/// `anonymous-` and 16 random hex digits.
fn anonymous_name() -> Result<String, AuthError> {
    let mut bytes = [0u8; ANONYMOUS_RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::NoRandomness(e.to_string()))?;
    Ok(format!("{ANONYMOUS_PREFIX}{}", hex::encode(bytes)))
}
