//! Recognising a speech model the way vox-box does (`vox_box/estimator/*.py`): by its files and
//! configuration keys, trying CosyVoice, FasterWhisper, FunASR, Bark and Dia in that order; the
//! first family whose rule holds wins.
//!
//! Without files (a repository id only) the model is recognised from the supported-model
//! table's ids and from vox-box's owner rules for faster-whisper (`Systran/*` on Hugging Face,
//! `gpustack/*whisper*` on ModelScope).

use std::path::{Path, PathBuf};

use inferkit_core::files::json_error;
use inferkit_core::hub::Hub;
use inferkit_core::{DirectoryFacts, Error, ModelFacts, ModelFormat, ModelSource};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, KnownModel};
use crate::family::{Family, Task};

/// A recognised speech model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recognition {
    /// vox-box framework that will run it.
    pub family: Family,
    /// What it does.
    pub task: Task,
    /// Name in the supported-model table (`faster-whisper-large-v3`), when it is one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Sub-kind vox-box distinguishes: `CosyVoice2` (its yaml mentions Qwen2), or the FunASR
    /// architecture (`config.yaml` `model`, or `QwenAudio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Size in bytes of the weight file the estimate is keyed on (`model.bin`,
    /// `pytorch_model.bin`; every weight file for FunASR): measured on disk, else published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
    /// Which files or keys matched, for the user.
    pub evidence: String,
}

/// Why no family matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrecognised {
    /// One sentence per family that was tried.
    pub reasons: Vec<String>,
    /// Configuration files that could not be parsed (vox-box itself would crash on them).
    pub errors: Vec<Error>,
}

impl Unrecognised {
    /// The error to report: the first unreadable configuration file, else `Unsupported`.
    pub fn into_error(self) -> Error {
        match self.errors.into_iter().next() {
            Some(error) => error,
            None => Error::unsupported(format!(
                "not a vox-box speech model: {}",
                self.reasons.join("; ")
            )),
        }
    }
}

/// Recognises the model of `facts`, in vox-box's order.
pub fn recognise(facts: &ModelFacts) -> Result<Recognition, Unrecognised> {
    if facts.format == ModelFormat::Gguf {
        return Err(Unrecognised {
            reasons: vec!["GGUF files are served by llama-box, not vox-box".into()],
            errors: Vec::new(),
        });
    }
    if let Some(dir) = &facts.directory {
        return Files::new(dir, facts.path.as_deref(), &facts.source).recognise();
    }
    match &facts.source {
        ModelSource::Huggingface { repo_id, .. } => by_id(Hub::HuggingFace, repo_id),
        ModelSource::ModelScope { model_id, .. } => by_id(Hub::ModelScope, model_id),
        ModelSource::LocalPath { path } => Err(Unrecognised {
            reasons: vec![format!("the directory {} was not read", path.display())],
            errors: Vec::new(),
        }),
        ModelSource::Ollama { .. } | ModelSource::Url { .. } => Err(Unrecognised {
            reasons: vec!["Ollama models and URLs are GGUF files, served by llama-box".into()],
            errors: Vec::new(),
        }),
    }
}

/// Recognition from a repository id alone: the supported-model table, then vox-box's
/// faster-whisper owner rules.
fn by_id(hub: Hub, id: &str) -> Result<Recognition, Unrecognised> {
    if let Some(known) = catalog::by_id(hub, id) {
        return Ok(from_known(
            known,
            format!("{id} is in the supported-model table"),
        ));
    }
    if let Some(rule) = whisper_owner_rule(hub, id) {
        return Ok(Recognition {
            family: Family::FasterWhisper,
            task: Task::SpeechToText,
            model: None,
            variant: None,
            weight_bytes: None,
            evidence: rule,
        });
    }
    Err(Unrecognised {
        reasons: vec![format!(
            "{id} is not a known speech model; without its files vox-box's rules cannot be applied"
        )],
        errors: Vec::new(),
    })
}

fn from_known(known: &KnownModel, evidence: String) -> Recognition {
    Recognition {
        family: known.family,
        task: known.family.task(),
        model: Some(known.name.to_string()),
        variant: (known.name == "cosyvoice2-0.5b").then(|| "CosyVoice2".to_string()),
        weight_bytes: known.weight_bytes,
        evidence,
    }
}

