//! Chrome DevTools commands through chromedriver (`goog/cdp/execute`): an
//! exact viewport (a window's size includes whatever frame the browser
//! draws) and a picture of the page beyond the viewport.

use anyhow::Context;
use base64::Engine;
use fantoccini::Client;
use serde_json::{json, Value};

use crate::browser::SessionCommand;

async fn execute(client: &Client, cmd: &str, params: Value) -> anyhow::Result<Value> {
    client
        .issue_cmd(SessionCommand {
            path: "goog/cdp/execute",
            body: json!({"cmd": cmd, "params": params}),
        })
        .await
        .with_context(|| format!("CDP {cmd}"))
}

/// A `width`×`height` CSS-pixel viewport at scale 1, as a phone (touch,
/// overlay scrollbars) below 600 px, with no scrollbars drawn.
pub async fn viewport(client: &Client, width: u32, height: u32) -> anyhow::Result<()> {
    let params = json!({"width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": width < 600});
    execute(client, "Emulation.setDeviceMetricsOverride", params).await?;
    execute(
        client,
        "Emulation.setScrollbarsHidden",
        json!({"hidden": true}),
    )
    .await?;
    Ok(())
}

/// The page's top `height` CSS pixels at `width`, as PNG bytes.
pub async fn picture(client: &Client, width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let params = json!({"format": "png", "captureBeyondViewport": true,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}});
    let answer = execute(client, "Page.captureScreenshot", params).await?;
    let data = answer["data"].as_str().context("a screenshot")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
}
