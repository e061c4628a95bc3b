//! App-specific steps from modules (issue 17 item 2): an app that names a
//! module gets its job's config file, extra arguments and, if the module
//! gives one, certificate from that module's `gen_config`, called through
//! the broker with the job object and the launching user's stamp (the
//! seed's `gen_config(job)`, `get_launch_cmd(job)` and `gen_cert`).

use serde_json::{Value, json};

use crate::{
    external_client::{ModuleClient, external_config},
    harness::{Client, TestHost, Workspace},
    jobs_support::{Reaper, app_table, https_get, try_launch, wait_status},
};

#[tokio::test]
async fn a_module_makes_the_config_args_and_certificate_of_its_apps_jobs() {
    let mut ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let text = format!(
        "{}{}",
        external_config(&ws, ""),
        app_table("web", &[], "module = \"helper\"")
    );
    // The app's own template would not parse as the app's config: only
    // the module's makes the job work.
    let text = text.replace("config_template = '", "config_template = 'not json ");
    let host = TestHost::start(&ws, &text).await;
    let mut helper = ModuleClient::connect(&host, "helper", ws.key("helper")).await;
    assert_eq!(helper.start().await["status"], "recognized");
    let r = helper
        .register(json!([{"name": "gen_config", "params": ["job"]}]))
        .await;
    assert_eq!(r["success"], true, "{r}");
    // The module's own certificate (the seed's gen_cert), made at run time.
    let pki = tempfile::tempdir().unwrap();
    let (own_cert, own_key) = (pki.path().join("c.pem"), pki.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&own_key)
        .arg("-out")
        .arg(&own_cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let (cert_pem, key_pem) = (pem(&own_cert), pem(&own_key));
    let module = tokio::spawn(async move {
        loop {
            let frame = helper.next().await;
            if frame["type"] != "call" {
                continue;
            }
            let job = &frame["params"]["job"];
            let dir = job["job_dir"].as_str().unwrap();
            let config = json!({
                "port": job["port"],
                "cert": job["cert"],
                "key": format!("{dir}/key.pem"),
                "hash_file": format!("{dir}/password.hash"),
                "https": true,
                "user": format!("{} via module", job["owner"].as_str().unwrap()),
            });
            let reply = helper
                .frame(&[
                    ("type", json!("reply")),
                    ("id", frame["id"].clone()),
                    ("result", json!({"config": config.to_string(), "args": ["from-module", "; not a shell"],
                        "cert": cert_pem, "key": key_pem})),
                ])
                .0;
            helper.send_quiet(&reply).await;
            return frame;
        }
    });

    let mut alice = Client::authorized(&host, "alice-token").await;
    let reply = alice
        .call(
            "jobs",
            "launch",
            json!({"app": "web", "password": "pw"}),
            "l",
        )
        .await;
    let job = reply["result"].clone();
    assert_eq!(job["status"], "starting", "{reply}");
    let call = module.await.unwrap();
    assert_eq!(call["command"], "gen_config");
    assert_eq!(
        call["caller"]["user"], "alice",
        "the launching user, stamped: {call}"
    );
    assert_eq!(call["caller"]["module"], "jobs", "{call}");
    assert_eq!(call["params"]["job"]["job_id"], job["job_id"], "{call}");
    assert!(
        !call.to_string().contains("sha512:"),
        "never the hash: {call}"
    );

    let running = wait_status(
        &host.url("/api/call"),
        job["job_id"].as_str().unwrap(),
        "running",
    )
    .await;
    // Served with the module's certificate: trusting it alone works.
    let own = own_cert.display().to_string();
    let port = running["port"].as_u64().unwrap();
    assert_eq!(
        https_get(port, &own, "pw"),
        (200, "hello alice via module".to_owned())
    );
    let cert = running["cert"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(cert).unwrap(), pem(&own_cert));
    let dir = std::path::Path::new(job["job_dir"].as_str().unwrap());
    let argv: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("argv.json")).unwrap()).unwrap();
    assert_eq!(
        &argv[argv.len() - 2..],
        &[json!("from-module"), json!("; not a shell")]
    );
    host.stop().await;
}

#[tokio::test]
async fn a_launch_whose_module_is_missing_fails_and_frees_its_port() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let host = TestHost::start(
        &ws,
        &app_table("web", &[], "module = \"nobody\"\nmax_jobs = 1"),
    )
    .await;
    for _ in 0..2 {
        let (status, body) = try_launch(&host, "web").await;
        assert_eq!(status, 422, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("nobody") && message.contains("gen_config"),
            "{body}"
        );
    }
    let (_, all) = host.call("jobs", "list", json!({})).await;
    let jobs = all["result"]["jobs"].as_array().unwrap();
    assert!(jobs.iter().all(|j| j["status"] == "failed"), "{all}");
    host.stop().await;
}
