//! The dependency check: arrows between the server's layers point down only.
//!
//! Every `crate::` and `super::` path in `src/` (tests aside) is resolved to
//! the module it names, and each module belongs to a layer:
//!
//! ```text
//! node → http → services → actors → config, payments, search, telemetry, cluster → storage → domain
//! ```
//!
//! A module may use its own layer's modules and any lower layer's, never a
//! higher one's; and the modules of one layer may not import each other in a
//! circle. `cargo test --test layers` runs just this check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first. A unit is a top-level module of the crate, or for
/// the folders listed in [`SPLIT`] one module inside it.
const LAYERS: &[(&str, &[&str])] = &[
    ("node", &["node", "app"]),
    ("http", &["http"]),
    ("services", &["services"]),
    ("actors", &["actors"]),
    (
        "adapters",
        &["config", "payments", "search", "telemetry", "cluster"],
    ),
    ("storage", &["storage"]),
    ("domain", &["domain"]),
];

/// Folders whose modules are units of their own, so a circle between two of
/// them (a service calling a service that calls it back) is found.
const SPLIT: &[&str] = &["services", "actors"];

/// One import: the file it is in, the line, the unit it names.
#[derive(Debug)]
struct Import {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The module path of a source file: `src/services/cart.rs` → `[services, cart]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The unit a module path belongs to (`services::cart::X` → `services::cart`).
fn unit_of(path: &[String]) -> Option<String> {
    let first = path.first()?;
    if SPLIT.contains(&first.as_str()) {
        match path.get(1) {
            Some(second) => Some(format!("{first}::{second}")),
            None => Some(first.clone()),
        }
    } else {
        Some(first.clone())
    }
}

/// The layer's rank (0 = the top) of a unit, if it is one of ours.
fn rank(unit: &str) -> Option<usize> {
    let top = unit.split("::").next()?;
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&top))
}

/// Code without comments, cut at the first `#[cfg(test)]` (tests aside).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push((n + 1, code.to_owned()));
    }
    out
}

/// The module paths a line names through `crate::` or `super::`, with
/// `crate::{a, b::c}` groups expanded.
fn named_paths(module: &[String], is_mod_rs: bool, code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for (prefix, climbs) in [("crate::", false), ("super::", true)] {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix) {
            let start = from + at;
            from = start + prefix.len();
            let preceded = start > 0
                && (bytes[start - 1].is_ascii_alphanumeric()
                    || bytes[start - 1] == b'_'
                    || (bytes[start - 1] == b':' && !climbs));
            if preceded {
                continue;
            }
            // The base module the path starts from.
            let mut base: Vec<String> = if climbs {
                // `super` of a file `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` too.
                let mut parent = module.to_vec();
                let _ = is_mod_rs;
                parent.pop();
                parent
            } else {
                Vec::new()
            };
            let mut rest = &code[from..];
            while climbs && rest.starts_with("super::") {
                base.pop();
                rest = &rest["super::".len()..];
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push(join(&base, &item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                found.push(join(&base, &item));
            } else {
                found.push(join(&base, rest));
            }
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// `base` followed by the identifiers at the start of `path` (`a::b::C`).
fn join(base: &[String], path: &str) -> Vec<String> {
    let mut out = base.to_vec();
    for segment in path.trim().split("::") {
        let ident: String = segment
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            break;
        }
        out.push(ident);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import between two different units of the crate under `src`.
fn imports(src: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "main.rs" || file.parent() == Some(src) && name == "lib.rs" {
            continue;
        }
        let module = module_path(src, &file);
        let Some(from) = unit_of(&module) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for (line, code) in code_lines(&text) {
            for path in named_paths(&module, name == "mod.rs", &code) {
                let Some(to) = unit_of(&path) else { continue };
                if to != from && rank(&to).is_some() {
                    found.push(Import {
                        file: file.strip_prefix(src).unwrap().display().to_string(),
                        line,
                        from: from.clone(),
                        to,
                    });
                }
            }
        }
    }
    found
}

/// What is wrong with the imports: upward arrows, unplaced units, circles.
fn problems(imports: &[Import]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for import in imports {
        let (Some(from), Some(to)) = (rank(&import.from), rank(&import.to)) else {
            problems.push(format!(
                "{}:{}: {} is in no layer",
                import.file, import.line, import.from
            ));
            continue;
        };
        if to < from {
            problems.push(format!(
                "{}:{}: {} ({}) imports {} ({}), a higher layer",
                import.file, import.line, import.from, LAYERS[from].0, import.to, LAYERS[to].0
            ));
        }
        edges.entry(&import.from).or_default().insert(&import.to);
    }
    // A circle: a unit that reaches itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(next);
                    // Reported once, from its smallest unit.
                    if circle.iter().all(|u| u >= start) {
                        problems.push(format!("import circle: {}", circle.join(" → ")));
                    }
                } else if seen.insert(*next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    problems
}

#[test]
fn no_layer_imports_a_layer_above_it_and_no_units_import_each_other_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = imports(&src);
    assert!(
        found.len() > 100,
        "the check read too few imports ({}) to mean anything",
        found.len()
    );
    let problems = problems(&found);
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_finds_an_upward_import_and_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let file = src.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write("domain/mod.rs", "//! plain\npub struct Id;\n");
    write(
        "storage/mod.rs",
        "//! below services\nuse crate::{domain::Id, services::cart::CartService};\n",
    );
    write("services/cart.rs", "use super::catalog::CatalogService;\n");
    write(
        "services/catalog.rs",
        "use crate::services::cart::CartService;\n",
    );
    write(
        "actors/cart.rs",
        "// a comment naming crate::http is not an import\nuse crate::domain::Id;\n#[cfg(test)]\nmod tests { use crate::http::X; }\n",
    );
    let problems = problems(&imports(src));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("storage/mod.rs:2: storage (storage) imports services::cart"));
    assert!(problems[1].contains("services::cart → services::catalog → services::cart"));
}
