//! What a module may ask once its frame is verified: sse-platform's
//! requests, answered as sse-platform answered them (`<type>_response`
//! echoing `resolve_id`, with `success` and, on failure, `reason`), and
//! modhost's extensions that make a module first-class (`register`,
//! `reply`, `error`, `publish`, `call_module`).
//!
//! Everything a module does for someone else goes through the host's own
//! paths: calls through the broker (manifest, role, stamped caller),
//! publishes through `HostServices::publish` (rooms limit, the caller's
//! rooms when it acts for a call) under the module's publish budget.

use std::{sync::Arc, time::Instant};

use modhost_plugin_api::ErrorCode;
use serde_json::{Map, Value, json};

use super::{
    connection::{Conn, error},
    endpoint::{self, Link},
    envelope::Inbound,
    identity,
    table::StartRefused,
    templates,
};
use crate::{
    modules::{CallContext, CallFailure, CallSink, DEFAULT_PUBLISHES_PER_SECOND, HostServices},
    state::Services,
    util::budget::Take,
};

/// `{"type": "<request>_response", "resolve_id", ...fields}`.
fn response(frame: &Inbound, fields: Value) -> Value {
    let mut body = Map::new();
    body.insert("type".into(), format!("{}_response", frame.kind()).into());
    body.insert("resolve_id".into(), frame.resolve_id.clone().into());
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    Value::Object(body)
}

fn failed(frame: &Inbound, reason: &str, description: impl Into<String>) -> Value {
    response(
        frame,
        json!({"success": false, "reason": reason, "description": description.into()}),
    )
}

fn text<'a>(frame: &'a Inbound, key: &str) -> Option<&'a str> {
    frame.body.get(key).and_then(Value::as_str)
}

fn missing(frame: &Inbound, key: &str) -> Value {
    failed(
        frame,
        "message_format_error",
        format!("Message misses key '{key}'"),
    )
}

impl Conn {
    /// Answers a verified frame; `None` when nothing is due now (a reply to
    /// a call, a relayed message, a call whose answer comes later).
    pub(super) fn request(&mut self, frame: Inbound) -> Option<Value> {
        let Some(link) = self.link.clone() else {
            return Some(self.module_start(&frame));
        };
        let config = self.state.config.load();
        Some(match frame.kind() {
            "module_start" => response(
                &frame,
                json!({"success": false, "status": "already_running", "reason": "already_running",
                       "description": "this connection is already recognized"}),
            ),
            "get_running_modules" => response(
                &frame,
                json!({"success": true, "running_modules": self.running_modules()}),
            ),
            "message_module" => return self.message_module(&frame),
            "message_module_response" => {
                if let Some(to) = text(&frame, "to").and_then(|to| self.external.link(to)) {
                    to.send(&Value::Object(frame.body.clone()));
                }
                return None;
            }
            "get_user" => match text(&frame, "username") {
                None => missing(&frame, "username"),
                Some(name) => match identity::user(&config, name) {
                    Some(user) => response(&frame, json!({"success": true, "user": user})),
                    None => failed(&frame, "user_not_found", format!("no user named {name:?}")),
                },
            },
            "get_user_list" => response(
                &frame,
                json!({"success": true, "users": identity::user_list(&config)}),
            ),
            "check_permission" => match text(&frame, "username") {
                None => missing(&frame, "username"),
                Some(name) => match identity::user(&config, name) {
                    Some(user) => response(
                        &frame,
                        json!({"success": true, "username": name, "role": user["role"]}),
                    ),
                    None => failed(&frame, "user_not_found", format!("no user named {name:?}")),
                },
            },
            "get_template" => match text(&frame, "template_name") {
                None => missing(&frame, "template_name"),
                Some(name) => {
                    let ext = &config.external;
                    match templates::read(&ext.templates, name, ext.max_template_bytes) {
                        Ok(t) => response(&frame, json!({"success": true, "template": t})),
                        Err(e) => failed(&frame, e.reason(), e.to_string()),
                    }
                }
            },
            "post_template" => match (text(&frame, "template_name"), text(&frame, "template")) {
                (None, _) => missing(&frame, "template_name"),
                (_, None) => missing(&frame, "template"),
                (Some(name), Some(t)) => {
                    let ext = &config.external;
                    match templates::write(&ext.templates, name, t, ext.max_template_bytes) {
                        Ok(()) => response(&frame, json!({"success": true})),
                        Err(e) => failed(&frame, e.reason(), e.to_string()),
                    }
                }
            },
            "register" => self.register(&frame, &link),
            "reply" | "error" => return self.answer(&frame, &link),
            "publish" => self.publish(&frame, &link),
            "call_module" => return self.call_module(frame, &link),
            _ => error(
                "protocol_error",
                "invalid request type",
                Some(&frame.resolve_id),
            ),
        })
    }

