//! The event log's archive: events every consumer has handled leave sled
//! for gzip JSON-lines segments; the export, the recommender's rebuild and
//! the consumers read archive and live log as one; a crash between a
//! segment and its trim loses and duplicates nothing; a paused recommender
//! holds the archive back.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};

use crate::helpers::{eventually, run_output, run_to_exit, TestApp};
use crate::recommend::{buy, caught_up, ids, list, recommendations, related};
use crate::shop::server;

/// Settings of a node that archives every second, keeping `keep` events.
fn archiving(keep: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("AGORA_PAYMENT_LATENCY_MS", "0"),
        ("AGORA_EVENT_ARCHIVE_SECS", "1"),
        ("AGORA_EVENT_LOG_KEEP", keep),
        ("AGORA_EVENT_ARCHIVE_MIN_EVENTS", "1"),
    ]
}

/// A gauge from `/metrics` (`None` until first set).
async fn metric(app: &TestApp, name: &str) -> Option<u64> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .map(|value| value as u64)
}

async fn newest(app: &TestApp) -> u64 {
    app.get_json("/ready").await["events"]["newest"]
        .as_u64()
        .unwrap()
}

fn node_dir(app: &TestApp) -> PathBuf {
    app.data_dir().join("node")
}

fn archive_dir(app: &TestApp) -> PathBuf {
    node_dir(app).join("archive").join("events")
}

/// The archive's segment files, in name order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(".jsonl.gz"));
    files.sort();
    files
}

