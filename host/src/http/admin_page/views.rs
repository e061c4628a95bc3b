//! The views' contents (the `<main>` of each page, also what the script
//! fetches every 2 s with `?fragment=1`): modules, connections, rooms,
//! jobs, config status. Read from live state on each request, as the
//! admin API reads it.

use std::{fmt::Write as _, sync::Arc};

use serde_json::Value;

use super::html::{action, esc, time};
use crate::{
    external::External,
    http::{ConfigStatus, admin},
    sessions::session_id,
    state::AppState,
    util::sync::lock,
};

/// What a view needs besides the state.
#[derive(Clone)]
pub(super) struct Sources {
    pub(super) external: Option<Arc<External>>,
    pub(super) config: Option<ConfigStatus>,
}

/// The contents of `view`, or `None` for an unknown view.
pub(super) async fn render(
    view: &str,
    state: &AppState,
    sources: Sources,
    csrf: &str,
) -> Option<String> {
    Some(match view {
        "modules" => modules(&admin::module_rows(state, sources.external), csrf),
        "connections" => connections(state, csrf),
        "rooms" => rooms(state),
        "jobs" => jobs(state, csrf).await,
        "config" => config(sources.config),
        _ => return None,
    })
}

/// `value` as text: strings bare, null as a dash, the rest as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(value: &Value) -> String {
    format!("<td>{}</td>", esc(&text(value)))
}

fn when(value: &Value) -> String {
    match value.as_u64() {
        Some(secs) => format!("<td>{}</td>", time(secs)),
        None => "<td>–</td>".to_owned(),
    }
}

