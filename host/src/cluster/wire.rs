//! What hosts send one another for module calls, as JSON: a call request,
//! the answers that come back on the caller's inbox, and a host's
//! announcement of the modules it serves.
//!
//! The caller travels as the calling host stamped it, with the user's
//! rooms as that host checked them: the serving host trusts them because
//! only hosts holding the cluster's NATS credentials can publish here
//! (README "Cluster", DESIGN §10). Nothing here is read from a call's
//! params.

use std::{sync::Arc, time::Duration};

use modhost_plugin_api::{
    Caller, CallerKind, CommandSpec, ErrorCode, Manifest, abi_stable::std_types::RString,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    modules::{CallFailure, UserRights},
    rooms::Room,
};

/// A call on its way to the host that serves its module.
#[derive(Serialize)]
pub(super) struct RequestOut<'a> {
    pub module: &'a str,
    pub command: &'a str,
    pub params: &'a RawValue,
    pub caller: WireCaller,
    /// The rooms the user may reach (`None`: no user behind the call).
    pub rooms: Option<Vec<serde_json::Value>>,
}

/// A call as the serving host reads it.
#[derive(Deserialize)]
pub(super) struct RequestIn {
    pub module: String,
    pub command: String,
    pub params: Box<RawValue>,
    pub caller: WireCaller,
    pub rooms: Option<Vec<serde_json::Value>>,
}

impl RequestIn {
    /// The user's rights as the calling host checked them; a room that
    /// does not parse is refused as a whole (a host on another version).
    pub(super) fn user(&self) -> Result<Option<UserRights>, String> {
        let Some(rooms) = &self.rooms else {
            return Ok(None);
        };
        let rooms: Result<Vec<Room>, _> = rooms.iter().map(Room::parse).collect();
        let rooms = rooms.map_err(|e| format!("a room of the caller is not valid ({e})"))?;
        Ok(Some(UserRights {
            allowed_rooms: Arc::from(rooms),
        }))
    }
}

/// The stamped caller, field for field.
#[derive(Serialize, Deserialize)]
pub(super) struct WireCaller {
    kind: String,
    user: String,
    session: String,
    roles: Vec<String>,
    module: String,
}

impl From<&Caller> for WireCaller {
    fn from(c: &Caller) -> Self {
        let kind = match c.kind {
            CallerKind::User => "user",
            CallerKind::Module => "module",
            CallerKind::Operator => "operator",
        };
        Self {
            kind: kind.to_owned(),
            user: c.user.to_string(),
            session: c.session.to_string(),
            roles: c.roles.iter().map(RString::to_string).collect(),
            module: c.module.to_string(),
        }
    }
}

impl WireCaller {
    /// The caller back as the ABI type; `None` for a kind this host does
    /// not know.
    pub(super) fn caller(&self) -> Option<Caller> {
        let kind = match self.kind.as_str() {
            "user" => CallerKind::User,
            "module" => CallerKind::Module,
            "operator" => CallerKind::Operator,
            _ => return None,
        };
        Some(Caller {
            kind,
            user: self.user.as_str().into(),
            session: self.session.as_str().into(),
            roles: self.roles.iter().map(|r| r.as_str().into()).collect(),
            module: self.module.as_str().into(),
        })
    }
}

/// One answer to a call: a stream item (`k: "item"`), the reply
/// (`"ok"`), or the failure (`"err"`, with `code` and `message`).
///
/// A flat struct rather than a tagged enum: serde reads a tagged enum
/// through a buffer that cannot hold a [`RawValue`].
#[derive(Serialize, Deserialize)]
pub(super) struct Answer<R> {
    pub k: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<R>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Item,
    Ok,
    Err,
}

/// An answer as the serving host writes it.
pub(super) type AnswerOut<'a> = Answer<&'a RawValue>;
/// An answer as the calling host reads it.
pub(super) type AnswerIn = Answer<Box<RawValue>>;

impl<'a> AnswerOut<'a> {
    pub(super) fn item(r: &'a RawValue) -> Self {
        Self::result(Kind::Item, r)
    }

    pub(super) fn ok(r: &'a RawValue) -> Self {
        Self::result(Kind::Ok, r)
    }

    fn result(k: Kind, r: &'a RawValue) -> Self {
        Answer {
            k,
            r: Some(r),
            code: None,
            message: None,
        }
    }

