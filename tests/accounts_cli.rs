//! `modhost user …` and `modhost run --create-admin` through the real
//! binary (issue 15 item 2): each subcommand, its refusals, and passwords
//! kept out of argv (`ps`, `/proc/<pid>/cmdline`) and out of the host's log.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness::{Workspace, http, modhost_bin};

const PASSWORD: &str = "pw-in-stdin-9f3a71";
const ADMIN_PASSWORD: &str = "admin-pw-stdin-5c20e8";

/// Runs `modhost user <args> --config <ws config>` with `stdin` piped in.
pub fn user(ws: &Workspace, args: &[&str], stdin: &str) -> Output {
    let config = ws.path().join("config.toml");
    if !config.exists() {
        std::fs::write(&config, ws.config_text("")).unwrap();
    }
    let mut child = Command::new(modhost_bin())
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(&config)
        .current_dir(ws.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that needs no password (or refuses its arguments) may exit
    // before reading stdin; what it prints is what the test checks.
    match input.write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", text(&out));
    text(&out)
}

#[test]
fn user_subcommands_manage_the_store() {
    let ws = Workspace::new();
    let added = ok(user(
        &ws,
        &[
            "add",
            "alice",
            "--role",
            "user",
            "--role",
            "editor",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    ));
    assert!(added.contains("alice\tenabled\tuser,editor"), "{added}");
    ok(user(&ws, &["add", "bob"], ""));

    let list = ok(user(&ws, &["list"], ""));
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        [
            "alice\tenabled\tuser,editor\t-",
            "bob\tenabled\t-\t-\t(no password)"
        ]
    );
    let roles = ok(user(
        &ws,
        &["role", "alice", "--add", "admin", "--remove", "editor"],
        "",
    ));
    assert!(roles.contains("alice\tenabled\tuser,admin"), "{roles}");
    assert!(ok(user(&ws, &["disable", "bob"], "")).contains("bob\tdisabled"));
    assert!(ok(user(&ws, &["enable", "bob"], "")).contains("bob\tenabled"));
    let passwd = ok(user(
        &ws,
        &["passwd", "bob", "--password-stdin"],
        "a new password\n",
    ));
    assert!(passwd.contains("password set"), "{passwd}");
    assert!(!ok(user(&ws, &["list"], "")).contains("(no password)"));

    // Refusals say what is wrong.
    assert!(failed(user(&ws, &["add", "alice"], "")).contains("exists already"));
    assert!(failed(user(&ws, &["disable", "carol"], "")).contains("no user is named \"carol\""));
    assert!(failed(user(&ws, &["add", "bad name"], "")).contains("not allowed in a user name"));
    assert!(
        failed(user(&ws, &["add", "dave", "--password-stdin"], "short\n")).contains("8 to 1024")
    );
    assert!(failed(user(&ws, &["passwd", "bob"], "a new password\n")).contains("--password-stdin"));
    // A password is never an argument.
    assert!(failed(user(&ws, &["add", "erin", "--password", PASSWORD], "")).contains("--password"));

    let store = modhost::accounts::Store::open_in(&ws.path().join("state")).unwrap();
    let actions: Vec<String> = store
        .audit_log(20)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"user_passwd".to_owned()), "{actions:?}");
    assert!(
        store
            .audit_log(20)
            .unwrap()
            .iter()
            .all(|e| e.actor == "cli")
    );
}