fn modules(rows: &[Value], csrf: &str) -> String {
    let mut out = String::from(
        "<h1>Modules</h1><table id=\"modules\"><thead><tr><th>Name</th><th>Kind</th><th>State</th>\
         <th>Version</th><th>Seq</th><th>Generation</th><th>Builds loaded</th><th>Since</th>\
         <th>Restarts</th><th>Last error</th><th></th></tr></thead><tbody>",
    );
    let mut refused = String::new();
    let mut events = Vec::new();
    for row in rows {
        let name = text(&row["name"]);
        let path = |what: &str| format!("/admin/modules/{}/{what}", url_segment(&name));
        let buttons = match (row["kind"].as_str(), row["generation"].is_u64()) {
            (Some("in-process"), true) => {
                action(&path("reset"), "Reset", csrf) + &action(&path("disable"), "Disable", csrf)
            }
            (Some("in-process"), false) if row["state"] == "disabled" => {
                action(&path("enable"), "Enable", csrf)
            }
            _ => String::new(),
        };
        for event in row["history"].as_array().into_iter().flatten() {
            events.push((
                event["at"].as_u64().unwrap_or(0),
                name.clone(),
                event.clone(),
            ));
        }
        let _ = write!(
            out,
            r#"<tr data-module="{}" data-state="{}">{}{}<td class="state">{}</td>{}{}{}{}{}{}{}<td class="actions">{buttons}</td></tr>"#,
            esc(&name),
            esc(&text(&row["state"])),
            cell(&row["name"]),
            cell(&row["kind"]),
            esc(&text(&row["state"])),
            cell(&row["version"]),
            cell(&row["seq"]),
            cell(&row["generation"]),
            cell(&row["generations"]),
            when(&row["loaded_at"]),
            cell(&row["restarts"]),
            cell(&row["last_error"]),
        );
        for build in row["refused_builds"].as_array().into_iter().flatten() {
            let _ = write!(
                refused,
                r#"<tr data-refused="{}">{}{}{}<td class="reason">{}</td>{}</tr>"#,
                esc(&name),
                cell(&row["name"]),
                cell(&build["file"]),
                cell(&build["state"]),
                esc(&text(&build["error"])),
                when(&build["at"]),
            );
        }
    }
    if rows.is_empty() {
        out.push_str(r#"<tr><td colspan="11" class="empty">No modules: drop a signed build into the modules folder.</td></tr>"#);
    }
    out.push_str("</tbody></table><h2>Builds not loaded</h2>");
    if refused.is_empty() {
        out.push_str(r#"<p class="empty">Every build in the modules folder is loaded.</p>"#);
    } else {
        let _ = write!(
            out,
            "<table id=\"refused\"><thead><tr><th>Module</th><th>File</th><th>State</th><th>Reason</th>\
             <th>At</th></tr></thead><tbody>{refused}</tbody></table>"
        );
    }
    history(&mut out, events);
    out
}

/// Events shown in the history of generations, newest first.
const HISTORY_ROWS: usize = 50;

/// The modules' histories merged, newest first.
fn history(out: &mut String, mut events: Vec<(u64, String, Value)>) {
    out.push_str("<h2>History of generations</h2>");
    if events.is_empty() {
        out.push_str(r#"<p class="empty">Nothing happened to a module yet.</p>"#);
        return;
    }
    // Stable: events of one module keep their order within a second.
    events.sort_by_key(|e| std::cmp::Reverse(e.0));
    out.push_str(
        "<table id=\"history\"><thead><tr><th>At</th><th>Module</th><th>Event</th><th>Generation</th>\
         <th>Seq</th><th>Detail</th></tr></thead><tbody>",
    );
    for (at, name, event) in events.iter().take(HISTORY_ROWS) {
        let _ = write!(
            out,
            r#"<tr data-event="{}"><td>{}</td><td>{}</td>{}{}{}<td class="reason">{}</td></tr>"#,
            esc(&text(&event["event"])),
            time(*at),
            esc(name),
            cell(&event["event"]),
            cell(&event["generation"]),
            cell(&event["seq"]),
            esc(&text(&event["detail"])),
        );
    }
    out.push_str("</tbody></table>");
}

/// `name` for a path segment: module names are plain, but a refused
/// build's row may be named after any file.
fn url_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Rows a connections or rooms view shows at most: a view is rendered
/// every 2 s for each open feed, and the admin API lists everything.
pub(super) const MAX_ROWS: usize = 500;

/// The row saying how many were left out, if any.
fn more(out: &mut String, total: usize, columns: usize, api: &str) {
    if total > MAX_ROWS {
        let _ = write!(
            out,
            r#"<tr class="more"><td colspan="{columns}" class="empty">… and {} more: <code>GET {api}</code> lists them all.</td></tr>"#,
            total - MAX_ROWS
        );
    }
}

fn connections(state: &AppState, csrf: &str) -> String {
    let rows = state.sessions.list();
    let mut out = String::from(
        "<h1>Connections</h1><table id=\"connections\"><thead><tr><th>Session</th><th>User</th>\
         <th>Dialect</th><th>State</th><th>Address</th><th>Subscriptions</th><th>Since</th><th></th>\
         </tr></thead><tbody>",
    );
    for row in rows.iter().take(MAX_ROWS) {
        let subscriptions = session_id(&row.session)
            .map(|id| state.fanout.session_subscriptions(id))
            .unwrap_or(0);
        let _ = write!(
            out,
            r#"<tr data-session="{s}" data-user="{u}"><td>{s}</td><td>{u}</td><td>{}</td><td>{}</td><td>{}</td><td>{subscriptions}</td><td>{}</td><td>{}</td></tr>"#,
            row.protocol,
            row.state,
            esc(row.remote.as_deref().unwrap_or("–")),
            time(row.connected_at),
            action(
                &format!("/admin/sessions/{}/disconnect", row.session),
                "Disconnect",
                csrf
            ),
            s = esc(&row.session),
            u = esc(&row.user),
        );
    }
    more(&mut out, rows.len(), 8, "/api/connections");
    if rows.is_empty() {
        out.push_str(r#"<tr><td colspan="8" class="empty">Nobody is connected.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

fn rooms(state: &AppState) -> String {
    let mut rooms = state.fanout.rooms();
    // The most listened-to first: those are the ones a cut list keeps.
    rooms.sort_by_key(|(_, subscribers)| std::cmp::Reverse(*subscribers));
    let mut out = String::from(
        "<h1>Rooms</h1><table id=\"rooms\"><thead><tr><th>Room</th><th>Subscribers</th></tr></thead><tbody>",
    );
    for (room, subscribers) in rooms.iter().take(MAX_ROWS) {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{subscribers}</td></tr>",
            esc(&room.to_string())
        );
    }
    more(&mut out, rooms.len(), 2, "/api/rooms");
    if rooms.is_empty() {
        out.push_str(r#"<tr><td colspan="2" class="empty">No room has a subscriber.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

async fn jobs(state: &AppState, csrf: &str) -> String {
    let mut out = String::from("<h1>Jobs</h1>");
    let listed = admin::operator_call(state, crate::jobs::MODULE, "list", None).await;
    let jobs = match listed {
        Ok(answer) => answer["result"]["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(e) => {
            let _ = write!(
                out,
                r#"<p class="error">The job launcher did not answer: {}</p>"#,
                esc(e.message())
            );
            return out;
        }
    };
    if jobs.is_empty() {
        out.push_str(r#"<p class="empty">No jobs. Users start them with <code>jobs.launch</code> for an <code>[apps.&lt;name&gt;]</code> of config.toml.</p>"#);
        return out;
    }
    out.push_str(
        "<table id=\"jobs\"><thead><tr><th>Job</th><th>App</th><th>Owner</th><th>Status</th>\
         <th>URL</th><th>Created</th><th>Restarts</th><th></th></tr></thead><tbody>",
    );
    for job in &jobs {
        let id = text(&job["job_id"]);
        let stoppable = matches!(job["status"].as_str(), Some("starting" | "running"));
        let stop = if stoppable {
            action(
                &format!("/admin/jobs/{}/stop", url_segment(&id)),
                "Stop",
                csrf,
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<tr data-job="{}">{}{}{}{}{}{}{}<td>{stop}</td></tr>"#,
            esc(&id),
            cell(&job["job_id"]),
            cell(&job["app"]),
            cell(&job["owner"]),
            cell(&job["status"]),
            cell(&job["url"]),
            cell(&job["creation_timestamp"]),
            cell(&job["restarts"]),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn config(status: Option<ConfigStatus>) -> String {
    let Some(status) = status else {
        return "<h1>Config</h1><p>config.toml is not watched.</p>".to_owned();
    };
    let status = lock(&status).clone();
    let mut out = String::from("<h1>Config</h1><dl id=\"config\">");
    let file = status.file.as_deref().unwrap_or("(built-in defaults)");
    let _ = write!(
        out,
        "<dt>File</dt><dd>{}</dd><dt>Watched</dt><dd>{}</dd><dt>Reloads applied</dt><dd>{}</dd>\
         <dt>Last reload</dt><dd>{}</dd>",
        esc(file),
        if status.watching { "yes" } else { "no" },
        status.applied,
        status.applied_at.map_or_else(|| "never".to_owned(), time),
    );
    match &status.last_error {
        Some(error) => {
            let _ = write!(
                out,
                r#"<dt>Last error</dt><dd class="error" id="config-error">{}</dd>"#,
                esc(error)
            );
        }
        None => out.push_str("<dt>Last error</dt><dd>none: the file on disk is in force</dd>"),
    }
    for (title, lines) in [
        ("Last changes", &status.last_changes),
        ("Waiting for a restart", &status.restart_pending),
    ] {
        if !lines.is_empty() {
            let items: String = lines
                .iter()
                .map(|l| format!("<li>{}</li>", esc(l)))
                .collect();
            let _ = write!(out, "<dt>{title}</dt><dd><ul>{items}</ul></dd>");
        }
    }
    out.push_str("</dl>");
    out
}