/// Every line of the segments, decompressed and parsed.
fn archived_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for path in segments(dir) {
        let file = std::fs::File::open(&path).unwrap();
        for line in BufReader::new(MultiGzDecoder::new(file)).lines() {
            let line = line.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            lines.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    lines
}

/// `agora events export` of the stopped node, parsed.
fn export(app: &TestApp) -> Vec<Value> {
    let node = node_dir(app);
    let (status, stdout, stderr) = run_output(
        app.data_dir(),
        &["events", "export", "--data-dir", node.to_str().unwrap()],
    );
    assert!(status.success(), "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn seqs(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect()
}

/// `agora recommendations rebuild` of the stopped node; its output.
fn rebuild(app: &TestApp) -> String {
    let node = node_dir(app);
    let (status, output) = run_to_exit(
        app.data_dir(),
        &[
            "recommendations",
            "rebuild",
            "--data-dir",
            node.to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success(), "{output}");
    output
}

/// A seller's three items and four buyers' orders of them.
async fn shop(app: &TestApp) -> (Vec<String>, String) {
    let seller = app.user_token("seller").await;
    let a = list(app, &seller, "Arc Lamp", "lamps", "Lumo", 100).await;
    let b = list(app, &seller, "Bright Bulb", "bulbs", "Lumo", 100).await;
    let c = list(app, &seller, "Cone Lamp", "lamps", "Other", 100).await;
    let buyers: Vec<String> =
        futures::future::join_all((0..4).map(|_| app.user_token("buyer"))).await;
    buy(app, &buyers[0], &[&a, &b]).await;
    buy(app, &buyers[1], &[&a, &b]).await;
    buy(app, &buyers[2], &[&a, &c]).await;
    buy(app, &buyers[3], &[&b]).await;
    (vec![a, b, c], buyers[3].clone())
}

/// What a shopper sees of the recommendations: popular, related to each
/// item (with bought-together counts), and one buyer's personal picks.
async fn seen(app: &TestApp, items: &[String], buyer: &str) -> Value {
    let mut related_lists = Vec::new();
    for item in items {
        let list: Vec<Value> = related(app, item)
            .await
            .iter()
            .map(|i| json!([i["id"], i["reason"], i["boughtTogether"]]))
            .collect();
        related_lists.push(list);
    }
    json!({
        "popular": ids(&recommendations(app, None, 10).await),
        "related": related_lists,
        "personal": ids(&recommendations(app, Some(buyer), 10).await),
    })
}

#[tokio::test]
async fn handled_events_leave_sled_for_the_archive_and_every_reader_still_sees_the_whole_log() {
    let mut app = server(&archiving("5")).await;
    let (items, buyer) = shop(&app).await;
    caught_up(&app).await;
    let newest = newest(&app).await;
    assert!(newest > 20, "enough events to archive: {newest}");
    eventually(
        "every handled event but the newest 5 is archived",
        || async { metric(&app, "agora_event_log_archived_through").await == Some(newest - 5) },
    )
    .await;
    eventually("the trim follows the segment", || async {
        metric(&app, "agora_event_log_live_events").await == Some(5)
    })
    .await;
    let before = seen(&app, &items, &buyer).await;
    assert_eq!(before["related"][0][0][2], 2, "{before}");
    app.terminate();

    // sled holds only the newest 5; the rest is in segment files.
    let node = node_dir(&app);
    let (status, stdout, stderr) = run_output(
        app.data_dir(),
        &["events", "stats", "--data-dir", node.to_str().unwrap()],
    );
    assert!(status.success(), "{stderr}");
    let stats: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["liveEvents"], 5, "{stats}");
    assert_eq!(stats["firstLive"], newest - 4, "{stats}");
    assert_eq!(stats["archivedThrough"], newest - 5, "{stats}");
    assert!(stats["segments"].as_u64().unwrap() >= 1, "{stats}");

    // Private like the rest of the data directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| path.metadata().unwrap().permissions().mode() & 0o777;
        let dir = archive_dir(&app);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
        for segment in segments(&dir) {
            assert_eq!(mode(&segment), 0o600, "{}", segment.display());
        }
    }

    // The segments: gzip JSON lines, in the export's format, from 1 on.
    let archived = archived_lines(&archive_dir(&app));
    assert_eq!(seqs(&archived), (1..=newest - 5).collect::<Vec<_>>());
    let confirmed: Vec<&Value> = archived
        .iter()
        .filter(|l| l["type"] == "order.updated" && l["data"]["status"] == "CONFIRMED")
        .collect();
    assert!(!confirmed.is_empty());
    assert!(confirmed.iter().all(|l| l["data"]["lines"].is_array()));

    // The export: archive and live log as one, every event once, in order;
    // the archived part exactly as archived.
    let exported = export(&app);
    assert_eq!(seqs(&exported), (1..=newest).collect::<Vec<_>>());
    assert_eq!(exported[..archived.len()], archived[..]);

    // A rebuild from scratch sees every event and gives the same
    // recommendations (served by a node that does not consume).
    let output = rebuild(&app);
    assert!(
        output.contains(&format!("recommendations rebuilt: {newest} events")),
        "{output}"
    );
    let app = app.restart_with(&[("AGORA_RECOMMENDER_PAUSED", "true")]);
    assert_eq!(seen(&app, &items, &buyer).await, before);
}

#[tokio::test]
async fn a_segment_written_but_not_yet_trimmed_is_neither_lost_nor_duplicated() {
    let mut app = server(&[
        ("AGORA_PAYMENT_LATENCY_MS", "0"),
        ("AGORA_EVENT_ARCHIVE_SECS", "0"),
    ])
    .await;
    let (items, buyer) = shop(&app).await;
    caught_up(&app).await;
    let newest = newest(&app).await;
    let before = seen(&app, &items, &buyer).await;
    app.terminate();

    // What a pass killed after a segment's rename and before its trim
    // leaves: the segment, the same events still in sled, and the next
    // segment half-written under its temporary name.
    let half = newest / 2;
    let everything = export(&app);
    let dir = archive_dir(&app);
    std::fs::create_dir_all(&dir).unwrap();
    let segment = dir.join(format!("events-{:020}-{half:020}.jsonl.gz", 1));
    let mut gzip = flate2::write::GzEncoder::new(
        std::fs::File::create(&segment).unwrap(),
        flate2::Compression::default(),
    );
    for line in &everything[..half as usize] {
        writeln!(gzip, "{line}").unwrap();
    }
    gzip.finish().unwrap();
    let temporary = dir.join(format!("events-{:020}-{newest:020}.jsonl.gz.tmp", half + 1));
    std::fs::write(&temporary, b"\x1f\x8b half a segment").unwrap();

    let exported = export(&app);
    assert_eq!(
        seqs(&exported),
        (1..=newest).collect::<Vec<_>>(),
        "nothing duplicated, nothing lost"
    );
    assert_eq!(exported, everything);
    let output = rebuild(&app);
    assert!(
        output.contains(&format!("recommendations rebuilt: {newest} events")),
        "{output}"
    );

    // The next start's pass finishes the trim and removes the half segment;
    // the log goes on where it was.
    let app = app.restart_with(&[
        ("AGORA_EVENT_ARCHIVE_SECS", "1"),
        ("AGORA_EVENT_ARCHIVE_MIN_EVENTS", "1"),
        ("AGORA_EVENT_LOG_KEEP", "1000000"),
    ]);
    eventually("the archived events are trimmed from sled", || async {
        metric(&app, "agora_event_log_live_events").await == Some(newest - half)
    })
    .await;
    assert!(!temporary.exists());
    assert_eq!(seen(&app, &items, &buyer).await, before);
    let another = app.user_token("buyer").await;
    buy(&app, &another, &[&items[2]]).await;
    caught_up(&app).await;
    let after = self::newest(&app).await;
    assert!(after > newest);
    let mut app = app;
    app.terminate();
    assert_eq!(seqs(&export(&app)), (1..=after).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_paused_recommender_holds_the_archive_back_until_it_has_caught_up() {
    let mut settings = archiving("1");
    settings.push(("AGORA_RECOMMENDER_PAUSED", "true"));
    let app = server(&settings).await;
    shop(&app).await;
    let newest = newest(&app).await;
    eventually("a pass ran after the last event", || async {
        metric(&app, "agora_event_log_live_events").await == Some(newest)
    })
    .await;
    assert_eq!(
        metric(&app, "agora_event_log_archived_through").await,
        Some(0)
    );
    assert!(segments(&archive_dir(&app)).is_empty());
    // The operator is told who holds the log back.
    eventually("the hold is logged", || async {
        let logs = app.logs();
        logs.contains("a consumer holds it back") && logs.contains("recommender")
    })
    .await;

    let app = app.restart_with(&[("AGORA_RECOMMENDER_PAUSED", "false")]);
    caught_up(&app).await;
    eventually("archived once the recommender has the events", || async {
        metric(&app, "agora_event_log_archived_through").await == Some(newest - 1)
    })
    .await;
    assert!(!segments(&archive_dir(&app)).is_empty());
}

#[tokio::test]
async fn a_node_killed_while_it_archives_loses_and_duplicates_nothing() {
    let mut app = server(&archiving("1")).await;
    let (items, _) = shop(&app).await;
    // Checkouts keep coming while passes run every second; the kill lands
    // wherever a pass happens to be.
    for round in 0..3 {
        let buyer = app.user_token("buyer").await;
        buy(&app, &buyer, &[&items[round % 3]]).await;
        eventually("a pass archives the new events", || async {
            metric(&app, "agora_event_log_archived_through")
                .await
                .is_some_and(|through| through > 0)
        })
        .await;
    }
    app.kill9();
    let mut app = app.restart();
    caught_up(&app).await;
    let newest = newest(&app).await;
    eventually("the restarted node archives again", || async {
        metric(&app, "agora_event_log_archived_through").await == Some(newest - 1)
    })
    .await;
    app.terminate();
    assert_eq!(seqs(&export(&app)), (1..=newest).collect::<Vec<_>>());
    let output = rebuild(&app);
    assert!(
        output.contains(&format!("recommendations rebuilt: {newest} events")),
        "{output}"
    );
}