/// Process `pid`'s command line, as `ps` shows it. Read until it is
/// there: `spawn` returns once the child is past the point of no return of
/// `exec`, which can be before the kernel has set its new arguments.
fn cmdline(pid: u32) -> String {
    let started = Instant::now();
    loop {
        let shown = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if !shown.is_empty() || started.elapsed() > Duration::from_secs(30) {
            return shown;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_listening(log: &Path, child: &mut std::process::Child) -> std::net::SocketAddr {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find(|l| l.contains("listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            return addr;
        }
        assert!(
            child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60),
            "modhost did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn passwords_stay_out_of_argv_ps_and_the_log() {
    let ws = Workspace::new();
    let config = ws.path().join("config.toml");
    std::fs::write(&config, ws.config_text("")).unwrap();

    // `user add` waiting for its password: the command line has none.
    let mut adding = Command::new(modhost_bin())
        .args([
            "user",
            "add",
            "alice",
            "--role",
            "user",
            "--password-stdin",
            "--config",
        ])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = cmdline(adding.id());
    assert!(
        shown.contains("--password-stdin") && !shown.contains(PASSWORD),
        "{shown}"
    );
    let mut input = adding.stdin.take().unwrap();
    input.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    drop(input);
    ok(adding.wait_with_output().unwrap());

    // `run --create-admin`, the password on stdin, logging everything.
    let log = ws.path().join("host.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut host = Command::new(modhost_bin())
        .args(["run", "--create-admin", "root", "--config"])
        .arg(&config)
        .current_dir(ws.path())
        .env("NO_COLOR", "1")
        .env("MODHOST_LOG", "debug")
        .env_remove("MODHOST_ADMIN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut input = host.stdin.take().unwrap();
    input
        .write_all(format!("{ADMIN_PASSWORD}\n").as_bytes())
        .unwrap();
    drop(input);
    let addr = wait_listening(&log, &mut host);
    let shown = cmdline(host.id());
    assert!(
        shown.contains("--create-admin root") && !shown.contains(ADMIN_PASSWORD),
        "{shown}"
    );
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.contains(PASSWORD) && !ps.contains(ADMIN_PASSWORD));

    // Both users log in; a wrong password is refused; tokens work on /ws/.
    let login = |user: &'static str, password: &'static str| {
        let url = format!("http://{addr}/auth/login");
        async move {
            let resp = http()
                .post(url)
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, root) = login("root", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{root}");
    let (status, alice) = login("alice", PASSWORD).await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(login("alice", "not-the-password").await.0, 401);
    let mut c = crate::harness::Client::connect(&format!(
        "ws://{addr}/ws/?token={}",
        root["access_token"].as_str().unwrap()
    ))
    .await;
    assert_eq!(c.next().await["is_authorized"], true);
    let resp = http()
        .post(format!("http://{addr}/auth/logout"))
        .json(&json!({"refresh_token": alice["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let _ = host.kill();
    let _ = host.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("made the administrator account"), "{text}");
    assert!(text.contains("login"), "{text}");
    for secret in [
        PASSWORD,
        ADMIN_PASSWORD,
        "not-the-password",
        root["access_token"].as_str().unwrap(),
        root["refresh_token"].as_str().unwrap(),
        alice["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "the log holds a secret: {secret}");
    }
}

#[test]
fn create_admin_reads_the_environment_and_needs_a_password() {
    let ws = Workspace::new();
    let config = ws.path().join("config.toml");
    std::fs::write(&config, ws.config_text("")).unwrap();
    let run = || {
        let mut cmd = Command::new(modhost_bin());
        cmd.args(["run", "--create-admin", "root", "--config"])
            .arg(&config)
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    };
    // No password anywhere: refused before anything is made.
    let out = run().env_remove("MODHOST_ADMIN_PASSWORD").output().unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("MODHOST_ADMIN_PASSWORD"), "{said}");
    let db = ws.path().join("state").join(modhost::accounts::DB_FILE);
    assert!(!db.exists(), "a store was made without an administrator");

    // From the environment.
    let log = ws.path().join("env.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut host = run()
        .env("MODHOST_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    wait_listening(&log, &mut host);
    let _ = host.kill();
    let _ = host.wait();
    let store = modhost::accounts::Store::open_in(&ws.path().join("state")).unwrap();
    let root = store.user("root").unwrap().expect("root was made");
    assert_eq!(root.roles, ["admin"]);
    assert!(root.has_password);
}

/// 160 logins, 8 at a time, through the real binary: the host keeps the
/// work areas of the hashes that ran at once, not one per thread that ever
/// hashed (810 MiB after 120 logins before the pool).
#[tokio::test]
async fn many_logins_leave_the_host_small() {
    let ws = Workspace::new();
    let store = modhost::accounts::Store::open_in(&ws.path().join("state")).unwrap();
    modhost::accounts::admin::add(&store, "alice", None, &[], Some(PASSWORD)).unwrap();
    let host = crate::harness_process::ProcessHost::start(&ws, "[auth.accounts]\nenabled = true\n");
    let before = host.rss_kib();
    let url = host.url("/auth/login");
    let started = Instant::now();
    for _ in 0..20 {
        let logins = (0..8).map(|_| {
            http()
                .post(&url)
                .json(&json!({"username": "alice", "password": PASSWORD}))
                .send()
        });
        for resp in futures_util::future::join_all(logins).await {
            assert_eq!(resp.unwrap().status(), 200);
        }
    }
    let after = host.rss_kib();
    println!(
        "160 logins in {:?}: RSS {} → {} MiB",
        started.elapsed(),
        before / 1024,
        after / 1024
    );
    assert!(after < before + 160 * 1024, "RSS {before} → {after} KiB");
}
