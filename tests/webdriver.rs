//! A small W3C WebDriver client over reqwest, for `admin_browser`: it
//! starts `chromedriver` on a free port (its process group killed on drop,
//! Chromium with it) and drives headless Chromium with a fresh profile in
//! a temp folder. A few JSON requests do what the test needs, so no
//! WebDriver crate (and its HTTP and TLS stack) is built for one test.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where a program is: `/usr/bin/<name>`, else on `PATH`.
fn find(name: &str) -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin").join(name);
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A browser session on a `chromedriver` this test started.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Headless Chromium through chromedriver; `None` (after printing why)
    /// when either is missing, except under `CI=true`, where that fails.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (find("chromium"), find("chromedriver")) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium or chromedriver is not installed, and CI=true: install them (apt-get install chromium chromium-driver; .ci/run does)"
            );
            println!(
                "SKIPPED: chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Everything that may fail is made before chromedriver starts: once
        // it runs, the `Browser` that kills it on drop owns it.
        let http = crate::harness::http();
        let profile = tempfile::Builder::new()
            .prefix("modhost-chromium-")
            .tempdir()
            .unwrap();
        let driver = {
            use std::os::unix::process::CommandExt as _;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http,
            profile,
        };
        browser.wait_ready().await;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The window: its viewport, which screenshots show, is 1200×800.
            "--window-size=1200,943",
            &format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created = browser.send("POST", "/session", Some(caps)).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Some(browser)
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .http
                .get(format!("{}/status", self.base))
                .send()
                .await
                .ok();
            if let Some(resp) = ready
                && let Ok(status) = resp.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A WebDriver command: its `value`, or `Err` with the error object.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let resp = req.send().await.expect("chromedriver answers");
        let ok = resp.status().is_success();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(answer["value"].clone())
        } else {
            Err(answer["value"].clone())
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.send("POST", &self.path("/url"), Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        let url = self.send("GET", &self.path("/url"), None).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    async fn elements(&self, css: &str) -> Vec<String> {
        let found = self
            .command(
                "POST",
                &self.path("/elements"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .unwrap_or_default();
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    /// The text of the first element matching `css`, waiting up to 60 s
    /// for one (the page refreshes its view every 2 s).
    pub async fn wait_text(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = self.elements(css).await.first() {
                let text = self
                    .command("GET", &self.path(&format!("/element/{id}/text")), None)
                    .await;
                // Replaced by a refresh between the two requests: look again.
                if let Ok(text) = text {
                    return text.as_str().unwrap_or_default().to_owned();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {css} on {} after 60 s",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.wait_text(css).await;
        let id = self.elements(css).await.remove(0);
        self.send(
            "POST",
            &self.path(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the first element matching `css`, once it exists; again if
    /// a refresh replaced it under the click.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = self.elements(css).await.first() {
                let path = self.path(&format!("/element/{id}/click"));
                match self.command("POST", &path, None).await {
                    Ok(_) => return,
                    Err(e) if e["error"] == "stale element reference" => {}
                    Err(e) => panic!("clicking {css}: {e}"),
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing to click at {css} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport, saved as `file`.
    pub async fn screenshot(&self, file: &Path) {
        let png = self.send("GET", &self.path("/screenshot"), None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }

    /// Ends the session (Chromium exits); the driver goes on drop.
    pub async fn quit(self) {
        let _ = self.command("DELETE", &self.path(""), None).await;
    }
}
