//! `agora load`, the load harness, run as a user would: against a test
//! server, each scenario for about a second (correctness of the harness,
//! not speed), its JSON report checked and its claims re-read through the
//! API by the test itself.
//!
//! `agora load` runs the `agora-load` binary beside `agora`: the whole
//! `cargo test` builds it (it is a default workspace member with tests of
//! its own); a filtered run (`cargo test --test api load::`) uses the one
//! already built, so run `cargo build -p agora-load` first after changing it.

use std::io::{BufRead, BufReader};
use std::process::{ExitStatus, Stdio};

use serde_json::{json, Value};

use crate::helpers::{agora_command, eventually, run_output, TestApp};

/// Runs `agora load` against `app` with `args`; (status, report, stderr).
async fn load(app: &TestApp, args: &[&str]) -> (ExitStatus, Value, String) {
    let mut all = vec!["load", "--json", "--target", app.base.as_str()];
    all.extend_from_slice(args);
    let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
    let dir = app.data_dir().to_owned();
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        run_output(&dir, &args)
    })
    .await
    .unwrap();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{stdout}\n{stderr}"));
    (status, report, stderr)
}

/// The report's row for `op`.
fn op<'a>(report: &'a Value, op: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["operation"] == op)
        .unwrap_or_else(|| panic!("no {op} row in {report:#}"))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

