//! Models known by repository id: GPUStack's vox-box supported-model table, plus the Systran
//! and suno repositories whose weight sizes GPUStack's vox-box selector lists.

use inferkit_core::hub::Hub;

use crate::family::Family;

/// A model known by name and repository id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownModel {
    /// Model name as the table spells it, lowercased (`faster-whisper-large-v3`).
    pub name: &'static str,
    /// vox-box framework.
    pub family: Family,
    /// Hugging Face repository ids.
    pub huggingface: &'static [&'static str],
    /// ModelScope model ids.
    pub model_scope: &'static [&'static str],
    /// Published size of the main weight file (`model.bin`, `pytorch_model.bin`), where the
    /// estimate depends on it.
    pub weight_bytes: Option<u64>,
    /// Published parameter count, where the estimate scales by it.
    pub parameters: Option<u64>,
}

const MB: u64 = 1_000_000;
const M: u64 = 1_000_000;

/// Builds a faster-whisper entry: Systran on Hugging Face, gpustack on ModelScope.
macro_rules! whisper {
    ($name:literal, $hf:literal, $ms:literal, $bytes:expr, $parameters:expr) => {
        KnownModel {
            name: $name,
            family: Family::FasterWhisper,
            huggingface: &[$hf],
            model_scope: &[$ms],
            weight_bytes: Some($bytes),
            parameters: Some($parameters),
        }
    };
}

/// Sizes of `model.bin` are the ones GPUStack's vox-box selector documents from
/// huggingface.co/Systran (decimal units, as the hub displays them); Bark's
/// `pytorch_model.bin` sizes come from the same place (huggingface.co/suno).
///
/// Parameter counts: Whisper's from openai/whisper's README ("Available models": tiny 39 M,
/// base 74 M, small 244 M, medium 769 M, large 1550 M); distil-whisper's from
/// huggingface/distil-whisper's README (distil-large-v2/v3 756 M, distil-medium.en 394 M,
/// distil-small.en 166 M); CosyVoice, CosyVoice2 and Dia as their names and model cards give
/// them (300 M, 0.5 B, 1.6 B). Every Systran `model.bin` holds about 2 bytes per parameter:
/// the conversions are float16.
pub(crate) const KNOWN_MODELS: &[KnownModel] = &[
    whisper!(
        "faster-whisper-large-v3",
        "Systran/faster-whisper-large-v3",
        "gpustack/faster-whisper-large-v3",
        3_090 * MB,
        1_550 * M
    ),
    whisper!(
        "faster-whisper-large-v2",
        "Systran/faster-whisper-large-v2",
        "gpustack/faster-whisper-large-v2",
        3_090 * MB,
        1_550 * M
    ),
    whisper!(
        "faster-whisper-large-v1",
        "Systran/faster-whisper-large-v1",
        "gpustack/faster-whisper-large-v1",
        3_090 * MB,
        1_550 * M
    ),
    whisper!(
        "faster-whisper-medium",
        "Systran/faster-whisper-medium",
        "gpustack/faster-whisper-medium",
        1_520 * MB,
        769 * M
    ),
    whisper!(
        "faster-whisper-medium.en",
        "Systran/faster-whisper-medium.en",
        "gpustack/faster-whisper-medium.en",
        1_530 * MB,
        769 * M
    ),
    whisper!(
        "faster-whisper-small",
        "Systran/faster-whisper-small",
        "gpustack/faster-whisper-small",
        484 * MB,
        244 * M
    ),
    whisper!(
        "faster-whisper-small.en",
        "Systran/faster-whisper-small.en",
        "gpustack/faster-whisper-small.en",
        484 * MB,
        244 * M
    ),
    whisper!(
        "faster-whisper-base",
        "Systran/faster-whisper-base",
        "gpustack/faster-whisper-base",
        145 * MB,
        74 * M
    ),
    whisper!(
        "faster-whisper-base.en",
        "Systran/faster-whisper-base.en",
        "gpustack/faster-whisper-base.en",
        145 * MB,
        74 * M
    ),
    whisper!(
        "faster-whisper-tiny",
        "Systran/faster-whisper-tiny",
        "gpustack/faster-whisper-tiny",
        75 * MB,
        39 * M
    ),
    whisper!(
        "faster-whisper-tiny.en",
        "Systran/faster-whisper-tiny.en",
        "gpustack/faster-whisper-tiny.en",
        75 * MB,
        39 * M
    ),
    whisper!(
        "faster-distil-whisper-large-v3",
        "Systran/faster-distil-whisper-large-v3",
        "gpustack/faster-distil-whisper-large-v3",
        1_510 * MB,
        756 * M
    ),
    whisper!(
        "faster-distil-whisper-large-v2",
        "Systran/faster-distil-whisper-large-v2",
        "gpustack/faster-distil-whisper-large-v2",
        1_510 * MB,
        756 * M
    ),
    whisper!(
        "faster-distil-whisper-medium.en",
        "Systran/faster-distil-whisper-medium.en",
        "gpustack/faster-distil-whisper-medium.en",
        789 * MB,
        394 * M
    ),
    whisper!(
        "faster-distil-whisper-small.en",
        "Systran/faster-distil-whisper-small.en",
        "gpustack/faster-distil-whisper-small.en",
        332 * MB,
        166 * M
    ),
    KnownModel {
        name: "cosyvoice-300m",
        family: Family::CosyVoice,
        huggingface: &["FunAudioLLM/CosyVoice-300M"],
        model_scope: &["gpustack/CosyVoice-300M", "iic/CosyVoice-300M"],
        weight_bytes: None,
        parameters: Some(300 * M),
    },
    KnownModel {
        name: "cosyvoice-300m-sft",
        family: Family::CosyVoice,
        huggingface: &["FunAudioLLM/CosyVoice-300M-SFT"],
        model_scope: &["iic/CosyVoice-300M-SFT", "gpustack/CosyVoice-300M-SFT"],
        weight_bytes: None,
        parameters: Some(300 * M),
    },
    KnownModel {
        name: "cosyvoice-300m-instruct",
        family: Family::CosyVoice,
        huggingface: &["FunAudioLLM/CosyVoice-300M-Instruct"],
        model_scope: &[
            "gpustack/CosyVoice-300M-Instruct",
            "iic/CosyVoice-300M-Instruct",
        ],
        weight_bytes: None,
        parameters: Some(300 * M),
    },
    KnownModel {
        name: "cosyvoice-300m-25hz",
        family: Family::CosyVoice,
        huggingface: &[],
        model_scope: &["iic/CosyVoice-300M-25Hz"],
        weight_bytes: None,
        parameters: Some(300 * M),
    },
    KnownModel {
        name: "cosyvoice2-0.5b",
        family: Family::CosyVoice,
        huggingface: &["FunAudioLLM/CosyVoice2-0.5B"],
        model_scope: &["iic/CosyVoice2-0.5B"],
        weight_bytes: None,
        parameters: Some(500 * M),
    },
    KnownModel {
        name: "dia-1.6b",
        family: Family::Dia,
        huggingface: &["nari-labs/Dia-1.6B"],
        model_scope: &["nari-labs/Dia-1.6B"],
        weight_bytes: None,
        parameters: Some(1_600 * M),
    },
    KnownModel {
        name: "bark",
        family: Family::Bark,
        huggingface: &["suno/bark"],
        model_scope: &[],
        weight_bytes: Some(4_490 * MB),
        parameters: None,
    },
    KnownModel {
        name: "bark-small",
        family: Family::Bark,
        huggingface: &["suno/bark-small"],
        model_scope: &[],
        weight_bytes: Some(1_680 * MB),
        parameters: None,
    },
];

