//! `examples/browser/` (issue 16 item 7): served by nothing but a static
//! file server, the page loads with its script, every element the script
//! looks up is on the page, and the script is valid JavaScript (`node
//! --check`, when node is installed).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("examples/browser")
}

/// A static file server for `dir`: `GET /x` answers the file `dir/x`
/// (`/` is `index.html`), anything else 404. Nothing modhost-specific.
async fn serve(dir: PathBuf) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/");
                let name = if path == "/" {
                    "index.html"
                } else {
                    &path[1..]
                };
                let file = (!name.contains("..")).then(|| dir.join(name));
                let (status, kind, body) = match file.and_then(|f| std::fs::read(&f).ok()) {
                    Some(body) if name.ends_with(".js") => ("200 OK", "text/javascript", body),
                    Some(body) => ("200 OK", "text/html; charset=utf-8", body),
                    None => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    addr
}

async fn get(url: &str) -> (u16, String) {
    let resp = crate::harness::http().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_page_loads_from_a_static_server_with_its_script() {
    let addr = serve(folder()).await;
    let (status, page) = get(&format!("http://{addr}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"app.js\"></script>"), "{page}");
    let (status, script) = get(&format!("http://{addr}/app.js")).await;
    assert_eq!(status, 200);
    assert!(
        script.contains("\"modhost.v1\""),
        "the page speaks modhost.v1"
    );

    // Every `$("id")` the script uses is an element of the page.
    let ids: Vec<&str> = script
        .split("$(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(ids.len() > 8, "{ids:?}");
    for id in ids {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "app.js uses #{id}, which index.html does not have"
        );
    }
}

#[test]
fn the_script_is_valid_javascript() {
    let script = folder().join("app.js");
    match std::process::Command::new("node")
        .arg("--check")
        .arg(&script)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "node --check {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("SKIPPED: node is not installed ({e}); app.js not syntax-checked"),
    }
}
