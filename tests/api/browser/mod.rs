//! A real browser for the storefront's tests: headless Chromium driven
//! through chromedriver (WebDriver) with fantoccini.
//!
//! The binaries are found through `CHROMEDRIVER` and `CHROME`, then on
//! `PATH` (`chromedriver`; `chromium`, `chromium-browser`, `google-chrome`).
//! Outside CI a machine without them skips the browser tests with a line
//! saying so; in CI (`CI` set) a missing browser fails them, since `.ci/run`
//! installs Debian's `chromium` and `chromium-driver`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::nats::free_port;

/// How long a page may take to show what a test waits for.
pub const BOUND: Duration = Duration::from_secs(20);

/// A headless Chromium session, with the chromedriver it runs under.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

/// `name` on `PATH`, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// The first of `names` found (`var` first).
fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    names.iter().find_map(|name| on_path(name))
}

impl Browser {
    /// A fresh browser at a `width`×900 window, or `None` (after saying
    /// why) when this machine has none and this is not CI.
    pub async fn open(width: u32) -> Option<Browser> {
        let driver = find("CHROMEDRIVER", &["chromedriver"]);
        let chrome = find("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
        let (Some(driver), Some(chrome)) = (driver, chrome) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no chromedriver/chromium found: .ci/run installs Debian's chromium and chromium-driver"
            );
            eprintln!("skipped: no chromedriver and chromium here (set CHROMEDRIVER/CHROME, or install Debian's chromium-driver)");
            return None;
        };
        // Two TLS providers are linked (fantoccini's and NATS's): pick one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let port = free_port();
        // Its own process group, with the Chromium it starts, so a test
        // that panics takes the whole browser down with it (see `Drop`).
        let child = Command::new(&driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let mut browser = None;
        let started = Instant::now();
        let mut options = json!({
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={width},900")],
        });
        // A window is never narrower than 500 px: a phone is emulated (its
        // viewport, its meta viewport handling, touch), as DevTools does.
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": 812, "pixelRatio": 2.0,
                                  "mobile": true, "touch": true},
            });
        }
        let capabilities = json!({
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        while browser.is_none() && started.elapsed() < BOUND {
            match ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => browser = Some(client),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = browser.expect("chromedriver answered within the bound");
        Some(Browser {
            client,
            driver: child,
        })
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The element with `data-test="name"`, once it exists.
    pub async fn hook(&self, name: &str) -> Element {
        let selector = format!("[data-test=\"{name}\"]");
        self.client
            .wait()
            .at_most(BOUND)
            .for_element(Locator::Css(&selector))
            .await
            .unwrap_or_else(|e| panic!("no [data-test={name}] within {BOUND:?}: {e}"))
    }

    /// Every element with `data-test="name"` now.
    pub async fn hooks(&self, name: &str) -> Vec<Element> {
        let selector = format!("[data-test=\"{name}\"]");
        self.client
            .find_all(Locator::Css(&selector))
            .await
            .unwrap_or_default()
    }

    /// Types `text` into the `name` field.
    pub async fn type_into(&self, name: &str, text: &str) {
        let started = Instant::now();
        loop {
            let field = self.hook(name).await;
            let typed = match field.clear().await {
                Ok(()) => field.send_keys(text).await,
                Err(e) => Err(e),
            };
            match typed {
                Ok(()) => return,
                // Replaced by a re-render between finding and typing.
                Err(_) if started.elapsed() < BOUND => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("type into [data-test={name}]: {e}"),
            }
        }
    }

    /// Types `text` into the `name` field after what it holds.
    pub async fn type_into_more(&self, name: &str, text: &str) {
        self.hook(name).await.send_keys(text).await.expect("type");
    }

    /// The first `name` element whose text contains `text`, once one does.
    pub async fn first_hook_containing(&self, name: &str, text: &str) -> Element {
        let started = Instant::now();
        while started.elapsed() < BOUND {
            for element in self.hooks(name).await {
                if element.text().await.unwrap_or_default().contains(text) {
                    return element;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no [data-test={name}] containing {text:?} within {BOUND:?}");
    }

    /// Waits until there are `count` `name` elements; returns how many.
    pub async fn wait_hooks(&self, name: &str, count: usize) -> usize {
        let started = Instant::now();
        let mut found = 0;
        while started.elapsed() < BOUND {
            found = self.hooks(name).await.len();
            if found == count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    }

    /// Clicks the `name` element. A page that re-renders may replace the
    /// element between finding and clicking it: then it is found again.
    pub async fn click(&self, name: &str) {
        let started = Instant::now();
        loop {
            match self.hook(name).await.click().await {
                Ok(()) => return,
                Err(_) if started.elapsed() < BOUND => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click [data-test={name}]: {e}"),
            }
        }
    }

    /// Waits until the `name` element's text satisfies `wanted`; returns it.
    pub async fn text_until(&self, name: &str, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < BOUND {
            if let Some(element) = self.hooks(name).await.into_iter().next() {
                last = element.text().await.unwrap_or_default();
                if wanted(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("[data-test={name}] never matched within {BOUND:?}; last text {last:?}");
    }

    /// Runs `script` in the page (WebDriver scripts are not bound by the
    /// page's CSP) and returns its value.
    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("script")
    }

    /// The browser console's entries of level `SEVERE` so far.
    pub async fn severe_console_entries(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(SessionCommand {
                path: "se/log",
                body: json!({"type": "browser"}),
            })
            .await
            .unwrap_or(Value::Array(Vec::new()));
        entries
            .as_array()
            .into_iter()
            .flatten()
            // An expected error answer (a 409 the page explains) is logged
            // by Chrome as a network entry; only the page's own count.
            .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A panicking test never reaches `close`: the driver and the
        // browser it started (its process group) must still go.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            // SAFETY: signals only the process group this harness created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
    }
}

/// A chromedriver command beyond WebDriver's own: `POST
/// /session/{id}/{path}` with a JSON `body` (`se/log` for the browser
/// console here, `goog/cdp/execute` for DevTools in the screenshot tool).
#[derive(Debug)]
pub struct SessionCommand {
    /// After `session/{id}/`.
    pub path: &'static str,
    /// The JSON body.
    pub body: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
