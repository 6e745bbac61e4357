//! Screenshots of the storefront and the seller page (issue 20), made with
//! the browser tests' headless Chromium: `scripts/screenshots.sh`, or
//!
//! ```text
//! cargo run --example screenshots -- --out docs/screenshots
//! ```
//!
//! Boots a node in this process on 127.0.0.1 port 0 with a temporary data
//! directory, seeds a small shop through the public HTTP API (`seed.rs`),
//! then saves home, search, item, cart, checkout, order and seller at a
//! desktop width (1280) and a phone width (375): `{page}-{desktop|phone}.png`.
//! Everything it starts (the node, chromedriver and Chromium, the temp
//! directory) is stopped and removed before it exits.

mod art;
mod catalog;
mod cdp;
// The browser tests' WebDriver session (finding chromedriver and Chromium,
// waiting for `data-test` hooks), reused as it is.
#[allow(dead_code)]
#[path = "../../tests/api/browser/mod.rs"]
mod browser;
mod seed;
mod shoot;

/// What the browser harness expects from the tests' `nats` module.
mod nats {
    /// A port free on 127.0.0.1 now.
    pub fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener.local_addr().expect("local addr").port()
    }
}

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use agora::config::Settings;
use agora::node::{Listeners, Node};
use anyhow::Context;

use browser::Browser;
use shoot::{Shooter, Width};

const WIDTHS: [Width; 2] = [
    Width {
        label: "desktop",
        pixels: 1280,
        max_height: 1400,
    },
    Width {
        label: "phone",
        pixels: 375,
        max_height: 1600,
    },
];

/// `--out DIR` (default `docs/screenshots`).
fn out_dir() -> anyhow::Result<PathBuf> {
    let mut args = std::env::args().skip(1);
    let mut out = PathBuf::from("docs/screenshots");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().context("--out needs a directory")?.into(),
            other => anyhow::bail!("unknown argument {other:?} (takes --out DIR)"),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    match run().await {
        Ok(()) => {
            println!("done in {:.1} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("screenshots failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let out = out_dir()?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let data = tempfile::tempdir()?;
    let settings = Settings {
        http: "127.0.0.1:0".parse()?,
        data_dir: data.path().join("node"),
        rate_limit_per_sec: 0,
        ..Settings::default()
    };
    let listeners = Listeners::bind(&settings)?;
    let base = format!("http://{}", listeners.local_addr());
    let node = Node::start(settings).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listeners.serve(node, || {}, async move {
        let _ = stopped.await;
    }));
    println!("serving on {base}");
    let shot = shoot_all(&base, &out).await;
    let _ = stop.send(());
    server.await??;
    drop(data);
    shot
}

/// Seeds the shop, then takes every page at every width.
async fn shoot_all(base: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let shop = seed::seed(&seed::Api::new(base)).await?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    let browser = Browser::open(WIDTHS[0].pixels)
        .await
        .context("no chromedriver/chromium: install Debian's chromium and chromium-driver")?;
    let shooter = Shooter {
        browser: &browser,
        base,
        out,
        started: Instant::now(),
    };
    let mut result = Ok(());
    for (i, width) in WIDTHS.iter().enumerate() {
        result = shooter.pages(&shop, width, i == 0).await;
        if result.is_err() {
            break;
        }
    }
    browser.close().await;
    result
}
