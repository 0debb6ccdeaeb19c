//! Which models MindIE takes: Hugging Face directories of an architecture its model list names
//! ([`crate::architectures`]), LLMs and vision-language models only.

use inferkit_core::{Category, Claim, ModelFacts, ModelSpec, Selection};

use crate::{ID, architectures};

/// Claims a Hugging Face model whose architecture MindIE lists; refuses the rest with the
/// reason (the planner then falls back to vLLM-Ascend), unless the user chose MindIE.
pub(crate) fn select(facts: &ModelFacts, spec: &ModelSpec) -> Selection {
    let Some(hf) = facts.hf.as_ref() else {
        return Selection::new(
            Claim::Refuses,
            "MindIE loads Hugging Face safetensors directories only",
        );
    };
    if spec.categories.iter().any(|c| *c != Category::Llm) {
        return Selection::new(
            Claim::Refuses,
            "MindIE serves LLMs and vision-language models only (no embedding, reranker or \
             generation models)",
        );
    }
    let architectures = &hf.config.architectures;
    match architectures::find(architectures) {
        Some(arch) => Selection {
            claim: Claim::Supports,
            reason: format!(
                "MindIE supports {} ({}{})",
                arch.class,
                arch.families,
                if arch.vision { ", multimodal" } else { "" }
            ),
            categories: vec![Category::Llm],
        },
        None => {
            let missing = format!(
                "MindIE's model list does not include {}",
                architectures
                    .first()
                    .map_or("a model without `architectures`", String::as_str)
            );
            // A user who names MindIE may run a newer MindIE than the list; let them try.
            match spec.backend.as_deref() == Some(ID) {
                true => Selection::new(Claim::Fallback, format!("{missing}; chosen by the user")),
                false => Selection::new(Claim::Refuses, missing),
            }
        }
    }
}