/// The run's items, read by the test through search (their tag is the run's).
async fn run_items(app: &TestApp, run: &str, count: usize) -> Vec<Value> {
    let path = format!("/items?term={run}&size=50");
    eventually("the run's items are searchable", || async {
        app.get_json(&path).await["total"].as_u64() == Some(count as u64)
    })
    .await;
    app.get_json(&path).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn every_scenario_runs_bounded_and_its_claims_read_back_through_the_api() {
    let app = TestApp::spawn().await;
    let quick = ["--duration", "1", "--concurrency", "4", "--items", "6"];
    for (scenario, ops) in [
        ("browse", &["item.get", "search"][..]),
        ("cart", &["cart.update", "cart.get"]),
        ("stock", &["stock.update"]),
        ("checkout", &["cart.update", "checkout"]),
        ("websocket", &["checkout", "ws.push"]),
        ("mixed", &["item.get", "search", "checkout"]),
    ] {
        let mut args = vec!["--scenario", scenario, "--sockets", "12"];
        args.extend_from_slice(&quick);
        let (status, report, stderr) = load(&app, &args).await;
        assert!(
            status.success(),
            "{scenario}: {status}\n{report:#}\n{stderr}"
        );
        assert_eq!(report["held"], true, "{scenario}: {report:#}");
        assert!(
            stderr.contains("requests") && stderr.contains("/s"),
            "{scenario}: a progress line on stderr: {stderr}"
        );
        let seconds = report["seconds"].as_f64().unwrap();
        assert!(
            (0.9..20.0).contains(&seconds),
            "{scenario}: ran {seconds} s"
        );
        for name in ops {
            let row = op(&report, name);
            assert!(row["count"].as_u64().unwrap() > 0, "{scenario}: {row}");
            assert_eq!(row["errors"], 0, "{scenario}: {row}");
            assert!(row["p99Ms"].as_f64().unwrap() >= row["p50Ms"].as_f64().unwrap());
        }

        // What the test itself reads back: every unit a checkout took is
        // gone from its item's `available`, and no more.
        let run = report["run"].as_str().unwrap();
        let listed = report["stockPerItem"].as_u64().unwrap();
        let items = run_items(&app, run, report["items"].as_u64().unwrap() as usize).await;
        let taken: u64 = items
            .iter()
            .map(|i| listed - i["available"].as_u64().unwrap())
            .sum();
        if scenario == "stock" {
            let adjusted = op(&report, "stock.update")["outcomes"]["200"]
                .as_u64()
                .unwrap();
            assert_eq!(
                taken, adjusted,
                "each acknowledged adjustment took one unit"
            );
        } else if scenario == "browse" || scenario == "cart" {
            assert_eq!(
                taken, 0,
                "{scenario}: nothing is reserved by browsing or carts"
            );
        } else {
            let confirmed = report["checkouts"]["confirmed"].as_u64().unwrap();
            assert!(confirmed > 0, "{scenario}: {report:#}");
            assert_eq!(
                report["checkouts"]["ordersByStatus"]["CONFIRMED"], confirmed,
                "{scenario}"
            );
            // Mixed checkouts buy whatever cart churn left, so at least one each.
            if scenario == "mixed" {
                assert!(
                    taken >= confirmed,
                    "{scenario}: {taken} units, {confirmed} orders"
                );
            } else {
                assert_eq!(taken, confirmed, "{scenario}: one unit per checkout");
            }
        }
        if scenario == "websocket" {
            assert_eq!(report["sockets"]["opened"], 12);
            let pushed = check(&report, "every confirmation pushed to its buyer's sockets");
            assert_eq!(pushed["held"], true, "{pushed}");
        }
        if scenario == "cart" {
            let carts = check(&report, "carts hold what was set");
            assert_eq!(carts["held"], true, "{carts}");
        }
    }

    // Without --json, the table people read; two targets (the same node
    // twice here) are both loaded.
    let targets = format!("{0},{0}", app.base);
    let (status, table, stderr) = run_output(
        app.data_dir(),
        &[
            "load",
            "--scenario",
            "stock",
            "--duration",
            "1",
            "--concurrency",
            "2",
            "--target",
            &targets,
        ],
    );
    assert!(status.success(), "{table}\n{stderr}");
    for expected in [
        "operation",
        "p99 ms",
        "stock.update",
        "200 ×",
        &format!("against {0}, {0}", app.base),
        "invariants:",
        "[held  ] stock conserved",
    ] {
        assert!(table.contains(expected), "{expected:?} in:\n{table}");
    }
    assert!(!table.contains("BROKEN"), "{table}");

    // Only machines of one's own: another host is refused before any request.
    let (status, stdout, stderr) = run_output(
        app.data_dir(),
        &[
            "load",
            "--scenario",
            "browse",
            "--target",
            "http://192.0.2.1:80",
        ],
    );
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[tokio::test]
async fn a_flash_sale_confirms_exactly_the_stock() {
    let app = TestApp::spawn().await;
    let (status, report, stderr) = load(
        &app,
        &[
            "--scenario",
            "flash-sale",
            "--buyers",
            "30",
            "--stock",
            "10",
            "--concurrency",
            "8",
        ],
    )
    .await;
    assert!(status.success(), "{report:#}\n{stderr}");
    assert_eq!(report["checkouts"]["confirmed"], 10, "{report:#}");
    assert_eq!(report["checkouts"]["ordersByStatus"]["CONFIRMED"], 10);
    let sold = check(&report, "the hot SKU sold exactly its stock");
    assert_eq!(sold["held"], true, "{sold}");
    // 20 buyers were turned away, at the cart or at checkout.
    let turned_away: u64 = ["cart.update", "checkout"]
        .iter()
        .flat_map(|name| op(&report, name)["outcomes"].as_object().unwrap().clone())
        .filter(|(outcome, _)| outcome.starts_with("409"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(turned_away, 20, "{report:#}");
    let items = run_items(&app, report["run"].as_str().unwrap(), 1).await;
    assert_eq!(items[0]["available"], 0, "sold out, read by the test");
}

#[tokio::test]
async fn a_broken_invariant_is_reported_and_fails_the_run() {
    let app = TestApp::spawn().await;
    // A slow sale (open loop, 8 buyers/s), so stock can be added mid-sale by
    // the harness's own seller: more units sell than were listed, which is
    // exactly what the checks must catch.
    let mut child = agora_command(
        app.data_dir(),
        &[
            "load",
            "--json",
            "--target",
            &app.base,
            "--scenario",
            "flash-sale",
            "--buyers",
            "24",
            "--stock",
            "6",
            "--concurrency",
            "4",
            "--rate",
            "8",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tag_tx, tag_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("seeded run ") {
                let _ = tag_tx.send(rest.split(':').next().unwrap_or_default().to_owned());
            }
        }
    });
    let run = tokio::task::spawn_blocking(move || tag_rx.recv().unwrap())
        .await
        .unwrap();
    let signed = app
        .sign_in(
            &format!("{run}-seller@load.agora.test"),
            "load-harness-password",
        )
        .await;
    let seller: Value = signed.json().await.unwrap();
    let seller = seller["token"].as_str().unwrap().to_owned();
    let item = run_items(&app, &run, 1).await.remove(0);
    let restock = app
        .post(
            &format!("/items/{}/stock", item["id"].as_str().unwrap()),
            Some(&seller),
            &json!({"delta": 4}),
        )
        .await;
    assert_eq!(restock.status(), 200);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["held"], false);
    assert_eq!(
        report["checkouts"]["confirmed"], 10,
        "6 listed + 4 restocked"
    );
    for name in [
        "no oversold SKU",
        "stock conserved",
        "the hot SKU sold exactly its stock",
    ] {
        assert_eq!(check(&report, name)["held"], false, "{name}: {report:#}");
    }
    assert_eq!(
        check(&report, "confirmed orders = successful checkouts")["held"],
        true
    );
}

#[tokio::test]
async fn an_open_loop_beyond_the_server_stops_on_time_and_counts_from_the_due_time() {
    let app = TestApp::spawn().await;
    // 5,000 purchases/s asked of 2 workers: far beyond what they can send.
    let (status, report, stderr) = load(
        &app,
        &[
            "--scenario",
            "checkout",
            "--duration",
            "1",
            "--concurrency",
            "2",
            "--items",
            "2",
            "--rate",
            "5000",
        ],
    )
    .await;
    assert!(status.success(), "{report:#}\n{stderr}");
    let seconds = report["seconds"].as_f64().unwrap();
    assert!(
        seconds < 3.0,
        "stopped at the end, not after the backlog: {seconds} s"
    );
    let missed = report["missed"].as_u64().unwrap();
    assert!(
        missed > 1_000,
        "the iterations never sent are reported: {missed}"
    );
    // The purchase counts from when it was due, so the backlog shows in it;
    // the checkout request alone does not carry it.
    let purchase = op(&report, "purchase")["p50Ms"].as_f64().unwrap();
    let checkout = op(&report, "checkout")["p50Ms"].as_f64().unwrap();
    assert!(
        purchase > 2.0 * checkout,
        "purchase p50 {purchase} ms vs checkout p50 {checkout} ms"
    );
    assert_eq!(report["held"], true, "{report:#}");
}