/// vox-box's remote faster-whisper shortcut: any Hugging Face repository of `systran`, or a
/// ModelScope repository of `gpustack` with `whisper` in its name (both case-insensitive).
fn whisper_owner_rule(hub: Hub, id: &str) -> Option<String> {
    let (owner, name) = id.split_once('/')?;
    if name.contains('/') {
        return None;
    }
    let matches = match hub {
        Hub::HuggingFace => owner.eq_ignore_ascii_case("systran"),
        Hub::ModelScope => {
            owner.eq_ignore_ascii_case("gpustack") && name.to_lowercase().contains("whisper")
        }
    };
    matches.then(|| format!("{id}: vox-box treats this owner's repositories as faster-whisper"))
}

/// The files of a model directory (local, or a remote repository's listing).
struct Files<'a> {
    dir: &'a DirectoryFacts,
    path: Option<&'a Path>,
    /// Hub and id when the listing is of a remote repository.
    remote: Option<(Hub, &'a str)>,
    errors: Vec<Error>,
}

/// Whether a family's rule held: its recognition, or why not.
type Rule = Result<Recognition, String>;

impl<'a> Files<'a> {
    fn new(dir: &'a DirectoryFacts, path: Option<&'a Path>, source: &'a ModelSource) -> Self {
        Files {
            dir,
            path,
            remote: source.hub_repository(),
            errors: Vec::new(),
        }
    }

    fn recognise(mut self) -> Result<Recognition, Unrecognised> {
        let rules: [fn(&mut Self) -> Rule; 5] = [
            Self::cosyvoice,
            Self::faster_whisper,
            Self::funasr,
            Self::bark,
            Self::dia,
        ];
        let mut reasons = Vec::new();
        for rule in rules {
            match rule(&mut self) {
                Ok(recognition) => return Ok(self.sized(recognition)),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(Unrecognised {
            reasons,
            errors: self.errors,
        })
    }

    /// Fills in the table name and the weight size: measured when the file has bytes, else the
    /// published size of the named model.
    fn sized(&self, mut recognition: Recognition) -> Recognition {
        let known = self
            .remote
            .and_then(|(hub, id)| catalog::by_id(hub, id))
            .or_else(|| {
                self.path
                    .and_then(|p| catalog::by_path(recognition.family, p))
            })
            .filter(|known| known.family == recognition.family);
        recognition.model = known.map(|k| k.name.to_string());
        recognition.weight_bytes = self
            .measured_weights(recognition.family)
            .or_else(|| known.and_then(|k| k.weight_bytes));
        recognition
    }

    /// Bytes of the family's weight file(s) on disk. An empty file is a placeholder, not a
    /// model, so it measures nothing.
    fn measured_weights(&self, family: Family) -> Option<u64> {
        let bytes = match family.weight_file() {
            Some(file) => self.dir.sizes.get(file).copied().unwrap_or(0),
            None if family == Family::FunAsr => self
                .dir
                .sizes
                .iter()
                .filter(|(name, _)| is_weight_file(name))
                .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes)),
            None => 0,
        };
        (bytes > 0).then_some(bytes)
    }

    fn has(&self, file: &str) -> bool {
        self.dir.has_file(file)
    }

    /// A kept JSON file: `None` when absent, parse failures recorded (vox-box's `json.load`
    /// would raise on them and abort the whole recognition).
    fn json(&mut self, file: &str) -> Option<serde_json::Value> {
        let text = self.dir.texts.get(file)?;
        match serde_json::from_str(text) {
            Ok(value) => Some(value),
            Err(err) => {
                let origin = self
                    .path
                    .map_or_else(|| PathBuf::from(file), |p| p.join(file));
                let error = json_error(text, &origin, &err);
                // Several rules read config.json; report a broken file once.
                if !self.errors.contains(&error) {
                    self.errors.push(error);
                }
                None
            }
        }
    }