    pub(super) fn failure(f: &CallFailure) -> Self {
        Answer {
            k: Kind::Err,
            r: None,
            code: Some(f.code.as_str().to_owned()),
            message: Some(f.message.clone()),
        }
    }
}

/// A code this host does not know reads as the module's own error.
pub(super) fn failure(code: &str, message: String) -> CallFailure {
    CallFailure::new(
        ErrorCode::parse(code).unwrap_or(ErrorCode::ModuleError),
        message,
    )
}

/// What a host says about itself every announcement period.
#[derive(Serialize)]
pub(super) struct AnnounceOut<'a> {
    pub host: &'a str,
    /// The host stops: forget it now.
    pub bye: bool,
    pub modules: Vec<WireManifest>,
}

/// An announcement as received: each manifest kept raw until its size is
/// checked.
#[derive(Deserialize)]
pub(super) struct AnnounceIn {
    pub host: String,
    #[serde(default)]
    pub bye: bool,
    #[serde(default)]
    pub modules: Vec<Box<RawValue>>,
}

/// A manifest on the wire.
#[derive(Serialize, Deserialize)]
pub(super) struct WireManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    commands: Vec<WireCommand>,
    /// The serving host's call timeout for the module.
    timeout_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct WireCommand {
    name: String,
    #[serde(default)]
    params: Vec<String>,
    needs_reply: bool,
    streams: bool,
    #[serde(default)]
    min_role: String,
    #[serde(default)]
    description: String,
}

impl From<&Manifest> for WireManifest {
    fn from(m: &Manifest) -> Self {
        Self {
            name: m.name.to_string(),
            version: m.version.to_string(),
            description: m.description.to_string(),
            commands: m
                .commands
                .iter()
                .map(|c| WireCommand {
                    name: c.name.to_string(),
                    params: c.params.iter().map(RString::to_string).collect(),
                    needs_reply: c.needs_reply,
                    streams: c.streams,
                    min_role: c.min_role.to_string(),
                    description: c.description.to_string(),
                })
                .collect(),
            timeout_ms: 0,
        }
    }
}

impl WireManifest {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// With the serving host's call timeout for the module.
    pub(super) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(super) fn manifest(&self) -> Manifest {
        let mut m = Manifest::new(&self.name, &self.version).description(&self.description);
        for c in &self.commands {
            let mut spec = CommandSpec::new(&c.name).description(&c.description);
            for p in &c.params {
                spec = spec.param(p);
            }
            spec.needs_reply = c.needs_reply;
            spec.streams = c.streams;
            spec.min_role = c.min_role.as_str().into();
            m = m.command(spec);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_and_a_caller_survive_the_trip() {
        let m = Manifest::new("echo", "1.2.3")
            .description("d")
            .command(CommandSpec::new("count").param("n").streams())
            .command(CommandSpec::new("fire").no_reply().min_role("admin"));
        let text = serde_json::to_string(&WireManifest::from(&m)).unwrap();
        let back: WireManifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back.manifest(), m);

        let caller = Caller {
            kind: CallerKind::Module,
            user: "alice".into(),
            session: "s-1".into(),
            roles: vec!["user".into()].into(),
            module: "relay".into(),
        };
        let text = serde_json::to_string(&WireCaller::from(&caller)).unwrap();
        let back: WireCaller = serde_json::from_str(&text).unwrap();
        assert_eq!(back.caller().unwrap(), caller);
    }

    #[test]
    fn answers_survive_the_trip() {
        let r: &RawValue = serde_json::from_str(r#"{"i": 1}"#).unwrap();
        for out in [AnswerOut::item(r), AnswerOut::ok(r)] {
            let text = serde_json::to_string(&out).unwrap();
            let back: AnswerIn = serde_json::from_str(&text).unwrap();
            assert_eq!(back.k, out.k);
            assert_eq!(back.r.unwrap().get(), r.get());
        }
        let f = CallFailure::new(ErrorCode::Forbidden, "no");
        let text = serde_json::to_string(&AnswerOut::failure(&f)).unwrap();
        let back: AnswerIn = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (back.k, back.code.as_deref()),
            (Kind::Err, Some("forbidden"))
        );
    }

    #[test]
    fn unknown_codes_read_as_module_errors() {
        assert_eq!(
            failure("module-timeout", "m".into()).code,
            ErrorCode::ModuleTimeout
        );
        assert_eq!(
            failure("from-the-future", "m".into()).code,
            ErrorCode::ModuleError
        );
    }
}
