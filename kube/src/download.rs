//! The download steps of a plan ([`DownloadStep`]) as an init container: the model's files are
//! fetched into the cache the plan names, in that cache's layout, before the backend starts.
//!
//! The container runs a POSIX shell script with `curl` and `sha256sum` (the default image,
//! `curlimages/curl`, has both; [`KubernetesOptions::download_image`] names another). A file
//! grows as `NAME.incomplete`, resumed with `curl --continue-at -` after a restart, is checked,
//! then renamed into place; a file already in place was checked when it was renamed and is
//! kept. By the step's hub:
//!
//! - Hugging Face, ModelScope: an LFS file goes to `blobs/SHA256`, checked against the hub's
//!   SHA-256, and is linked from `snapshots/COMMIT/PATH`, the layout `huggingface_hub` and
//!   `inferkit serve` write. A small file the hub lists without SHA-256 is written into the
//!   snapshot and checked by size.
//! - Ollama: the registry's manifest (`GET {registry}/v2/{repo}/manifests/{tag}`) first,
//!   checked against the digest the plan was made from (a tag that moved fails before any
//!   blob is fetched: plan again); then every blob of it from `{registry}/v2/{repo}/blobs/
//!   sha256:HEX` into `blobs/sha256-HEX`, each checked against its digest; the manifest is
//!   renamed into `manifests/HOST/{repo}/{tag}` last, so that `ollama` never sees half a
//!   model. The layout is Ollama's store (`OLLAMA_MODELS`), as `inferkit serve` writes it.
//! - A URL: each file into `KEY/VERSION/NAME` (the version a digest of the files' sizes and
//!   ETags at planning, so a file changed at the same address goes to a new folder), checked
//!   by size only: a URL publishes no checksum, so its content is not verified.
//!
//! The token is read from the user's Secret into the step's variable (`HF_TOKEN`) and handed
//! to curl on its standard input, not its command line (which `ps` shows). curl sends such an
//! `Authorization` header to the hub only: it drops it when a redirect leads to another host
//! (the CDN that serves LFS files and Ollama blobs), since the script does not pass
//! `--location-trusted`. A URL's files get no token.

use std::collections::BTreeMap;
use std::path::Path;

use inferkit_core::launch::shell_quote;
use inferkit_core::source::url_host;
use inferkit_core::{DownloadStep, Error, Result, hub, ollama};
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
    if steps.iter().any(|step| step.hub == "ollama") {
        script.push(MANIFEST.trim().to_string());
    }
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

/// `manifest URL DESTINATION SHA256`: the registry's manifest as `DESTINATION.incomplete`,
/// checked against the digest the plan was made from (renamed to DESTINATION once the blobs
/// are in); nothing is fetched when DESTINATION is there with that digest. The Accept header
/// is the one the Ollama client sends.
const MANIFEST: &str = r#"
manifest() {
  if [ -f "$2" ] && echo "$3  $2" | sha256sum -c - >/dev/null 2>&1; then return 0; fi
  mkdir -p "$(dirname "$2")"
  echo "fetching the manifest $1"
  auth=""
  [ -n "$token" ] && auth="header = \"Authorization: Bearer $token\""
  printf '%s\n' "$auth" 'header = "Accept: application/vnd.docker.distribution.manifest.v2+json"' \
    | curl --config - --fail --location --retry 5 --retry-delay 10 --max-filesize 1048576 \
      --output "$2.incomplete" "$1"
  echo "$3  $2.incomplete" | sha256sum -c - >/dev/null || { rm -f "$2.incomplete"; echo "$1: the registry's manifest is no longer sha256:$3, the one the plan was made from; plan again" >&2; exit 1; }
}
"#;

/// The lines of one step: its token, then the hub's layout.
fn step_script(step: &DownloadStep) -> Result<Vec<String>> {
    let token = match step.token_env.as_deref() {
        Some(variable) if is_variable_name(variable) => format!("token=\"${{{variable}:-}}\""),
        Some(variable) => {
            return Err(Error::unsupported(format!(
                "the download's token variable `{variable}` is no environment variable name"
            )));
        }
        None => "token=''".to_string(),
    };
    let mut lines = vec![token];
    lines.extend(match step.hub.as_str() {
        "hf" | "ms" => hub_lines(step)?,
        "ollama" => ollama_lines(step)?,
        "url" => url_lines(step)?,
        other => {
            return Err(Error::unsupported(format!(
                "the plan downloads {} from {} ({other}), which the export writes no init \
                 container for (Hugging Face, ModelScope, Ollama registries and URLs only): put \
                 the files on a model volume (`--model-pvc`, `--model-host-path`) and plan with \
                 their path",
                step.repo, step.endpoint
            )));
        }
    });
    lines.push(format!(
        "echo {}",
        shell_quote(&format!("{} is in {}", step.repo, step.snapshot.display()))
    ));
    Ok(lines)
}

