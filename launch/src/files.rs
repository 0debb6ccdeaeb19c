//! Writing launch files into the run directory, atomically and without leaving it: regular
//! files with their content (0600: a backend configuration may hold credentials), or symbolic
//! links (`link_to`, overlay directories). Directories created on the way are 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use inferkit_core::launch::{LaunchFile, RunTimeFile};
use inferkit_core::{Error, Result};

/// Writes every file (after checking all their paths, so that a bad path writes nothing).
pub(super) fn write_all<'f>(
    run_dir: &Path,
    files: impl IntoIterator<Item = &'f LaunchFile>,
) -> Result<()> {
    let files: Vec<&LaunchFile> = files.into_iter().collect();
    check_all(run_dir, files.iter().copied())?;
    for file in files {
        write_atomically(run_dir, &run_dir.join(&file.path), file)?;
    }
    Ok(())
}

/// Checks every file's path, writing nothing: relative, without `..`, naming a file, and not
/// through a link that leads out of `run_dir` (when `run_dir` exists already).
pub(super) fn check_all<'f>(
    run_dir: &Path,
    files: impl IntoIterator<Item = &'f LaunchFile>,
) -> Result<()> {
    for file in files {
        let path = target(run_dir, &file.path)?;
        if run_dir.exists() {
            ensure_inside(run_dir, path.parent().unwrap_or(run_dir), &path)?;
        }
    }
    Ok(())
}

/// Checks that every file something else writes at run time is in `run_dir` already: a
/// process started without it would fail in its own terms, far from the cause.
pub(super) fn check_run_time(run_dir: &Path, files: &[RunTimeFile]) -> Result<()> {
    for file in files {
        let path = target(run_dir, &file.path)?;
        if !path.is_file() {
            return Err(Error::unsupported(format!(
                "{} is written at run time by {}, and it is not in the run directory {}: the \
                 process that reads it cannot start without it (put the file there and pass \
                 that directory as the run directory, or deploy the plan where it is written)",
                file.path.display(),
                file.written_by,
                run_dir.display(),
            )));
        }
    }
    Ok(())
}

/// `run_dir/relative`, refusing absolute paths, `..` and empty paths.
fn target(run_dir: &Path, relative: &Path) -> Result<PathBuf> {
    let refuse = |why: &str| {
        Error::invalid_parameter(
            format!("launch file {}", relative.display()),
            format!("{why}; launch files are written inside the run directory"),
        )
    };
    let mut normal = 0;
    for component in relative.components() {
        match component {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is absolute"));
            }
        }
    }
    if normal == 0 {
        return Err(refuse("the path names no file"));
    }
    Ok(run_dir.join(relative))
}

/// Writes a temporary file (or link) next to `path`, syncs it, renames it over `path` and syncs
/// the directory, so that a reader sees the old file or the whole new one, even after a crash.
fn write_atomically(run_dir: &Path, path: &Path, file: &LaunchFile) -> Result<()> {
    let parent = path.parent().unwrap_or(run_dir);
    ensure_inside(run_dir, parent, path)?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| Error::io(parent, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = match &file.link_to {
        Some(target) => std::os::unix::fs::symlink(target, &temporary),
        // `create_new`: a link planted at the temporary name is not followed.
        None => private_file(&temporary).and_then(|mut out| {
            out.write_all(file.content.as_bytes())?;
            out.sync_all()
        }),
    }
    .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::io(path, e));
    }
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io(parent, e))
}

/// A new file, readable and writable by its owner only.
fn private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Refuses a directory that resolves outside the run directory through a symbolic link: its
/// nearest existing ancestor must resolve inside (directories created later are no links).
fn ensure_inside(run_dir: &Path, parent: &Path, path: &Path) -> Result<()> {
    let resolve = |dir: &Path| dir.canonicalize().map_err(|e| Error::io(dir, e));
    let existing = parent
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(run_dir);
    if resolve(existing)?.starts_with(resolve(run_dir)?) {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        format!("launch file {}", path.display()),
        "its directory is a link leading out of the run directory",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> LaunchFile {
        LaunchFile {
            path: PathBuf::from(path),
            content: content.to_string(),
            link_to: None,
        }
    }

    #[test]
    fn links_overlay_entries_to_the_model_directory_and_replaces_old_links() {
        let model = tempfile::tempdir().unwrap();
        std::fs::write(model.path().join("model.safetensors"), "weights").unwrap();
        std::fs::write(model.path().join("tokenizer.json"), "{}").unwrap();
        let run = tempfile::tempdir().unwrap();
        let link = |name: &str, target: &str| LaunchFile {
            path: PathBuf::from("model").join(name),
            content: String::new(),
            link_to: Some(model.path().join(target)),
        };
        let files = [
            file("model/config.json", r#"{"torch_dtype":"float16"}"#),
            link("model.safetensors", "tokenizer.json"),
        ];
        write_all(run.path(), &files).unwrap();
        // Written again, as a restarted launch would: the link is replaced, not refused.
        let files = [
            files[0].clone(),
            link("model.safetensors", "model.safetensors"),
        ];
        write_all(run.path(), &files).unwrap();
        let linked = run.path().join("model/model.safetensors");
        assert_eq!(
            std::fs::read_link(&linked).unwrap(),
            model.path().join("model.safetensors")
        );
        assert_eq!(std::fs::read_to_string(linked).unwrap(), "weights");
        let config = std::fs::read_to_string(run.path().join("model/config.json")).unwrap();
        assert_eq!(config, r#"{"torch_dtype":"float16"}"#);
    }

    #[test]
    fn writes_nested_files_and_replaces_old_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/config.json"), "old").unwrap();
        let files = [
            file("conf/config.json", r#"{"ServerConfig":{"port":40000}}"#),
            file("./overlay/a.yaml", "a: 1\n"),
        ];
        write_all(dir.path(), &files).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(
            read("conf/config.json"),
            r#"{"ServerConfig":{"port":40000}}"#
        );
        assert_eq!(read("overlay/a.yaml"), "a: 1\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("conf"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["config.json"], "no temporary file is left");
    }

    #[test]
    fn refuses_paths_leaving_the_run_directory_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["/etc/passwd", "../escape.json", "conf/../../x", "", "."] {
            let files = [file("first.json", "{}"), file(bad, "x")];
            let err = write_all(dir.path(), &files).unwrap_err();
            match err {
                Error::InvalidParameter { name, .. } => assert!(name.contains(bad), "{name}"),
                other => panic!("{bad}: {other:?}"),
            }
            assert!(!dir.path().join("first.json").exists(), "{bad}");
        }
    }

    #[test]
    fn refuses_a_link_leading_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        for path in ["link/x.json", "link/sub/x.json"] {
            let err = write_all(dir.path(), &[file(path, "{}")]).unwrap_err();
            assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
        }
        let written: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
        assert!(
            written.is_empty(),
            "nothing is written outside: {written:?}"
        );
    }
}
