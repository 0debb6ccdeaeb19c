//! Warnings a person needs before starting a plan, found by looking at the plan next to the
//! model's facts and the command line: what the library accepts on purpose but what is
//! rarely meant.

use std::path::Path;

use inferkit::llama_box::TextDetails;
use inferkit::vllm::VllmDetails;
use inferkit::{Layout, ModelFacts, ResourceEstimate};

/// The model's training context in tokens, where its files say it.
pub fn training_context(facts: &ModelFacts) -> Option<u64> {
    if let Some(gguf) = &facts.gguf {
        return gguf.context_length().ok().flatten();
    }
    facts.hf.as_ref()?.config.text.max_position_embeddings
}

/// A context per sequence beyond the one the model was trained for: llama.cpp accepts it,
/// and answers degrade past the training length unless RoPE scaling is set up for it.
pub fn context_beyond_training(
    trained: Option<u64>,
    estimate: &ResourceEstimate,
) -> Option<String> {
    let context = sequence_context(estimate)?;
    let trained = trained?;
    (context > trained).then(|| {
        format!(
            "a context of {context} tokens per sequence is beyond the model's training \
             context of {trained} tokens: answers degrade past it unless RoPE scaling is set"
        )
    })
}

/// The context of one sequence an estimate is sized for: llama.cpp's `n_ctx_seq`, vLLM's
/// `max_model_len`.
fn sequence_context(estimate: &ResourceEstimate) -> Option<u64> {
    if let Some(text) = estimate.details_as::<TextDetails>() {
        return Some(text.n_ctx_seq);
    }
    estimate
        .details_as::<VllmDetails>()
        .map(|vllm| vllm.max_model_len)
}

/// Devices of a layer split that receive no layer (a `--tensor-split` share of 0, or an
/// `--rpc` server beyond the layers to share): they take part in the run for nothing.
pub fn empty_devices(estimate: &ResourceEstimate) -> Vec<String> {
    let Layout::Layers { offload_layers, .. } = estimate.layout else {
        return Vec::new();
    };
    if offload_layers == 0 {
        return Vec::new();
    }
    estimate
        .devices
        .iter()
        .filter(|device| device.layers == 0 && device.components.weights == 0)
        .map(|device| {
            format!(
                "device {} ({}) receives no layer: the tensor split or RPC servers leave it \
                 empty",
                device.name, device.device
            )
        })
        .collect()
}

/// Makes relative paths among backend parameters absolute: the backend runs in its own run
/// directory, where `./chat.jinja` does not resolve. A parameter (or the value of a
/// `--flag=value`) is taken for a path when it names an existing file or directory here.
/// Returns the notes for what was changed and warnings for relative paths that name nothing
/// here.
pub fn absolute_paths(parameters: &mut [String]) -> Vec<String> {
    let mut messages = Vec::new();
    for parameter in parameters.iter_mut() {
        let (prefix, value) = match parameter.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (format!("{flag}="), value),
            _ => (String::new(), parameter.as_str()),
        };
        let path = Path::new(value);
        if value.starts_with('-') || path.is_absolute() || matches!(value, "" | "." | "..") {
            continue;
        }
        if path.exists() {
            match std::path::absolute(path) {
                Ok(absolute) => {
                    messages.push(format!(
                        "note: backend parameter {value} made absolute ({})",
                        absolute.display()
                    ));
                    *parameter = format!("{prefix}{}", absolute.display());
                }
                Err(_) => continue,
            }
        } else if value.contains('/') && !value.contains("://") {
            messages.push(format!(
                "warning: backend parameter {value} looks like a relative path but names \
                 nothing here; the backend runs in its own run directory"
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_relative_paths_become_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat.jinja"), "{{ x }}").unwrap();
        let here = std::env::current_dir().unwrap();
        let relative = pathdiff(dir.path(), &here).join("chat.jinja");
        let relative = relative.to_str().unwrap().to_string();
        let mut parameters = vec![
            "--chat-template-file".to_string(),
            relative.clone(),
            format!("--mmproj={relative}"),
            "--ctx-size".into(),
            "8192".into(),
            "./missing/lora.gguf".into(),
            "hf://org/model".into(),
        ];
        let messages = absolute_paths(&mut parameters);
        let absolute = dir.path().join("chat.jinja").canonicalize().unwrap();
        assert_eq!(
            Path::new(&parameters[1]).canonicalize().unwrap(),
            absolute,
            "{parameters:?}"
        );
        assert!(Path::new(&parameters[1]).is_absolute());
        assert!(parameters[2].starts_with("--mmproj=/"), "{parameters:?}");
        assert_eq!(parameters[4], "8192");
        assert_eq!(parameters[5], "./missing/lora.gguf");
        assert_eq!(parameters[6], "hf://org/model");
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[2].starts_with("warning: backend parameter ./missing/lora.gguf"));
    }

    /// `target` relative to `base` (both absolute), through `..` as needed.
    fn pathdiff(target: &Path, base: &Path) -> std::path::PathBuf {
        let target: Vec<_> = target.components().collect();
        let base: Vec<_> = base.components().collect();
        let common = target.iter().zip(&base).take_while(|(a, b)| a == b).count();
        let mut relative = std::path::PathBuf::new();
        for _ in common..base.len() {
            relative.push("..");
        }
        for component in &target[common..] {
            relative.push(component);
        }
        relative
    }
}