    /// `module_start {module_name, port?}`: takes the name the frame was
    /// signed for, if nobody holds it.
    fn module_start(&mut self, frame: &Inbound) -> Value {
        let Some(name) = text(frame, "module_name") else {
            return missing(frame, "module_name");
        };
        if name != frame.origin {
            return failed(
                frame,
                "message_format_error",
                format!(
                    "module_name {name:?} is not the signing module {:?}: a module starts under its own name",
                    frame.origin
                ),
            );
        }
        let already = |why: String| {
            response(
                frame,
                json!({"success": false, "status": "already_running", "reason": "already_running",
                       "description": why}),
            )
        };
        if self.state.registry.get(name).is_some() {
            return already(format!(
                "an in-process module named {name} runs on this host"
            ));
        }
        let link = Arc::new(Link::new(
            self.external.next_link_id(),
            name,
            self.outbox.clone(),
            self.key.clone(),
            Arc::downgrade(&self.state),
        ));
        let port = frame.body.get("port").cloned().unwrap_or(Value::Null);
        match self.external.start(&link, port) {
            Err(e @ StartRefused::Connected(_)) => already(e.to_string()),
            Ok(()) => {
                let keys = self.keys_of(name);
                self.recognized(link, keys);
                tracing::info!(module = name, "external module recognized");
                response(frame, json!({"success": true, "status": "recognized"}))
            }
        }
    }

    /// `{name: {port, kind}}` of in-process and external modules.
    fn running_modules(&self) -> Value {
        let mut out = Map::new();
        for info in self.state.registry.list() {
            if info.state == "running" || info.state == "degraded" {
                out.insert(info.name, json!({"port": null, "kind": "in-process"}));
            }
        }
        for (name, port) in self.external.running() {
            out.insert(name, json!({"port": port, "kind": "external"}));
        }
        Value::Object(out)
    }

    /// `message_module {to, ...}`: the frame, stamped with its sender as
    /// `origin`, to module `to`'s connection; `module_offline` if it has
    /// none. The target's `message_module_response` comes back to the
    /// sender through the relay above.
    fn message_module(&self, frame: &Inbound) -> Option<Value> {
        let Some(to) = text(frame, "to") else {
            return Some(missing(frame, "to"));
        };
        let Some(target) = self.external.link(to) else {
            return Some(failed(
                frame,
                "module_offline",
                format!("no module named {to:?} is connected"),
            ));
        };
        let mut body = frame.body.clone();
        body.insert("origin".into(), frame.origin.clone().into());
        if target.send(&Value::Object(body)) {
            None
        } else {
            Some(failed(
                frame,
                "module_busy",
                format!("module {to} is not reading its messages; try again"),
            ))
        }
    }

    /// `register {manifest}`: the module's commands become callable.
    fn register(&self, frame: &Inbound, link: &Arc<Link>) -> Value {
        let Some(manifest) = frame.body.get("manifest") else {
            return missing(frame, "manifest");
        };
        match endpoint::parse_manifest(&link.module, manifest) {
            Err(why) => failed(frame, "message_format_error", why),
            Ok(manifest) => {
                let commands = manifest.commands.len();
                if self.external.register(link, manifest) {
                    tracing::info!(module = %link.module, commands, "external module registered");
                    response(frame, json!({"success": true, "commands": commands}))
                } else {
                    failed(
                        frame,
                        "protocol_error",
                        "this connection no longer holds the name",
                    )
                }
            }
        }
    }

