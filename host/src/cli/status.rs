//! `modhost status [--config FILE] [--url URL]`: what a running host says
//! about itself, for an operator at a terminal: modules (with the files it
//! refused and why), connections and rooms, from the admin API
//! (`/api/modules`, `/api/connections`, `/api/rooms`) with the admin
//! token (see `admin_client`).

use std::fmt::Write as _;

use serde_json::Value;

use super::{
    admin_client::{AdminClient, block_on},
    load_config,
};

/// `modhost status`.
pub(crate) fn status(
    config_path: Option<std::path::PathBuf>,
    url: Option<String>,
) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let client = AdminClient::new(&config, url)?;
    let [modules, connections, rooms] = block_on(async {
        anyhow::Ok([
            client.get("/api/modules").await?,
            client.get("/api/connections").await?,
            client.get("/api/rooms").await?,
        ])
    })??;
    print!("{}", report(client.base(), &modules, &connections, &rooms));
    Ok(())
}

/// The text `modhost status` prints for the three admin API answers.
fn report(base: &str, modules: &Value, connections: &Value, rooms: &Value) -> String {
    let none = Vec::new();
    let list = |v: &Value| v.as_array().unwrap_or(&none).clone();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = format!("modhost at {base}\n");
    let modules = list(modules);
    let running = modules.iter().filter(|m| m["state"] == "running").count();
    let _ = writeln!(out, "modules: {} ({running} running)", modules.len());
    for m in &modules {
        let mut line = format!("  {:<16} {:<9}", text(&m["name"]), text(&m["state"]));
        if m["version"].is_string() {
            let _ = write!(
                line,
                " {} seq {} generation {} restarts {} timeouts {}",
                text(&m["version"]),
                m["seq"],
                m["generation"],
                m["restarts"],
                m["timeouts"]
            );
        }
        let _ = writeln!(out, "{}", line.trim_end());
        for refused in list(&m["refused_builds"]) {
            let _ = writeln!(
                out,
                "    {} {}: {}",
                text(&refused["state"]),
                text(&refused["file"]),
                text(&refused["error"])
            );
        }
    }
    let connections = list(connections);
    let parked = connections
        .iter()
        .filter(|c| c["state"] == "parked")
        .count();
    let mut users: Vec<String> = connections.iter().map(|c| text(&c["user"])).collect();
    users.sort();
    users.dedup();
    let _ = writeln!(
        out,
        "connections: {} ({} open, {parked} parked){}",
        connections.len(),
        connections.len() - parked,
        if users.is_empty() {
            String::new()
        } else {
            format!("; users: {}", users.join(", "))
        }
    );
    let rooms = list(rooms);
    let _ = writeln!(out, "rooms: {}", rooms.len());
    for room in &rooms {
        let _ = writeln!(
            out,
            "  {} {} subscriber(s)",
            room["room"], room["subscribers"]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::report;

    #[test]
    fn the_report_shows_modules_refusals_connections_and_rooms() {
        let modules = json!([
            {"name": "echo", "state": "running", "version": "0.1.0", "seq": 3, "generation": 2,
             "restarts": 0, "timeouts": 1, "refused_builds": [
                {"file": "/p/echo-old.so", "state": "refused", "error": "rollback", "at": 1}]},
            {"name": "stray", "state": "refused", "version": null, "refused_builds": [
                {"file": "/p/stray.so", "state": "refused", "error": "no signature", "at": 1}]},
        ]);
        let connections = json!([
            {"user": "bob", "state": "open"}, {"user": "alice", "state": "parked"},
            {"user": "bob", "state": "open"},
        ]);
        let rooms = json!([{"room": {"target": "message"}, "subscribers": 2}]);
        let text = report("http://h", &modules, &connections, &rooms);
        for needle in [
            "modules: 2 (1 running)",
            "echo             running   0.1.0 seq 3 generation 2 restarts 0 timeouts 1",
            "    refused /p/echo-old.so: rollback",
            "stray            refused\n",
            "    refused /p/stray.so: no signature",
            "connections: 3 (2 open, 1 parked); users: alice, bob",
            "rooms: 1",
            "{\"target\":\"message\"} 2 subscriber(s)",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }
}