/// The known model with this repository id (case-insensitive, as both hubs resolve ids).
pub(crate) fn by_id(hub: Hub, id: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|model| {
        let ids = match hub {
            Hub::HuggingFace => model.huggingface,
            Hub::ModelScope => model.model_scope,
        };
        ids.iter().any(|known| known.eq_ignore_ascii_case(id))
    })
}

/// The known model named `name` (a [`KnownModel::name`]).
pub(crate) fn by_name(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|model| model.name == name)
}

/// The known model of `family` whose name is a component of `path` (a directory named after
/// the repository, or a Hugging Face cache directory `models--Systran--faster-whisper-tiny`).
pub(crate) fn by_path(family: Family, path: &std::path::Path) -> Option<&'static KnownModel> {
    let components: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_lowercase())
        .collect();
    KNOWN_MODELS
        .iter()
        .filter(|model| model.family == family)
        .find(|model| {
            components.iter().any(|component| {
                component == model.name || component.ends_with(&format!("--{}", model.name))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_model_of_the_table_is_known_on_both_hubs_where_published() {
        for name in [
            "faster-whisper-large-v3",
            "faster-whisper-large-v2",
            "faster-whisper-large-v1",
            "faster-whisper-medium",
            "faster-whisper-medium.en",
            "faster-whisper-small",
            "faster-whisper-small.en",
            "faster-whisper-tiny",
            "faster-whisper-tiny.en",
            "faster-distil-whisper-large-v3",
            "faster-distil-whisper-large-v2",
            "faster-distil-whisper-medium.en",
            "cosyvoice-300m",
            "cosyvoice-300m-sft",
            "cosyvoice-300m-instruct",
            "cosyvoice-300m-25hz",
            "cosyvoice2-0.5b",
            "dia-1.6b",
        ] {
            let model = KNOWN_MODELS.iter().find(|m| m.name == name).expect(name);
            assert!(!model.model_scope.is_empty(), "{name}");
            if model.family == Family::FasterWhisper {
                assert!(model.weight_bytes.is_some(), "{name}");
            }
        }
    }

    #[test]
    fn ids_match_case_insensitively_and_per_hub() {
        let model = by_id(Hub::HuggingFace, "systran/FASTER-whisper-tiny.en").unwrap();
        assert_eq!(model.name, "faster-whisper-tiny.en");
        assert!(by_id(Hub::ModelScope, "Systran/faster-whisper-tiny.en").is_none());
        assert_eq!(
            by_id(Hub::ModelScope, "iic/CosyVoice-300M-25Hz")
                .unwrap()
                .name,
            "cosyvoice-300m-25hz"
        );
    }

    #[test]
    fn paths_match_whole_components_only() {
        let cache = std::path::Path::new(
            "/root/.cache/huggingface/hub/models--Systran--faster-whisper-medium.en/snapshots/abc",
        );
        assert_eq!(
            by_path(Family::FasterWhisper, cache).unwrap().name,
            "faster-whisper-medium.en"
        );
        let dir = std::path::Path::new("/models/faster-whisper-large-v3");
        assert_eq!(
            by_path(Family::FasterWhisper, dir).unwrap().name,
            "faster-whisper-large-v3"
        );
        let other = std::path::Path::new("/models/my-faster-whisper-large-v3-finetune");
        assert!(by_path(Family::FasterWhisper, other).is_none());
    }
}
