//! Recognition of model directories laid out like the real repositories, and of repository ids.

mod support;

use inferkit_core::{Backend, Category, Claim, DirectoryFacts, Error, ModelFacts};
use inferkit_vox_box::{Family, Task, VoxBox, recognise};
use support::*;

#[test]
fn each_family_is_recognised_from_its_files() {
    let cases = [
        (
            "faster-whisper-large-v3",
            Family::FasterWhisper,
            None,
            Some("faster-whisper-large-v3"),
        ),
        (
            "faster-whisper-large-v2",
            Family::FasterWhisper,
            None,
            Some("faster-whisper-large-v2"),
        ),
        (
            "faster-whisper-tiny.en",
            Family::FasterWhisper,
            None,
            Some("faster-whisper-tiny.en"),
        ),
        (
            "faster-distil-whisper-large-v3",
            Family::FasterWhisper,
            None,
            Some("faster-distil-whisper-large-v3"),
        ),
        (
            "CosyVoice-300M-SFT",
            Family::CosyVoice,
            Some("CosyVoice"),
            Some("cosyvoice-300m-sft"),
        ),
        (
            "CosyVoice2-0.5B",
            Family::CosyVoice,
            Some("CosyVoice2"),
            Some("cosyvoice2-0.5b"),
        ),
        ("Dia-1.6B", Family::Dia, None, Some("dia-1.6b")),
        ("bark-small", Family::Bark, None, Some("bark-small")),
        (
            "SenseVoiceSmall",
            Family::FunAsr,
            Some("SenseVoiceSmall"),
            None,
        ),
    ];
    for (dir, family, variant, model) in cases {
        let (facts, _) = local(dir);
        let r = recognise(&facts).unwrap_or_else(|e| panic!("{dir}: {e:?}"));
        assert_eq!(r.family, family, "{dir}");
        assert_eq!(r.variant.as_deref(), variant, "{dir}");
        assert_eq!(r.model.as_deref(), model, "{dir}");
    }
}

#[test]
fn whisper_evidence_distinguishes_processor_config_from_ct2_config() {
    let (v3, _) = local("faster-whisper-large-v3");
    assert!(
        recognise(&v3)
            .unwrap()
            .evidence
            .contains("WhisperProcessor")
    );
    // large-v2 has no preprocessor_config.json: vox-box would load it; its config.json decides.
    let (v2, _) = local("faster-whisper-large-v2");
    assert!(
        recognise(&v2)
            .unwrap()
            .evidence
            .contains("CTranslate2 Whisper config.json")
    );
}

#[test]
fn placeholder_weights_fall_back_to_published_sizes() {
    // The fixtures' model.bin files are empty: the size comes from the named model.
    let (facts, _) = local("faster-whisper-large-v3");
    assert_eq!(recognise(&facts).unwrap().weight_bytes, Some(3_090_000_000));
    let (facts, _) = local("faster-whisper-tiny.en");
    assert_eq!(recognise(&facts).unwrap().weight_bytes, Some(75_000_000));
}

#[test]
fn measured_weight_file_wins_over_the_name() {
    let (mut facts, _) = local("faster-whisper-tiny.en");
    let dir = facts.directory.as_mut().unwrap();
    dir.sizes.insert("model.bin".into(), 1_234_567);
    assert_eq!(recognise(&facts).unwrap().weight_bytes, Some(1_234_567));
}

#[test]
fn order_puts_cosyvoice_before_funasr() {
    // CosyVoice repositories ship a ModelScope configuration.json too; cosyvoice.yaml wins.
    let (facts, _) = local("CosyVoice-300M-SFT");
    assert!(
        facts
            .directory
            .as_ref()
            .unwrap()
            .has_file("configuration.json")
    );
    assert_eq!(recognise(&facts).unwrap().family, Family::CosyVoice);
}

#[test]
fn an_llm_directory_is_refused_with_every_family_tried() {
    let (facts, spec) = local("Qwen2.5-0.5B-Instruct");
    let unrecognised = recognise(&facts).unwrap_err();
    assert_eq!(unrecognised.reasons.len(), 5, "{:?}", unrecognised.reasons);
    assert!(
        unrecognised.reasons[3].contains("lack BarkModel"),
        "{:?}",
        unrecognised.reasons
    );
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Refuses);
}

#[test]
fn a_transformers_whisper_is_not_a_vox_box_model() {
    // openai/whisper-large-v3 layout: vox-box needs the CTranslate2 conversion (model.bin).
    let (facts, spec) = local("whisper-large-v3");
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Refuses);
    assert!(
        selection.reason.contains("FasterWhisper: no model.bin"),
        "{}",
        selection.reason
    );
}

