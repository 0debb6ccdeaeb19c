//! The download step of a plan ([`DownloadStep`]) as an init container: the model's files are
//! fetched into a Hugging Face cache in the pod before the backend starts.
//!
//! The container runs a POSIX shell script with `curl` and `sha256sum` (the default image,
//! `curlimages/curl`, has both; [`KubernetesOptions::download_image`] names another). Per file:
//!
//! - an LFS file grows as `blobs/SHA256.incomplete` (resumed with `curl --continue-at -` after
//!   a restart), is checked against the hub's SHA-256, then renamed to `blobs/SHA256` and
//!   linked from `snapshots/COMMIT/PATH`, the layout `huggingface_hub` and
//!   `inferkit serve` write; a blob already there was verified when it was renamed and is
//!   kept. A small file the hub lists without SHA-256 is written into the snapshot and
//!   checked by size.
//! - the token is read from the user's Secret into the step's variable (`HF_TOKEN`) and handed
//!   to curl on its standard input, not its command line (which `ps` shows). curl sends such
//!   an `Authorization` header to the hub only: it drops it when a redirect leads to another
//!   host (the CDN that serves LFS files), since the script does not pass
//!   `--location-trusted`.

use std::collections::BTreeMap;
use std::path::Path;

use inferkit_core::launch::shell_quote;
use inferkit_core::{DownloadFile, DownloadStep, Error, Result};
use k8s_openapi::api::core::v1::{Container, EnvVar, SecurityContext, VolumeMount};

use crate::{KubernetesOptions, ModelVolume, secret_env};

/// The init container that performs `steps`, mounting each step's cache from `mounts`
/// (volume name by cache directory). `as_root` when it writes into the user's volume, whose
/// directories belong to root on most nodes (curlimages/curl runs as user 100 otherwise).
pub(crate) fn init_container(
    steps: &[&DownloadStep],
    options: &KubernetesOptions,
    mounts: Vec<VolumeMount>,
    as_root: bool,
) -> Result<Container> {
    let mut env: BTreeMap<String, EnvVar> = BTreeMap::new();
    let mut script = vec![FETCH.trim().to_string()];
    for step in steps {
        if let Some(variable) = &step.token_env {
            let secret = options.secret.as_ref().ok_or_else(|| {
                Error::invalid_parameter(
                    "secret",
                    format!(
                        "the download of {} reads its token from {variable}: name the Secret \
                         that holds it (`--secret NAME`, with a key {variable})",
                        step.repo
                    ),
                )
            })?;
            env.insert(
                variable.clone(),
                secret_env(secret, variable.clone(), variable.clone()),
            );
        }
        script.extend(step_script(step)?);
    }
    Ok(Container {
        name: "download-model".to_string(),
        image: Some(options.download_image.clone()),
        command: Some(vec!["sh".to_string(), "-c".to_string(), script.join("\n")]),
        env: (!env.is_empty()).then(|| env.into_values().collect()),
        volume_mounts: Some(mounts),
        security_context: as_root.then(|| SecurityContext {
            run_as_user: Some(0),
            ..SecurityContext::default()
        }),
        ..Container::default()
    })
}

/// `fetch URL DESTINATION SIZE SHA256`: the file at DESTINATION, downloaded (with `$token`
/// when it is set) and verified unless it is there; `SHA256` empty for a file checked by size
/// only.
const FETCH: &str = r#"
set -eu
fetch() {
  [ -f "$2" ] && return 0
  part="$2.incomplete"
  have=0
  [ -f "$part" ] && have=$(stat -c %s "$part")
  if [ "$have" -lt "$3" ]; then
    echo "fetching $1 ($3 bytes, $have there)"
    auth=""
    [ -n "$token" ] && auth="header = \"Authorization: Bearer $token\""
    printf '%s\n' "$auth" | curl --config - --fail --location --retry 5 --retry-delay 10 \
      --continue-at - --output "$part" "$1"
  fi
  if [ -n "$4" ]; then
    echo "$4  $part" | sha256sum -c - || { rm -f "$part"; echo "$1: SHA-256 differs from the hub's $4; removed" >&2; exit 1; }
  elif [ "$(stat -c %s "$part")" != "$3" ]; then
    rm -f "$part"; echo "$1: not $3 bytes; removed" >&2; exit 1
  fi
  mv "$part" "$2"
}
"#;

