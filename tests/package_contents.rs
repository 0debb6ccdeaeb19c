//! What a published crate's own tests read stays inside that crate (issue 15).
//!
//! Every package excludes its `tests/` directory from what `cargo package` ships, so its unit
//! tests, doc tests and build script must not read the workspace fixtures
//! (`../tests/fixtures`) or the package's own `tests/`: on a crate downloaded from crates.io
//! `cargo test` would fail. They read `testdata/` inside the package instead. The test scans
//! `src/` and `build.rs` of every package (doc comments included: doc tests run) and names
//! each line that leaves the package or reads `tests/`.

use std::path::{Path, PathBuf};

#[test]
fn unit_and_doc_tests_read_only_their_own_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packages = packages(root);
    assert!(
        packages.len() >= 10,
        "only {} packages found under {}",
        packages.len(),
        root.display()
    );
    let found: Vec<String> = packages.iter().flat_map(|p| escapes(p)).collect();
    assert!(
        found.is_empty(),
        "source files reading outside their package:\n{}",
        found.join("\n")
    );
}

/// The scanner itself flags a doc test that reads the workspace fixtures and a unit test that
/// joins `..` onto the manifest directory, and passes reads of `testdata/` and a hostile path
/// literal that is not a file the test opens.
#[test]
fn the_scanner_sees_reads_outside_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let clean = "//! let path = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/testdata/m.gguf\");\n\
                 // Not `../tests/fixtures`: a comment.\n\
                 fn t() { check(\"../escape.json\"); }\n";
    std::fs::write(src.join("lib.rs"), clean).unwrap();
    assert!(escapes(dir.path()).is_empty(), "{:?}", escapes(dir.path()));

    let doc = "//! let path = concat!(\n//!     env!(\"CARGO_MANIFEST_DIR\"),\n\
               //!     \"/../tests/fixtures/gguf/m.gguf\"\n//! );\n";
    std::fs::write(src.join("lib.rs"), doc).unwrap();
    assert_eq!(escapes(dir.path()).len(), 1, "{:?}", escapes(dir.path()));

    let unit = "fn f() -> PathBuf {\n    Path::new(env!(\"CARGO_MANIFEST_DIR\"))\n        \
                .join(\"../data/x.json\")\n}\n";
    std::fs::write(src.join("lib.rs"), unit).unwrap();
    assert_eq!(escapes(dir.path()).len(), 1, "{:?}", escapes(dir.path()));
}

/// Directories under `root` (the root package included) with a `Cargo.toml` and a `src/`;
/// build output and the fuzz crate (never published) are skipped.
fn packages(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let skip = [".git", "target", "fuzz", "tests", "src", "node_modules"];
            if !path.is_dir() || skip.iter().any(|s| name == *s) {
                continue;
            }
            if path.join("Cargo.toml").is_file() && path.join("src").is_dir() {
                found.push(path.clone());
            }
            stack.push(path);
        }
    }
    found
}

/// Statements of `package`'s `src/**/*.rs` and `build.rs` that read a path outside the package
/// or under its unpublished `tests/`: a string naming `tests/`, or a statement that builds a path
/// from `CARGO_MANIFEST_DIR` with a `..` component. Statements end at a line ending in `;`, `{`
/// or `}`; plain `//` comments are skipped, doc comments (doc tests) are not.
fn escapes(package: &Path) -> Vec<String> {
    let mut files = rust_files(&package.join("src"));
    if package.join("build.rs").is_file() {
        files.push(package.join("build.rs"));
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut statement: Vec<(usize, &str)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") && !code.starts_with("///") && !code.starts_with("//!") {
                continue;
            }
            statement.push((number + 1, code));
            if code.ends_with(';') || code.ends_with('{') || code.ends_with('}') {
                found.extend(escaping_lines(&file, &statement));
                statement.clear();
            }
        }
        found.extend(escaping_lines(&file, &statement));
    }
    found
}

fn escaping_lines(file: &Path, statement: &[(usize, &str)]) -> Vec<String> {
    let from_manifest_dir = statement
        .iter()
        .any(|(_, code)| code.contains("CARGO_MANIFEST_DIR"));
    statement
        .iter()
        .filter(|(_, code)| {
            string_literals(code).iter().any(|s| {
                s.contains("tests/")
                    || (from_manifest_dir && (s.contains("../") || s.contains("/..")))
            })
        })
        .map(|(number, code)| format!("{}:{number}: {code}", file.display()))
        .collect()
}

/// The contents of the double-quoted string literals on one line (escapes left as written).
fn string_literals(line: &str) -> Vec<&str> {
    let mut literals = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        literals.push(&after[..end]);
        rest = &after[end + 1..];
    }
    literals
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