    fn found(&self, family: Family, variant: Option<String>, evidence: &str) -> Rule {
        Ok(Recognition {
            family,
            task: family.task(),
            model: None,
            variant,
            weight_bytes: None,
            evidence: evidence.to_string(),
        })
    }

    /// CosyVoice: `cosyvoice.yaml` exists; CosyVoice2 when it mentions Qwen2.
    fn cosyvoice(&mut self) -> Rule {
        if !self.has("cosyvoice.yaml") {
            let newer = ["cosyvoice2.yaml", "cosyvoice3.yaml"]
                .into_iter()
                .find(|f| self.has(f));
            return Err(match newer {
                Some(file) => format!(
                    "CosyVoice: has {file} but no cosyvoice.yaml, the only file vox-box loads"
                ),
                None => "CosyVoice: no cosyvoice.yaml".into(),
            });
        }
        let yaml = self.dir.texts.get("cosyvoice.yaml").map(String::as_str);
        let v2 = yaml.is_some_and(|text| text.to_lowercase().contains("qwen2"));
        let variant = if v2 { "CosyVoice2" } else { "CosyVoice" };
        self.found(Family::CosyVoice, Some(variant.into()), "cosyvoice.yaml")
    }

    /// FasterWhisper: `model.bin` and `tokenizer.json`, confirmed by a Whisper
    /// `preprocessor_config.json` or a CTranslate2 Whisper `config.json`.
    fn faster_whisper(&mut self) -> Rule {
        if let Some(rule) = self
            .remote
            .and_then(|(hub, id)| whisper_owner_rule(hub, id))
        {
            return self.found(Family::FasterWhisper, None, &rule);
        }
        if !self.has("model.bin") {
            return Err("FasterWhisper: no model.bin".into());
        }
        // vox-box 0.0.21 fetches tokenizer.json and preprocessor_config.json of a remote
        // repository, then reads the first one it got; when neither exists it indexes an empty
        // list and crashes (IndexError). Here that case is a plain "not recognised".
        if !self.has("tokenizer.json") {
            return Err("FasterWhisper: model.bin without tokenizer.json".into());
        }
        let processor = self
            .json("preprocessor_config.json")
            .and_then(|c| c.get("processor_class").cloned());
        if processor.is_some_and(|class| class == "WhisperProcessor") {
            return self.found(
                Family::FasterWhisper,
                None,
                "model.bin, tokenizer.json, preprocessor_config.json (WhisperProcessor)",
            );
        }
        // vox-box falls back to loading the model with faster-whisper; the keys CTranslate2
        // writes into a converted Whisper model's config.json stand in for that load. For a
        // remote repository vox-box 0.0.21 loads from the unset local path instead, which
        // always fails, so the fallback does not exist there.
        if self.remote.is_some() {
            return Err(
                "FasterWhisper: a remote repository needs a WhisperProcessor \
                        preprocessor_config.json (vox-box cannot load it to check); deploy a \
                        downloaded copy instead"
                    .into(),
            );
        }
        let config = self.json("config.json");
        let ct2_whisper =
            config.is_some_and(|c| c.get("lang_ids").is_some() && c.get("suppress_ids").is_some());
        if ct2_whisper {
            return self.found(
                Family::FasterWhisper,
                None,
                "model.bin, tokenizer.json, CTranslate2 Whisper config.json (lang_ids, suppress_ids)",
            );
        }
        Err(
            "FasterWhisper: model.bin and tokenizer.json, but neither a WhisperProcessor \
             preprocessor_config.json nor a CTranslate2 Whisper config.json"
                .into(),
        )
    }

