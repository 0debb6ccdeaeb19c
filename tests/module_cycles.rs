//! No crate of the workspace has a cycle among its top-level modules (issue 12, point 3).
//!
//! For every package under the repository root, the test reads its `src/` tree, maps each file
//! to its top-level module (`src/gguf/reader.rs` and `src/gguf.rs` are both `gguf`), and draws
//! an edge `a -> b` for every path `crate::b::...` (or `crate::{b::...}`, or `super::b` from a
//! top-level file) written in module `a` outside comments. A name the crate root re-exports
//! (`pub use plan::{plan, PlanOptions}`) counts as the module it comes from. The test fails
//! naming every cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_crate_has_a_module_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = package_sources(root);
    let unchecked: Vec<String> = workspace_members(root)
        .into_iter()
        .filter(|member| !sources.contains(&root.join(member).join("src")))
        .collect();
    assert!(
        unchecked.is_empty(),
        "workspace members not checked: {unchecked:?}"
    );
    let mut found = Vec::new();
    for src in &sources {
        for cycle in cycles(&module_graph(src)) {
            found.push(format!("{}: {}", src.display(), cycle.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

/// The checker itself finds a cycle through a root re-export, and none in a tree of one-way
/// imports.
#[test]
fn the_checker_sees_cycles_through_re_exports() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("plan")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod plan;\npub mod place;\npub use plan::{Options, plan};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("plan/mod.rs"),
        "// crate::place is named in a comment only\nuse crate::place::place;\n",
    )
    .unwrap();
    std::fs::write(src.join("place.rs"), "use crate::Error;\n").unwrap();
    assert!(cycles(&module_graph(&src)).is_empty());

    std::fs::write(src.join("place.rs"), "use crate::{Error, Options};\n").unwrap();
    assert_eq!(
        cycles(&module_graph(&src)),
        vec![vec!["place".to_string(), "plan".into(), "place".into()]]
    );
}

/// The `members` of the root `Cargo.toml` (the facade itself is `.`), each as written.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let list = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("members = ["))
        .expect("the root Cargo.toml lists its members on one line");
    let members: Vec<String> = list
        .trim_end_matches(']')
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .chain([".".to_string()])
        .collect();
    assert!(members.len() > 5, "members not read from {list}");
    members
}

/// `src/` of every package in the workspace (the facade's included), skipping build outputs.
fn package_sources(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            found.push(dir.join("src"));
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            let skip =
                name.starts_with('.') || ["target", "src", "tests", "fuzz"].contains(&&*name);
            if path.is_dir() && !skip {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Edges between the top-level modules of the crate whose sources are in `src`.
fn module_graph(src: &Path) -> Graph {
    let lib = ["lib.rs", "main.rs"]
        .iter()
        .map(|name| src.join(name))
        .find(|p| p.is_file());
    let root_names = lib
        .map(|p| root_re_exports(&code_of(&p)))
        .unwrap_or_default();
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let Some(module) = top_module(relative) else {
            continue;
        };
        // `super::` means the crate root in `src/a.rs` and `src/a/mod.rs`.
        let top_level = match relative.components().count() {
            1 => true,
            2 => relative.ends_with("mod.rs"),
            _ => false,
        };
        let targets = graph.entry(module.clone()).or_default();
        for name in referenced_names(&code_of(&file), top_level) {
            let target = root_names.get(&name).cloned().unwrap_or(name);
            if target != module {
                targets.insert(target);
            }
        }
    }
    // Names that are not modules (items defined in the root, extern re-exports) end no cycle.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `gguf` for `gguf.rs` and `gguf/reader.rs`; `None` for the crate root and binaries.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first);
    (!["lib", "main", "bin"].contains(&name)).then(|| name.to_string())
}

/// The file's text without comments (line comments, doc comments and block comments).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut code = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap();
            code.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    code
}

/// First path segments after `crate::` (and `super::` in a top-level file, where it means the
/// crate root), including every member of a `crate::{...}` group.
fn referenced_names(code: &str, top_level: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if top_level {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            match rest.strip_prefix('{') {
                Some(group) => names.extend(group_heads(group)),
                None => names.extend(identifier(rest)),
            }
        }
    }
    names
}

/// The first segment of every path in a `{a::b, c, d::{e, f}}` group (text after the `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && !c.is_whitespace() => {
                heads.extend(identifier(&group[i..]));
                at_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn identifier(text: &str) -> Option<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_string())
}

/// Names the crate root re-exports from its own modules: `pub use plan::{plan, PlanOptions};`
/// maps `plan` and `PlanOptions` to `plan`.
fn root_re_exports(code: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path = path.trim_start_matches("self::");
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim();
        let items: Vec<String> = match items.strip_prefix('{') {
            Some(group) => group
                .trim_end_matches('}')
                .split(',')
                .filter_map(|item| alias_of(item.trim()))
                .collect(),
            None => alias_of(items).into_iter().collect(),
        };
        for item in items {
            names.insert(item, module.trim().to_string());
        }
    }
    names
}

/// The name an item of a `use` list is known by (`a as b` is `b`; `a::b` is `b`).
fn alias_of(item: &str) -> Option<String> {
    let name = match item.split_once(" as ") {
        Some((_, alias)) => alias.trim(),
        None => item.rsplit("::").next()?.trim(),
    };
    identifier(name)
}

/// Cycles of the graph: the shortest one through each module, skipping one whose modules a
/// cycle already listed covers exactly.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut seen_components: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    for start in graph.keys() {
        if let Some(path) = path_back(graph, start) {
            let component: BTreeSet<String> = path.iter().cloned().collect();
            if seen_components.insert(component) {
                found.push(path);
            }
        }
    }
    found
}

/// The shortest path `start -> ... -> start`, if any (breadth-first).
fn path_back(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = node;
                while at != start {
                    path.push(at.to_string());
                    at = previous[at];
                }
                path.push(start.to_string());
                path.reverse();
                return Some(path);
            }
            if !previous.contains_key(next.as_str()) && next != start {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}
