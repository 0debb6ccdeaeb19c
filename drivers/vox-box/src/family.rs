//! The vocabulary of vox-box: its backend frameworks ([`Family`]) and the tasks they serve.

use inferkit_core::Category;
use serde::{Deserialize, Serialize};

/// A vox-box backend framework (vox-box's `backend_framework`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// CosyVoice and CosyVoice2 text-to-speech (`cosyvoice.yaml`).
    CosyVoice,
    /// Whisper converted to CTranslate2, run by faster-whisper (`model.bin` + `tokenizer.json`).
    FasterWhisper,
    /// FunASR speech recognition (Paraformer, SenseVoice) and Qwen-Audio.
    #[serde(rename = "FunASR")]
    FunAsr,
    /// Suno Bark text-to-speech (`BarkModel`).
    Bark,
    /// Nari Labs Dia text-to-speech.
    Dia,
}

impl Family {
    /// The task the family serves.
    pub fn task(self) -> Task {
        match self {
            Family::FasterWhisper | Family::FunAsr => Task::SpeechToText,
            Family::CosyVoice | Family::Bark | Family::Dia => Task::TextToSpeech,
        }
    }

    /// The name vox-box reports as `backend_framework`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::CosyVoice => "CosyVoice",
            Family::FasterWhisper => "FasterWhisper",
            Family::FunAsr => "FunASR",
            Family::Bark => "Bark",
            Family::Dia => "Dia",
        }
    }

    /// The weight file GPUStack sizes the model by, where the estimate depends on its size.
    pub(crate) fn weight_file(self) -> Option<&'static str> {
        match self {
            Family::FasterWhisper => Some("model.bin"),
            Family::Bark => Some("pytorch_model.bin"),
            Family::CosyVoice | Family::FunAsr | Family::Dia => None,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a speech model does (vox-box's `task_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Transcription (`stt`).
    SpeechToText,
    /// Synthesis (`tts`).
    TextToSpeech,
}

impl Task {
    /// The model category of the task.
    pub fn category(self) -> Category {
        match self {
            Task::SpeechToText => Category::SpeechToText,
            Task::TextToSpeech => Category::TextToSpeech,
        }
    }
}
