//! The layer rule, checked by a tool: every module of `src/` may import only
//! from the layers below it (and from itself). The table is ARCHITECTURE.md's:
//!
//! ```text
//!  edges     cli (anything below)   gateway (engine and below)   ui (console and domain only)
//!  console   the console's service layer (engine and below)
//!  engine    router, ledger, health, migrations, analytics (adapters and domain)
//!  adapters  store, vault, providers, sim (domain only; never each other)
//!  domain    pure types and rules (nothing)
//! ```
//!
//! An import is any `crate::<module>` path in code (comments are skipped),
//! including the names inside `use crate::{a, b::c}`. The self-tests below run
//! the checker on a small tree with a deliberate upward import and show that it
//! fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules each top-level module may import from (besides itself).
fn allowed(module: &str) -> Option<&'static [&'static str]> {
    const ADAPTERS: &[&str] = &["domain"];
    Some(match module {
        "domain" => &[],
        "store" | "vault" | "providers" | "sim" => ADAPTERS,
        "engine" => &["domain", "store", "vault", "providers", "sim"],
        "console" => &["domain", "store", "vault", "providers", "sim", "engine"],
        "gateway" => &["domain", "store", "vault", "providers", "sim", "engine"],
        "ui" => &["domain", "console"],
        "cli" => &["domain", "store", "vault", "providers", "sim", "engine", "console", "gateway", "ui"],
        _ => return None,
    })
}

/// One import that breaks the rule: file, line, importing module, imported module.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The top-level modules named by `crate::` paths in one line of code.
fn imported_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `switchboard_crate::x` or `mycrate::x` are not this crate.
        let before = rest[..i].chars().last();
        let after = &rest[i + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each item at depth 0.
            let mut depth = 0usize;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if item_start && !name.is_empty() => {
                        out.push(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.push(name);
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// Lines of code with comments removed (line comments, doc comments and
/// block comments; string contents are kept, which is harmless here).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (n, line) in text.lines().enumerate() {
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(i) => {
                        rest = &rest[i + 2..];
                        in_block = false;
                    }
                    None => break,
                }
            } else {
                let line_c = rest.find("//");
                let block_c = rest.find("/*");
                match (line_c, block_c) {
                    (Some(l), b) if b.is_none_or(|b| l < b) => {
                        code.push_str(&rest[..l]);
                        break;
                    }
                    (_, Some(b)) => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    _ => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        out.push((n + 1, code));
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Checks every module under `src`: the violations, and the top-level modules
/// the table does not know (a new module must be placed in a layer).
fn check(src: &Path) -> (Vec<Violation>, BTreeSet<String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut violations = Vec::new();
    let mut unknown = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        let mut parts = rel.components();
        let first = parts.next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        // lib.rs and main.rs sit above every layer.
        if rel.components().count() == 1 && (first == "lib.rs" || first == "main.rs") {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let Some(ok) = allowed(&module) else {
            unknown.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (line, code) in code_lines(&text) {
            for to in imported_modules(&code) {
                if to != module && !ok.contains(&to.as_str()) {
                    violations.push(Violation { file: rel.display().to_string(), line, from: module.clone(), to });
                }
            }
        }
    }
    violations.sort();
    (violations, unknown)
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (violations, unknown) = check(&src);
    assert!(unknown.is_empty(), "modules not placed in a layer (add them to tests/layers.rs and ARCHITECTURE.md): {unknown:?}");
    let report: Vec<String> =
        violations.iter().map(|v| format!("{}:{}: `{}` imports from `{}`, a layer it may not use", v.file, v.line, v.from, v.to)).collect();
    assert!(report.is_empty(), "layer rule broken:\n{}", report.join("\n"));
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn the_layer_check_fails_on_a_deliberate_upward_import() {
    let dir = tree(&[
        ("lib.rs", "pub mod domain; pub mod store; pub mod engine; pub mod ui;\n"),
        ("domain/mod.rs", "//! Pure.\npub struct Id;\n"),
        ("store/mod.rs", "//! Store.\nuse crate::domain::Id;\nuse crate::engine::Router; // upward\n"),
        ("engine/mod.rs", "//! Engine.\nuse crate::{domain::Id, store};\npub struct Router;\n"),
        ("ui/mod.rs", "//! UI.\nfn f() { let _ = crate::store::open(); }\n"),
    ]);
    let (violations, unknown) = check(dir.path());
    assert!(unknown.is_empty());
    assert_eq!(
        violations,
        vec![
            Violation { file: "store/mod.rs".into(), line: 3, from: "store".into(), to: "engine".into() },
            Violation { file: "ui/mod.rs".into(), line: 2, from: "ui".into(), to: "store".into() },
        ]
    );
}

#[test]
fn the_layer_check_reads_groups_and_skips_comments() {
    assert_eq!(imported_modules("use crate::{domain::{a, b}, store::X, engine};"), vec!["domain", "store", "engine"]);
    assert_eq!(imported_modules("let x = crate::vault::Vault::new(crate::domain::Id);"), vec!["vault", "domain"]);
    assert_eq!(imported_modules("use other_crate::engine::X;"), Vec::<String>::new());
    let lines = code_lines("use crate::domain; // see crate::engine\n/* crate::ui\n crate::cli */ use crate::store;\n/// crate::gateway\n");
    let found: Vec<String> = lines.iter().flat_map(|(_, c)| imported_modules(c)).collect();
    assert_eq!(found, vec!["domain", "store"]);
    // A module the table does not know is reported, not ignored.
    let dir = tree(&[("newthing/mod.rs", "use crate::domain::X;\n")]);
    assert_eq!(check(dir.path()).1.into_iter().collect::<Vec<_>>(), vec!["newthing".to_string()]);
}