/// The lines of one step: the repository's folders, every file, the links, the ref.
fn step_script(step: &DownloadStep) -> Result<Vec<String>> {
    if !matches!(step.hub.as_str(), "hf" | "ms") {
        return Err(Error::unsupported(format!(
            "the plan downloads {} from {} ({}), which the export writes no init container for \
             (Hugging Face and ModelScope repositories only): put the files on a model volume \
             (`--model-pvc`, `--model-host-path`) and plan with their path",
            step.repo, step.endpoint, step.hub
        )));
    }
    let folder = step
        .snapshot
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| {
            Error::unsupported(format!(
                "the download snapshot {} is not in a models--ORG--NAME/snapshots folder",
                step.snapshot.display()
            ))
        })?;
    let token = match step.token_env.as_deref() {
        Some(variable) if is_variable_name(variable) => format!("token=\"${{{variable}:-}}\""),
        Some(variable) => {
            return Err(Error::unsupported(format!(
                "the download's token variable `{variable}` is no environment variable name"
            )));
        }
        None => "token=''".to_string(),
    };
    let blobs = folder.join("blobs");
    let mut lines = vec![
        token,
        format!("mkdir -p {} {}", quote(&blobs), quote(&step.snapshot)),
    ];
    for file in &step.files {
        if !is_relative_plain(&file.path) {
            return Err(Error::unsupported(format!(
                "the download of {} names `{}`, a path outside the repository",
                step.repo, file.path
            )));
        }
        let link = step.snapshot.join(&file.path);
        let parent = link.parent().unwrap_or(&step.snapshot);
        lines.push(format!("mkdir -p {}", quote(parent)));
        let url = shell_quote(&step.file_url(&file.path));
        match &file.sha256 {
            Some(sha) => {
                let sha = checked_sha(sha, file)?;
                let blob = blobs.join(sha);
                lines.push(format!("fetch {url} {} {} {sha}", quote(&blob), file.size));
                lines.push(format!(
                    "ln -sfn {} {}",
                    shell_quote(&blob_link(&file.path, sha)),
                    quote(&link)
                ));
            }
            None => lines.push(format!("fetch {url} {} {} ''", quote(&link), file.size)),
        }
    }
    if let Some(revision) = &step.revision {
        let reference = folder.join("refs").join(revision);
        if !is_relative_plain(revision) {
            return Err(Error::unsupported(format!(
                "the revision `{revision}` of {} is no plain name",
                step.repo
            )));
        }
        lines.push(format!(
            "mkdir -p {} && printf %s {} > {}",
            quote(reference.parent().unwrap_or(folder)),
            shell_quote(&step.commit),
            quote(&reference)
        ));
    }
    lines.push(format!(
        "echo {}",
        shell_quote(&format!("{} is in {}", step.repo, step.snapshot.display()))
    ));
    Ok(lines)
}

/// The hub's SHA-256, which names the blob: 64 hex digits, or the step is refused (it would
/// name a path, or never verify).
fn checked_sha<'a>(sha: &'a str, file: &DownloadFile) -> Result<&'a str> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(Error::unsupported(format!(
            "the SHA-256 of {} is `{sha}`, not 64 hexadecimal digits",
            file.path
        )))
    }
}

/// `snapshots/COMMIT/PATH` → `../../blobs/SHA256`, relative as `huggingface_hub` links, one
/// more `..` per folder in PATH.
fn blob_link(path: &str, sha: &str) -> String {
    let depth = path.matches('/').count() + 2;
    format!("{}blobs/{sha}", "../".repeat(depth))
}

/// A relative path of plain names (no `..`, no leading `/`, no empty part).
fn is_relative_plain(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn quote(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}

/// Where a step's cache lives in the pod: in the user's model volume when the cache is inside
/// its mount path (the files then outlast the pod), else in an `emptyDir` of its own.
pub(crate) fn in_model_volume(step: &DownloadStep, model: Option<&ModelVolume>) -> bool {
    model.is_some_and(|model| step.cache.starts_with(model.mount_path()))
}
