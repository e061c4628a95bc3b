//! `/module`: sse-platform's unchanged client, signed frames, the replay
//! guard, the host key, sse-platform's requests, and every refusal (issue
//! 14 items 1 to 3). Each refusal is followed by a request that still
//! works on the same connection, and by the host still serving.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::{Value, json};

use crate::external_client::{ModuleClient, host, py_dict, raw_upgrade, upgrade_request};
use crate::harness::{VERSION, Workspace, http};

/// The host's public key from `GET /module/key`.
async fn host_key(host: &crate::harness::TestHost) -> VerifyingKey {
    let text = http()
        .get(host.url("/module/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bytes: [u8; 32] = BASE64.decode(text.trim()).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&bytes).unwrap()
}

/// Checks a host frame's `signed_msg` and that it says what the frame says.
fn assert_host_signed(frame: &Value, key: &VerifyingKey) {
    let signed = BASE64
        .decode(
            frame["signed_msg"]
                .as_str()
                .expect("host frames are signed"),
        )
        .unwrap();
    let (sig, inner) = signed.split_at(64);
    key.verify_strict(inner, &Signature::from_slice(sig).unwrap())
        .expect("the host's signature verifies with GET /module/key");
    let mut outer = frame.clone();
    outer.as_object_mut().unwrap().remove("signed_msg");
    assert_eq!(serde_json::from_slice::<Value>(inner).unwrap(), outer);
}

async fn healthy(host: &crate::harness::TestHost) {
    let status = http()
        .get(host.url("/health"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the host still serves");
}

#[tokio::test]
async fn sse_platforms_unchanged_client_is_recognized_and_answered() {
    let mut ws = Workspace::new();
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    let host = host(&ws, "").await;
    let key = ws.key("pymod");
    let mut m = ModuleClient::connect(&host, "pymod", key).await;
    let started = m.start().await;
    assert_eq!(started["type"], "module_start_response");
    assert_eq!(started["status"], "recognized");
    assert_eq!(started["success"], true);
    let host_key = host_key(&host).await;
    assert_host_signed(&started, &host_key);

    let running = m.request(&[("type", json!("get_running_modules"))]).await;
    assert_eq!(
        running["running_modules"]["pymod"],
        json!({"port": 8000, "kind": "external"})
    );
    assert_eq!(running["running_modules"]["divide"]["kind"], "in-process");

    let user = m
        .request(&[("type", json!("get_user")), ("username", json!("alice"))])
        .await;
    assert_eq!(user["user"]["username"], "alice");
    assert_eq!(user["user"]["role"], "user");
    let admin = m
        .request(&[
            ("type", json!("check_permission")),
            ("username", json!("root")),
        ])
        .await;
    assert_eq!(admin["role"], "admin");
    let nobody = m
        .request(&[("type", json!("get_user")), ("username", json!("mallory"))])
        .await;
    assert_eq!(
        (nobody["success"].clone(), nobody["reason"].clone()),
        (json!(false), json!("user_not_found"))
    );
    let list = m.request(&[("type", json!("get_user_list"))]).await;
    assert_eq!(list["users"].as_object().unwrap().len(), 3);
    assert_host_signed(&list, &host_key);
    let unknown = m.request(&[("type", json!("user_logout"))]).await;
    assert_eq!(unknown["type"], "protocol_error");

    // Never a token in any frame to a module.
    let all = m.transcript.join("\n");
    for token in ["alice-token", "bob-token", "admin-token"] {
        assert!(
            !all.contains(token),
            "a frame to the module carried {token}"
        );
    }
    println!("sse-platform client session:\n{all}");
    // The key file is private and in the state folder.
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(ws.path().join("state/external-host.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn forged_replayed_and_misplaced_frames_are_refused_and_the_connection_lives_on() {
    let mut ws = Workspace::new();
    let host = host(&ws, "max_frame_bytes = 4096").await;
    let key = ws.key("pymod");
    let other_key = ws.key("other");
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let mut m = ModuleClient::connect(&host, "pymod", key.clone()).await;

    // Before module_start: nothing else is served.
    let early = m.request(&[("type", json!("get_user_list"))]).await;
    assert_eq!(early["type"], "protocol_error", "{early}");
    assert_eq!(m.start().await["status"], "recognized");
    let ping = [("type", json!("get_running_modules"))];

    let (text, rid) = m.frame(&ping);
    // A bad signature: one byte of the signed part flipped.
    let mut bad: Value = serde_json::from_str(&text).unwrap();
    let mut raw = BASE64.decode(bad["signed_msg"].as_str().unwrap()).unwrap();
    raw[70] ^= 1;
    bad["signed_msg"] = BASE64.encode(raw).into();
    m.send_text(&bad.to_string()).await;
    assert_eq!(
        m.answer_to(&rid).await["type"],
        "signature_verification_error"
    );
    // Signed by a key the host does not know, and by another module's key.
    for wrong in [&stranger, &other_key] {
        let (text, rid) = ModuleClient::frame_as(wrong, "pymod", &ping, None);
        m.send_text(&text).await;
        assert_eq!(
            m.answer_to(&rid).await["type"],
            "signature_verification_error"
        );
    }
    // Another module's frame, correctly signed by it, on this connection.
    let (text, rid) = ModuleClient::frame_as(&other_key, "other", &ping, None);
    m.send_text(&text).await;
    assert_eq!(m.answer_to(&rid).await["type"], "protocol_error");
    // The envelope's origin disagrees with the signed one.
    let (text, rid) = m.frame(&ping);
    let mut lying: Value = serde_json::from_str(&text).unwrap();
    lying["origin"] = "other".into();
    m.send_text(&lying.to_string()).await;
    assert_eq!(m.answer_to(&rid).await["type"], "protocol_error");
    // Missing keys: sse-platform's message_format_error.
    m.send_text(&py_dict(&[
        ("origin", json!("pymod")),
        ("resolve_id", json!("x1")),
    ]))
    .await;
    let format = m.answer_to("x1").await;
    assert_eq!(format["type"], "message_format_error");
    assert_eq!(format["description"], "Message misses key 'signed_msg'");
    // The same frame twice: the second is a replay.
    let (text, rid) = m.frame(&ping);
    m.send_text(&text).await;
    assert_eq!(
        m.answer_to(&rid).await["type"],
        "get_running_modules_response"
    );
    m.send_text(&text).await;
    assert_eq!(m.answer_to(&rid).await["type"], "replay");
    // After all that the connection still works.
    let ok = m.request(&ping).await;
    assert_eq!(ok["success"], true, "{ok}");
    // A replay on a new connection is refused too (per module, not socket).
    drop(m);
    let mut again = ModuleClient::connect(&host, "pymod", key.clone()).await;
    again.send_text(&text).await;
    assert_eq!(again.answer_to(&rid).await["type"], "replay");

    // Oversize: refused with its error, this socket closed with 1009.
    assert_eq!(again.start().await["status"], "recognized");
    let (big, _) = again.frame(&[
        ("type", json!("get_user_list")),
        ("pad", json!("x".repeat(5000))),
    ]);
    again.send_text(&big).await;
    let refused = again.next().await;
    assert_eq!(refused["type"], "message_format_error", "{refused}");
    assert!(
        refused["description"]
            .as_str()
            .unwrap()
            .contains("max_frame_bytes")
    );
    assert!(
        again.next_within(Duration::from_secs(5)).await.is_none(),
        "closed"
    );
    healthy(&host).await;
    // The name is free again for a new connection with the key.
    let mut back = ModuleClient::connect(&host, "pymod", key).await;
    assert_eq!(back.start().await["status"], "recognized");
}

#[tokio::test]
async fn a_name_held_in_process_or_by_a_live_connection_is_refused() {
    let mut ws = Workspace::new();
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    let host = host(&ws, "").await;
    let mut fake = ModuleClient::connect(&host, "divide", ws.key("divide")).await;
    let r = fake.start().await;
    assert_eq!(
        (r["success"].clone(), r["status"].clone()),
        (json!(false), json!("already_running"))
    );
    // The in-process divide still answers.
    let (status, v) = host
        .call("divide", "divide", json!({"dividend": 9, "divisor": 3}))
        .await;
    assert_eq!(
        (status, v["result"]["quotient"].clone()),
        (200, json!(3)),
        "{v}"
    );

    let key = ws.key("pymod");
    let mut first = ModuleClient::connect(&host, "pymod", key.clone()).await;
    assert_eq!(first.start().await["status"], "recognized");
    let mut second = ModuleClient::connect(&host, "pymod", key).await;
    assert_eq!(second.start().await["status"], "already_running");
    let ok = first
        .request(&[("type", json!("get_running_modules"))])
        .await;
    assert_eq!(ok["success"], true, "the first connection is unharmed");
}

#[tokio::test]
async fn templates_stay_in_their_folder() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    std::fs::write(ws.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(
        ws.path().join("secret.txt"),
        ws.path().join("templates/link.html"),
    )
    .unwrap();
    let mut m = ModuleClient::connect(&host, "pymod", ws.key("pymod")).await;
    m.start().await;
    let post = m
        .request(&[
            ("type", json!("post_template")),
            ("template_name", json!("page.html")),
            ("template", json!("<p>hi</p>")),
        ])
        .await;
    assert_eq!(post["success"], true, "{post}");
    let get = m
        .request(&[
            ("type", json!("get_template")),
            ("template_name", json!("page.html")),
        ])
        .await;
    assert_eq!(get["template"], "<p>hi</p>");
    let secret = ws.path().join("secret.txt").display().to_string();
    for name in ["../secret.txt", secret.as_str(), "link.html"] {
        let r = m
            .request(&[
                ("type", json!("get_template")),
                ("template_name", json!(name)),
            ])
            .await;
        assert_eq!(
            (r["success"].clone(), r["reason"].clone()),
            (json!(false), json!("template_name_refused")),
            "{name}: {r}"
        );
        assert!(!r.to_string().contains("\"secret\""), "{r}");
        let w = m
            .request(&[
                ("type", json!("post_template")),
                ("template_name", json!(name)),
                ("template", json!("pwned")),
            ])
            .await;
        // Over a symlink, a write replaces the link, never its target.
        assert_eq!(w["success"], name == "link.html", "{name}: {w}");
    }
    assert_eq!(
        std::fs::read_to_string(ws.path().join("secret.txt")).unwrap(),
        "secret"
    );
    let missing = m
        .request(&[
            ("type", json!("get_template")),
            ("template_name", json!("nope.html")),
        ])
        .await;
    assert_eq!(missing["reason"], "template_not_found");
}

#[tokio::test]
async fn the_upgrade_body_is_bounded_and_must_be_json() {
    let ws = Workspace::new();
    let host = host(&ws, "max_body_bytes = 256").await;
    let addr = host.addr.to_string();
    let big = format!("{{\"module\": \"{}\"}}", "a".repeat(400));
    assert_eq!(
        raw_upgrade(host.addr, &upgrade_request(&addr, "/module", &big))
            .await
            .0,
        413
    );
    assert_eq!(
        raw_upgrade(host.addr, &upgrade_request(&addr, "/module", "not json"))
            .await
            .0,
        400
    );
    let bad_name = py_dict(&[
        ("type", json!("module_socket_connect")),
        ("module", json!("../x")),
    ]);
    assert_eq!(
        raw_upgrade(host.addr, &upgrade_request(&addr, "/module", &bad_name))
            .await
            .0,
        400
    );
    // No body at all (a new client) is fine.
    assert_eq!(
        raw_upgrade(host.addr, &upgrade_request(&addr, "/module", ""))
            .await
            .0,
        101
    );
    healthy(&host).await;
}

#[tokio::test]
async fn the_claimed_name_must_be_the_signed_origin() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    // Claims "pymod" in the body, then signs as "other" (whose key it has).
    let mut m = ModuleClient::connect(&host, "pymod", ws.key("other")).await;
    m.name = "other".into();
    let r = m.start().await;
    assert_eq!(r["type"], "protocol_error", "{r}");
}

#[tokio::test]
async fn challenge_mode_needs_the_connections_challenge_in_every_frame() {
    let mut ws = Workspace::new();
    let host = host(&ws, "challenge = \"required\"").await;
    let mut m = ModuleClient::connect(&host, "pymod", ws.key("pymod")).await;
    let hello = m.next().await;
    assert_eq!(hello["type"], "challenge");
    let challenge = hello["challenge"].as_str().unwrap().to_owned();
    let refused = m.start().await;
    assert_eq!(refused["type"], "protocol_error", "{refused}");
    m.challenge = Some(challenge);
    assert_eq!(m.start().await["status"], "recognized");
    // Another connection's challenge does not do.
    let mut n = ModuleClient::connect(&host, "other", ws.key("other")).await;
    let theirs = n.next().await;
    n.challenge = m.challenge.clone();
    assert_ne!(theirs["challenge"], json!(m.challenge));
    assert_eq!(n.start().await["type"], "protocol_error");
}

#[tokio::test]
async fn modules_message_each_other_with_host_stamped_origins() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    let mut a = ModuleClient::connect(&host, "alpha", ws.key("alpha")).await;
    let mut b = ModuleClient::connect(&host, "beta", ws.key("beta")).await;
    a.start().await;
    b.start().await;
    let (text, rid) = a.frame(&[
        ("type", json!("message_module")),
        ("to", json!("beta")),
        ("text", json!("hi")),
    ]);
    a.send_text(&text).await;
    let got = b.next().await;
    assert_eq!(
        (
            got["type"].clone(),
            got["origin"].clone(),
            got["text"].clone()
        ),
        (json!("message_module"), json!("alpha"), json!("hi"))
    );
    let rid_b = got["resolve_id"].as_str().unwrap().to_owned();
    // beta answers under alpha's resolve_id, as sse-platform's modules
    // do; the host relays it to alpha.
    let inner = [
        ("type", json!("message_module_response")),
        ("to", json!("alpha")),
        ("text", json!("hello")),
    ];
    let answer = ModuleClient::frame_with_id(&b.key, "beta", &inner, &rid_b);
    b.send_text(&answer).await;
    let back = a.answer_to(&rid).await;
    assert_eq!(
        (
            back["type"].clone(),
            back["origin"].clone(),
            back["text"].clone()
        ),
        (
            json!("message_module_response"),
            json!("beta"),
            json!("hello")
        )
    );
    let offline = a
        .request(&[("type", json!("message_module")), ("to", json!("gamma"))])
        .await;
    assert_eq!(offline["reason"], "module_offline");
}