/// A Hugging Face or ModelScope repository: the folders, every file, the links, the ref.
fn hub_lines(step: &DownloadStep) -> Result<Vec<String>> {
    let folder = hub::snapshot_repo_folder(&step.snapshot).ok_or_else(|| {
        Error::unsupported(format!(
            "the download snapshot {} is not in a models--ORG--NAME/snapshots folder",
            step.snapshot.display()
        ))
    })?;
    let blobs = hub::blobs_folder(folder);
    let mut lines = vec![format!(
        "mkdir -p {} {}",
        quote(&blobs),
        quote(&step.snapshot)
    )];
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
                let sha = checked_hex(sha, &file.path)?;
                let blob = blobs.join(sha);
                lines.push(format!("fetch {url} {} {} {sha}", quote(&blob), file.size));
                lines.push(format!(
                    "ln -sfn {} {}",
                    shell_quote(&hub::blob_link(&file.path, sha)),
                    quote(&link)
                ));
            }
            None => lines.push(format!("fetch {url} {} {} ''", quote(&link), file.size)),
        }
    }
    if let Some(revision) = &step.revision {
        let reference = hub::ref_path(folder, revision);
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
    Ok(lines)
}

/// An Ollama model: the manifest (checked), every blob (each checked), the manifest renamed
/// into place last.
fn ollama_lines(step: &DownloadStep) -> Result<Vec<String>> {
    let tag = step.revision.as_deref().unwrap_or("latest");
    if !is_relative_plain(&step.repo) || !is_relative_plain(tag) || tag.contains('/') {
        return Err(Error::unsupported(format!(
            "the Ollama model `{}:{tag}` is no plain name and tag",
            step.repo
        )));
    }
    let digest = checked_hex(&step.commit, "the manifest's digest")?;
    let registry = step.endpoint.as_str();
    let host = url_host(registry);
    if !is_relative_plain(host) {
        return Err(Error::unsupported(format!(
            "the Ollama registry `{}` names no host",
            step.endpoint
        )));
    }
    let manifest = ollama::manifest_path(&step.cache, host, &step.repo, tag);
    let mut lines = vec![
        format!(
            "manifest {} {} {digest}",
            shell_quote(&ollama::manifest_url(registry, &step.repo, tag)),
            quote(&manifest)
        ),
        format!("mkdir -p {}", quote(&step.snapshot)),
    ];
    for file in &step.files {
        let sha = file.sha256.as_deref().unwrap_or_default();
        let sha = checked_hex(sha, &file.path)?;
        let blob = format!("sha256:{sha}");
        if file.path != ollama::blob_file_name(&blob) {
            return Err(Error::unsupported(format!(
                "the Ollama blob `{}` is not named by its digest {blob}",
                file.path
            )));
        }
        let url = ollama::blob_url(registry, &step.repo, &blob);
        lines.push(format!(
            "fetch {} {} {} {sha}",
            shell_quote(&url),
            quote(&step.snapshot.join(&file.path)),
            file.size
        ));
    }
    let pending = format!("{}.incomplete", manifest.display());
    lines.push(format!(
        "if [ -f {pending} ]; then mv {pending} {}; fi",
        quote(&manifest),
        pending = shell_quote(&pending)
    ));
    Ok(lines)
}

/// A URL's files: each into the step's versioned folder, resumed, checked by size (a URL
/// publishes no checksum).
fn url_lines(step: &DownloadStep) -> Result<Vec<String>> {
    let mut lines = vec![format!("mkdir -p {}", quote(&step.snapshot))];
    for file in &step.files {
        if !is_relative_plain(&file.path) || file.path.contains('/') {
            return Err(Error::unsupported(format!(
                "the download of {} names `{}`, not a file name",
                step.repo, file.path
            )));
        }
        let url = file.url.as_deref().ok_or_else(|| {
            Error::unsupported(format!(
                "the download of {} has no address for `{}`",
                step.repo, file.path
            ))
        })?;
        lines.push(format!(
            "fetch {} {} {} ''",
            shell_quote(url),
            quote(&step.snapshot.join(&file.path)),
            file.size
        ));
    }
    Ok(lines)
}

/// A SHA-256 of the plan (a hub's, a blob's, a manifest's digest), which names a file or
/// checks one: 64 hex digits, or the step is refused (it would name a path, or never verify).
fn checked_hex<'a>(sha: &'a str, what: &str) -> Result<&'a str> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(Error::unsupported(format!(
            "the SHA-256 of {what} is `{sha}`, not 64 hexadecimal digits"
        )))
    }
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

/// How the files of `steps` are checked, for the export's notes.
pub(crate) fn checks(steps: &[DownloadStep]) -> String {
    let mut checks = Vec::new();
    if steps.iter().any(|s| s.hub != "url") {
        checks.push("checked against the hub's SHA-256 (Ollama: the manifest's digests)");
    }
    if steps.iter().any(|s| s.hub == "url") {
        checks.push(
            "a URL's files by size only (a URL publishes no checksum: their content is not \
             verified)",
        );
    }
    checks.join("; ")
}

/// Where a step's cache lives in the pod: in the user's model volume when the cache is inside
/// its mount path (the files then outlast the pod), else in an `emptyDir` of its own.
pub(crate) fn in_model_volume(step: &DownloadStep, model: Option<&ModelVolume>) -> bool {
    model.is_some_and(|model| step.cache.starts_with(model.mount_path()))
}