#[test]
fn a_garbled_config_is_a_parse_error_with_file_and_offset() {
    let (facts, spec) = local("garbled-bark");
    let unrecognised = recognise(&facts).unwrap_err();
    assert_eq!(
        unrecognised.errors.len(),
        1,
        "reported once: {:?}",
        unrecognised.errors
    );
    match unrecognised.into_error() {
        Error::Parse { file, offset, what } => {
            assert_eq!(
                file,
                std::path::Path::new("/models/garbled-bark/config.json")
            );
            // serde stops at the `:` after "model_type", inside the unclosed array.
            let text = std::fs::read(fixture_dir("garbled-bark").join("config.json")).unwrap();
            assert_eq!(text[offset as usize], b':', "{what}");
            assert!(what.contains("line 3 column 15"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Refuses);
    assert!(
        selection.reason.contains("config.json"),
        "{}",
        selection.reason
    );
}

#[test]
fn a_whisper_with_no_backend_or_category_is_preferred_as_speech_to_text() {
    // GPUStack 0.7.1 sent this model to vLLM; here vox-box claims it.
    let (facts, spec) = local("faster-whisper-large-v3");
    assert!(spec.backend.is_none() && spec.categories.is_empty());
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Prefers, "{}", selection.reason);
    assert_eq!(selection.categories, vec![Category::SpeechToText]);

    let (facts, spec) = remote(huggingface("Systran/faster-whisper-large-v3"));
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Prefers, "{}", selection.reason);
    assert_eq!(selection.categories, vec![Category::SpeechToText]);
}

#[test]
fn user_categories_that_contradict_the_files_are_refused() {
    let (facts, mut spec) = local("Dia-1.6B");
    spec.categories = vec![Category::SpeechToText];
    let selection = VoxBox::new().select(&facts, &spec);
    assert_eq!(selection.claim, Claim::Refuses);
    assert!(
        selection.reason.contains("Dia text_to_speech"),
        "{}",
        selection.reason
    );
    spec.categories = vec![Category::TextToSpeech];
    assert_eq!(VoxBox::new().select(&facts, &spec).claim, Claim::Prefers);
}

#[test]
fn every_id_of_the_supported_model_table_is_recognised() {
    let table = [
        (
            "Systran/faster-whisper-large-v3",
            "gpustack/faster-whisper-large-v3",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-large-v2",
            "gpustack/faster-whisper-large-v2",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-large-v1",
            "gpustack/faster-whisper-large-v1",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-medium",
            "gpustack/faster-whisper-medium",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-medium.en",
            "gpustack/faster-whisper-medium.en",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-small",
            "gpustack/faster-whisper-small",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-small.en",
            "gpustack/faster-whisper-small.en",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-distil-whisper-large-v3",
            "gpustack/faster-distil-whisper-large-v3",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-distil-whisper-large-v2",
            "gpustack/faster-distil-whisper-large-v2",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-distil-whisper-medium.en",
            "gpustack/faster-distil-whisper-medium.en",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-tiny",
            "gpustack/faster-whisper-tiny",
            Family::FasterWhisper,
        ),
        (
            "Systran/faster-whisper-tiny.en",
            "gpustack/faster-whisper-tiny.en",
            Family::FasterWhisper,
        ),
        (
            "FunAudioLLM/CosyVoice-300M-Instruct",
            "gpustack/CosyVoice-300M-Instruct",
            Family::CosyVoice,
        ),
        (
            "FunAudioLLM/CosyVoice-300M-SFT",
            "iic/CosyVoice-300M-SFT",
            Family::CosyVoice,
        ),
        (
            "FunAudioLLM/CosyVoice-300M",
            "gpustack/CosyVoice-300M",
            Family::CosyVoice,
        ),
        (
            "FunAudioLLM/CosyVoice2-0.5B",
            "iic/CosyVoice2-0.5B",
            Family::CosyVoice,
        ),
        ("nari-labs/Dia-1.6B", "nari-labs/Dia-1.6B", Family::Dia),
    ];
    for (hf, ms, family) in table {
        for source in [huggingface(hf), model_scope(ms)] {
            let (facts, _) = remote(source.clone());
            let r = recognise(&facts).unwrap_or_else(|e| panic!("{source:?}: {e:?}"));
            assert_eq!(r.family, family, "{source:?}");
            assert_eq!(r.task, family.task());
            assert!(r.model.is_some(), "{source:?}");
        }
    }
    // CosyVoice-300M-25Hz is published on ModelScope only.
    let (facts, _) = remote(model_scope("iic/CosyVoice-300M-25Hz"));
    assert_eq!(
        recognise(&facts).unwrap().model.as_deref(),
        Some("cosyvoice-300m-25hz")
    );
    let (facts, _) = remote(model_scope("iic/CosyVoice2-0.5B"));
    assert_eq!(
        recognise(&facts).unwrap().variant.as_deref(),
        Some("CosyVoice2")
    );
}

#[test]
fn owner_rules_recognise_unlisted_whisper_repositories() {
    let (facts, _) = remote(huggingface("Systran/faster-whisper-base"));
    assert_eq!(
        recognise(&facts).unwrap().model.as_deref(),
        Some("faster-whisper-base")
    );
    let (facts, _) = remote(model_scope("gpustack/faster-whisper-large-v3-turbo"));
    let r = recognise(&facts).unwrap();
    assert_eq!(
        (r.family, r.task, r.weight_bytes),
        (Family::FasterWhisper, Task::SpeechToText, None)
    );
    let (facts, _) = remote(huggingface("Qwen/Qwen2.5-0.5B-Instruct"));
    assert!(recognise(&facts).is_err());
}

/// A remote repository's listing, as a hub client would report it.
fn remote_listing(repo_id: &str, files: &[&str], texts: &[(&str, &str)]) -> ModelFacts {
    let (mut facts, _) = remote(huggingface(repo_id));
    facts.directory = Some(DirectoryFacts {
        files: files.iter().map(|f| f.to_string()).collect(),
        texts: texts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..DirectoryFacts::default()
    });
    facts
}

#[test]
fn remote_whisper_without_tokenizer_is_refused_not_crashed() {
    // vox-box 0.0.21 raises IndexError here (it tests the length of the wrong list).
    let facts = remote_listing("someone/whisper-ct2", &["config.json", "model.bin"], &[]);
    let unrecognised = recognise(&facts).unwrap_err();
    assert!(
        unrecognised
            .reasons
            .iter()
            .any(|r| r == "FasterWhisper: model.bin without tokenizer.json"),
        "{:?}",
        unrecognised.reasons
    );
}

#[test]
fn remote_funasr_without_config_files_is_refused_not_crashed() {
    // vox-box 0.0.21 returns a bare False where a tuple is unpacked.
    let facts = remote_listing("someone/asr", &["model.pt"], &[]);
    let unrecognised = recognise(&facts).unwrap_err();
    assert!(
        unrecognised
            .reasons
            .iter()
            .any(|r| r.starts_with("FunASR: none of")),
        "{:?}",
        unrecognised.reasons
    );
}

#[test]
fn qwen_audio_is_funasr() {
    let config = r#"{"architectures": ["QWenLMHeadModel"], "audio": {"n_layer": 32}}"#;
    let facts = remote_listing(
        "Qwen/Qwen-Audio-Chat",
        &["config.json"],
        &[("config.json", config)],
    );
    let r = recognise(&facts).unwrap();
    assert_eq!(
        (r.family, r.variant.as_deref()),
        (Family::FunAsr, Some("QwenAudio"))
    );
}

#[test]
fn cosyvoice2_yaml_alone_is_explained() {
    let facts = remote_listing("someone/cosy", &["cosyvoice2.yaml", "llm.pt"], &[]);
    let unrecognised = recognise(&facts).unwrap_err();
    assert!(unrecognised.reasons[0].contains("has cosyvoice2.yaml but no cosyvoice.yaml"));
}

#[test]
fn remote_whisper_needs_a_processor_config_where_vox_box_cannot_load_it() {
    let config = r#"{"lang_ids": [50259], "suppress_ids": [1], "suppress_ids_begin": [220]}"#;
    let files = ["config.json", "model.bin", "tokenizer.json"];
    let facts = remote_listing("someone/whisper-ct2", &files, &[("config.json", config)]);
    let unrecognised = recognise(&facts).unwrap_err();
    assert!(
        unrecognised.reasons[1].contains("deploy a downloaded copy"),
        "{:?}",
        unrecognised.reasons
    );
    let processor = r#"{"processor_class": "WhisperProcessor"}"#;
    let files = [
        "config.json",
        "model.bin",
        "preprocessor_config.json",
        "tokenizer.json",
    ];
    let texts = [
        ("config.json", config),
        ("preprocessor_config.json", processor),
    ];
    assert_eq!(
        recognise(&remote_listing("someone/whisper-ct2", &files, &texts))
            .unwrap()
            .family,
        Family::FasterWhisper
    );
}

#[test]
fn cosyvoice_and_dia_selections_state_their_platforms() {
    for dir in ["CosyVoice-300M-SFT", "Dia-1.6B"] {
        let (facts, spec) = local(dir);
        let reason = VoxBox::new().select(&facts, &spec).reason;
        assert!(
            reason.ends_with("runs on Linux amd64 and macOS workers only"),
            "{reason}"
        );
    }
    let (facts, spec) = local("bark-small");
    assert!(
        !VoxBox::new()
            .select(&facts, &spec)
            .reason
            .contains("workers only")
    );
}