    /// FunASR: a ModelScope `configuration.json` for `auto-speech-recognition` with model type
    /// `funasr`, or a Qwen-Audio `config.json` (QWenLMHeadModel with audio layers).
    fn funasr(&mut self) -> Rule {
        let configuration = self.json("configuration.json");
        let config = self.json("config.json");
        // vox-box 0.0.21 returns a bare False instead of (False, "") from its remote check when
        // none of these files downloads, and the caller's tuple unpacking crashes. Here that
        // case is a plain "not recognised".
        if configuration.is_none() && config.is_none() && !self.has("config.yaml") {
            return Err("FunASR: none of configuration.json, config.json, config.yaml".into());
        }
        let qwen_audio = config.as_ref().is_some_and(|c| {
            has_architecture(c, "QWenLMHeadModel")
                && c.pointer("/audio/n_layer")
                    .and_then(|n| n.as_i64())
                    .unwrap_or(0)
                    != 0
        });
        if qwen_audio {
            return self.found(
                Family::FunAsr,
                Some("QwenAudio".into()),
                "config.json: QWenLMHeadModel with audio layers",
            );
        }
        let asr = configuration.as_ref().is_some_and(|c| {
            c.get("task").and_then(|t| t.as_str()) == Some("auto-speech-recognition")
                && c.pointer("/model/type").and_then(|t| t.as_str()) == Some("funasr")
        });
        if asr {
            let architecture = self
                .dir
                .texts
                .get("config.yaml")
                .and_then(|y| yaml_top_level(y, "model"));
            return self.found(
                Family::FunAsr,
                architecture,
                "configuration.json: task auto-speech-recognition, model type funasr",
            );
        }
        Err(
            "FunASR: configuration.json is not a funasr auto-speech-recognition model and \
             config.json is not Qwen-Audio"
                .into(),
        )
    }

    /// Bark: `config.json` architectures contain `BarkModel`.
    fn bark(&mut self) -> Rule {
        match self.json("config.json") {
            Some(config) if has_architecture(&config, "BarkModel") => {
                self.found(Family::Bark, None, "config.json: BarkModel")
            }
            Some(_) => Err("Bark: config.json architectures lack BarkModel".into()),
            None => Err("Bark: no readable config.json".into()),
        }
    }

    /// Dia: `config.json` `data` holds every audio token key Dia's config defines.
    fn dia(&mut self) -> Rule {
        const KEYS: [&str; 5] = [
            "audio_bos_value",
            "audio_eos_value",
            "audio_pad_value",
            "audio_length",
            "delay_pattern",
        ];
        let config = self.json("config.json");
        let data = config.as_ref().and_then(|c| c.get("data"));
        let missing: Vec<&str> = KEYS
            .into_iter()
            .filter(|key| data.and_then(|d| d.get(key)).is_none())
            .collect();
        if missing.is_empty() {
            return self.found(Family::Dia, None, "config.json: data with Dia's audio keys");
        }
        Err(format!(
            "Dia: config.json data lacks {}",
            missing.join(", ")
        ))
    }
}

fn has_architecture(config: &serde_json::Value, architecture: &str) -> bool {
    config
        .get("architectures")
        .and_then(|a| a.as_array())
        .is_some_and(|list| list.iter().any(|a| a == architecture))
}

fn is_weight_file(name: &str) -> bool {
    [".pt", ".pth", ".bin", ".safetensors"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The scalar value of a top-level `key: value` line of a YAML file (FunASR's `config.yaml`
/// names its architecture as `model: SenseVoiceSmall`).
fn yaml_top_level(yaml: &str, key: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?.trim();
        let value = value.split(" #").next().unwrap_or(value).trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalar_is_read_from_top_level_lines_only() {
        let yaml = "encoder: SenseVoiceEncoderSmall\nmodel: SenseVoiceSmall  # the class\n  model: nested\n";
        assert_eq!(
            yaml_top_level(yaml, "model").as_deref(),
            Some("SenseVoiceSmall")
        );
        assert_eq!(yaml_top_level("model_conf:\n  x: 1\n", "model"), None);
    }

    #[test]
    fn owner_rules_need_exactly_owner_and_name() {
        assert!(whisper_owner_rule(Hub::HuggingFace, "SYSTRAN/faster-whisper-x").is_some());
        assert!(whisper_owner_rule(Hub::HuggingFace, "Systran/a/b").is_none());
        assert!(whisper_owner_rule(Hub::ModelScope, "gpustack/Whisper-x").is_some());
        assert!(whisper_owner_rule(Hub::ModelScope, "gpustack/cosyvoice").is_none());
        assert!(whisper_owner_rule(Hub::HuggingFace, "gpustack/faster-whisper-tiny").is_none());
    }
}