    /// `reply {id, result, done?}` and `error {id, code?, message}`.
    fn answer(&self, frame: &Inbound, link: &Link) -> Option<Value> {
        let Some(id) = frame.body.get("id").and_then(Value::as_u64) else {
            return Some(missing(frame, "id"));
        };
        if frame.kind() == "reply" {
            let result = frame.body.get("result").unwrap_or(&Value::Null).to_string();
            let done = frame
                .body
                .get("done")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            link.answer(id, Ok(&result), done);
        } else {
            let code = text(frame, "code")
                .and_then(ErrorCode::parse)
                .unwrap_or(ErrorCode::ModuleError);
            let message = text(frame, "message").unwrap_or("the module reported an error");
            link.answer(id, Err(CallFailure::new(code, message)), true);
        }
        // Answers are not acknowledged: a late one (the call timed out)
        // is dropped, as for in-process modules.
        None
    }

    /// The call `call` names, when the module acts for it.
    fn on_behalf(frame: &Inbound, link: &Link) -> Result<Option<Arc<CallContext>>, String> {
        match frame.body.get("call") {
            None | Some(Value::Null) => Ok(None),
            Some(id) => id
                .as_u64()
                .and_then(|id| link.context(id))
                .map(Some)
                .ok_or_else(|| format!("call {id} is not one this module is handling")),
        }
    }

    /// `publish {rooms, data, call?}`.
    fn publish(&mut self, frame: &Inbound, link: &Link) -> Value {
        let (Some(rooms), Some(data)) = (frame.body.get("rooms"), frame.body.get("data")) else {
            return missing(
                frame,
                if frame.body.contains_key("rooms") {
                    "data"
                } else {
                    "rooms"
                },
            );
        };
        let on_behalf = match Self::on_behalf(frame, link) {
            Ok(c) => c,
            Err(why) => return failed(frame, "forbidden", why),
        };
        let limit = self
            .state
            .config
            .load()
            .modules
            .settings_for(&link.module)
            .publishes_per_second
            .unwrap_or(DEFAULT_PUBLISHES_PER_SECOND);
        if matches!(
            self.publishes.take(limit, Instant::now()),
            Take::FirstOver | Take::Over
        ) {
            return failed(
                frame,
                ErrorCode::RateLimited.as_str(),
                format!("publish budget spent: at most {limit} publishes per second per module"),
            );
        }
        let services = Services(Arc::downgrade(&self.state));
        match services.publish(
            &link.module,
            on_behalf.as_deref(),
            &rooms.to_string(),
            &data.to_string(),
        ) {
            Ok(delivered) => response(frame, json!({"success": true, "delivered": delivered})),
            Err(f) => failed(frame, f.code.as_str(), f.message),
        }
    }

    /// `call_module {module, command, params?, call?}`: a call through the
    /// broker as this module (for the user of `call`, if it names one); the
    /// answer comes later as `call_module_response`.
    fn call_module(&self, frame: Inbound, link: &Arc<Link>) -> Option<Value> {
        let (Some(module), Some(command)) = (text(&frame, "module"), text(&frame, "command"))
        else {
            let key = if text(&frame, "module").is_none() {
                "module"
            } else {
                "command"
            };
            return Some(missing(&frame, key));
        };
        let on_behalf = match Self::on_behalf(&frame, link) {
            Ok(c) => c,
            Err(why) => return Some(failed(&frame, "forbidden", why)),
        };
        let params = frame
            .body
            .get("params")
            .map_or_else(|| "{}".to_owned(), Value::to_string);
        let sink = Box::new(CallAnswer {
            link: link.clone(),
            resolve_id: frame.resolve_id.clone(),
        });
        Services(Arc::downgrade(&self.state)).call_from_module(
            &link.module,
            on_behalf.as_deref(),
            module,
            command,
            &params,
            sink,
        );
        None
    }
}

/// Sends the answer of a module's `call_module` back to it.
struct CallAnswer {
    link: Arc<Link>,
    resolve_id: String,
}

impl CallSink for CallAnswer {
    fn item(&mut self, _result: &str) {
        // Module-to-module calls return the final result only.
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let mut body = json!({"type": "call_module_response", "resolve_id": self.resolve_id});
        match outcome {
            Ok(result) => {
                body["success"] = true.into();
                body["result"] = serde_json::from_str(result).unwrap_or(Value::Null);
            }
            Err(f) => {
                body["success"] = false.into();
                body["reason"] = f.code.as_str().into();
                body["description"] = f.message.into();
            }
        }
        if !self.link.send(&body) {
            tracing::debug!(module = %self.link.module, "call_module answer dropped: the module's outbox is full or closed");
        }
    }
}
