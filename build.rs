//! Lists the integration tests for their harness (`tests/it/harness.rs`): every top-level
//! `fn NAME() {` of a file in `tests/it/` is a test, named `FILE::NAME`, with the attributes
//! written above it (a `#[cfg(unix)]`). For each such file this writes `it_FILE.rs`, which
//! the file includes, and `it_all.rs`, which `main.rs` includes. A file with tests that does
//! not include its list is an error here, so no test is ever left out.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("tests/it");
    println!("cargo:rerun-if-changed=tests/it");
    let Ok(entries) = std::fs::read_dir(dir) else {
        // A package without its tests (a published crate) builds without them.
        return;
    };
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let out = Path::new(&out);
    let mut files: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rs") && n != "main.rs")
        .collect();
    files.sort();
    let mut all = String::from(
        "/// Every integration test, module by module (written by build.rs).\npub fn all() -> Vec<harness::Test> {\n    let mut all = Vec::new();\n",
    );
    for file in files {
        let module = file.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        let tests = tests_of(&text);
        if tests.is_empty() {
            continue;
        }
        let include = format!("include!(concat!(env!(\"OUT_DIR\"), \"/it_{module}.rs\"));");
        assert!(
            text.contains(&include),
            "tests/it/{file} has tests but does not end with `{include}`, so they would not run"
        );
        let mut list = String::from(
            "/// This module's tests, for the harness (written by build.rs from this file).\n#[allow(unused_mut, clippy::vec_init_then_push)]\npub(crate) fn tests() -> Vec<crate::harness::Test> {\n    let mut tests = Vec::new();\n",
        );
        for (name, attrs) in tests {
            for a in attrs {
                let _ = writeln!(list, "    {a}");
            }
            let _ = writeln!(
                list,
                "    tests.push(crate::harness::Test::new(\"{module}::{name}\", {name}));"
            );
        }
        list.push_str("    tests\n}\n");
        let _ = std::fs::write(out.join(format!("it_{module}.rs")), list);
        let _ = writeln!(all, "    all.extend({module}::tests());");
    }
    all.push_str("    all\n}\n");
    let _ = std::fs::write(out.join("it_all.rs"), all);
}

/// The tests of one file: each top-level `fn NAME() {`, with the attribute lines above it.
fn tests_of(text: &str) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line
            .strip_prefix("fn ")
            .and_then(|r| r.strip_suffix("() {"))
            .filter(|n| {
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
        else {
            continue;
        };
        let attrs = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.starts_with("#["))
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        found.push((name.to_string(), attrs));
    }
    found
}
