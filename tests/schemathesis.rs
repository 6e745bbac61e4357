//! Schemathesis over the server's own `/openapi.json`: every check, as a
//! seller, a buyer and an anonymous caller, must finish with no failure, so
//! the document tells the truth about every route (statuses, required
//! fields, parameter types and ranges, response shapes).
//!
//! Needs the `st` command of schemathesis 4.x (`.ci/run` installs it:
//! `python3 -m pip install 'schemathesis==4.32.5'`). The runs are bounded
//! (`MAX_EXAMPLES` per operation and phase) to a few minutes in all; the
//! settings and the expectations for this API are in `schemathesis.toml`.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use helpers::{mouse, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Test cases per operation and phase: bounds the three runs to two to five
/// minutes here (2 cores, a debug build; the stateful phase's length varies). `SCHEMATHESIS_MAX_EXAMPLES`
/// overrides it for a deeper run by hand.
const MAX_EXAMPLES: &str = "150";
/// The password of both generated accounts.
const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure_as_seller_buyer_or_anonymous() {
    let st = schemathesis_command();
    let app = TestApp::spawn().await;
    let seller = account(&app, "seller").await;
    let buyer = account(&app, "buyer").await;
    let ids = seed_data(&app, &seller, &buyer).await;

    let work = tempfile::TempDir::new().expect("temp dir");
    let mut failed = Vec::new();
    for (who, email) in [
        ("seller", Some(&seller.email)),
        ("buyer", Some(&buyer.email)),
        ("anonymous", None),
    ] {
        let config = write_config(work.path(), who, email.map(String::as_str), &ids);
        let output = run(&st, work.path(), &config, &app.url("/openapi.json"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let cases = stdout
            .lines()
            .find(|l| l.contains(" generated, "))
            .unwrap_or("");
        let last = stdout.lines().last().unwrap_or("");
        println!("schemathesis as {who}: {} {last}", cases.trim());
        if !output.status.success() {
            failed.push(format!(
                "==== schemathesis as {who}: {} ====\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "schemathesis found failures:\n{}\n==== server log ====\n{}",
        failed.join("\n"),
        tail(&app.logs(), 200)
    );
}

/// `st` (or `schemathesis`), checked to run; a missing tool fails the test
/// with how to install it, never a silent pass.
fn schemathesis_command() -> PathBuf {
    for name in ["st", "schemathesis"] {
        let works = Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return PathBuf::from(name);
        }
    }
    panic!(
        "schemathesis is not installed (no `st` on PATH). Install it with \
         `python3 -m pip install 'schemathesis==4.32.5'` (as .ci/run does), then rerun."
    );
}

/// A signed-up account.
struct Account {
    email: String,
    token: String,
}

async fn account(app: &TestApp, role: &str) -> Account {
    let email = format!("{role}-{}@example.com", helpers::ulid_like());
    let created = app.register(&email, PASSWORD, role).await;
    assert_eq!(created.status(), StatusCode::CREATED, "register {role}");
    let session = app.sign_in(&email, PASSWORD).await;
    assert_eq!(session.status(), StatusCode::CREATED, "sign in {role}");
    let body: Value = session.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    Account { email, token }
}

/// Ids of the seeded data, offered to schemathesis alongside generated ones.
struct Seeded {
    items: Vec<String>,
    order: String,
    cart: String,
}

/// Items (one with variants), a wishlist entry, a cart line and an order,
/// so that ids exist and generated requests can reach past "not found".
async fn seed_data(app: &TestApp, seller: &Account, buyer: &Account) -> Seeded {
    let item = app.create_item(&seller.token, &mouse()).await;
    let variants = json!({
        "name": "Desk Lamp", "description": "LED lamp", "price": 2500, "quantity": 0,
        "variants": [
            {"sku": "LAMP-W", "attributes": {"color": "white"}, "quantity": 30},
            {"sku": "LAMP-B", "attributes": {"color": "black"}, "price": 2700, "quantity": 20}
        ]
    });
    let lamp = app.create_item(&seller.token, &variants).await;
    let id = item["id"].as_str().unwrap();
    let wished = app
        .client
        .put(app.url(&format!("/wishlist/{id}")))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(wished.status(), StatusCode::NO_CONTENT, "wishlist");
    let cart = app
        .patch(
            "/cart",
            Some(&buyer.token),
            &json!({"itemId": id, "quantity": 2}),
        )
        .await;
    assert_eq!(cart.status(), StatusCode::OK, "cart");
    let cart: Value = cart.json().await.unwrap();
    let checkout = json!({
        "cartId": cart["id"], "amount": cart["total"],
        "paymentInfo": {"paymentType": "CARD", "cardNo": "4242 4242 4242 4242"}
    });
    let order = app.post("/checkout", Some(&buyer.token), &checkout).await;
    assert!(order.status().is_success(), "checkout: {}", order.status());
    let order: Value = order.json().await.unwrap();
    let line = json!({"itemId": id, "quantity": 1});
    let cart = app.patch("/cart", Some(&buyer.token), &line).await;
    assert_eq!(cart.status(), StatusCode::OK, "cart again");
    let cart: Value = cart.json().await.unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    Seeded {
        items: vec![text(&item["id"]), text(&lamp["id"])],
        order: text(&order["orderId"]),
        cart: text(&cart["id"]),
    }
}

/// The repository's `schemathesis.toml`, plus the seeded ids (used for half
/// the generated values of the parameters that name them), plus, for a
/// signed-in run, a sign-in schemathesis performs itself: it signs in again
/// whenever a token stops working, since the run's own `DELETE /sessions`
/// ends the session.
fn write_config(dir: &Path, who: &str, email: Option<&str>, ids: &Seeded) -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let mut config = std::fs::read_to_string(&base).expect("schemathesis.toml");
    let list = |values: &[&String]| {
        let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
        quoted.join(", ")
    };
    let items: Vec<&String> = ids.items.iter().collect();
    let mut any: Vec<&String> = items.clone();
    any.push(&ids.order);
    config.push_str(&format!(
        "\n[dictionaries.items]\nvalues = [{}]\n\
         \n[dictionaries.ids]\nvalues = [{}]\n\
         \n[dictionaries.carts]\nvalues = [{}]\n\
         \n[parameters]\n\
         \"path.itemId\" = {{ dictionary = \"items\", probability = 0.5 }}\n\
         \"body.itemId\" = {{ dictionary = \"items\", probability = 0.5 }}\n\
         \"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n\
         \"body.cartId\" = {{ dictionary = \"carts\", probability = 0.5 }}\n",
        list(&items),
        list(&any),
        list(&[&ids.cart]),
    ));
    if let Some(email) = email {
        config.push_str(&format!(
            "\n[auth.dynamic.openapi.bearer]\npath = \"/sessions\"\nmethod = \"post\"\n\
             payload = {{ email = \"{email}\", password = \"{PASSWORD}\" }}\n\
             extract_selector = \"/token\"\nretry_on = [401]\n"
        ));
    }
    let path = dir.join(format!("{who}.toml"));
    std::fs::write(&path, config).expect("write config");
    path
}

/// One `st run`, bounded by [`MAX_EXAMPLES`]. Every check runs: schemathesis
/// 4 enables all of them by default, and `--checks all` is left out because
/// on the command line it would override the per-operation settings of
/// `schemathesis.toml`.
fn run(st: &Path, dir: &Path, config: &Path, schema: &str) -> Output {
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or(MAX_EXAMPLES.into());
    Command::new(st)
        .arg("--config-file")
        .arg(config)
        .args(["run", schema, "--max-examples", &examples])
        .args(["--no-color", "--output-truncate", "false"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis")
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
