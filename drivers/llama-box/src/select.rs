//! What a GGUF file is (LLM, embedding, reranker, image model, or nothing llama-box serves) and
//! which multimodal projector goes with it.

use std::path::{Path, PathBuf};

use inferkit_core::gguf::GgufModel;
use inferkit_core::{Category, Error, ModelFacts, Result};

use crate::flags::Args;

/// GPUStack's message for a GGUF file llama-box cannot serve on its own (§1.6 of the behaviour
/// spec): a projector, an adapter, or an incomplete diffusion model.
pub const NOT_SUPPORTED: &str = "Not a supported model.";

/// Tensor-name prefixes of the parts of a stable-diffusion.cpp model file.
const DIFFUSION_MODEL: [&str; 3] = ["model.diffusion_model.", "double_blocks.", "joint_blocks."];
const AUTOENCODER: [&str; 1] = ["first_stage_model."];
const CONDITIONERS: [&str; 2] = ["cond_stage_model.", "text_encoders."];

/// Flags that give llama-box the parts of an image model kept in separate files.
const AUTOENCODER_FLAGS: [&str; 2] = ["--image-vae-model", "--image-taesd-model"];
const CONDITIONER_FLAGS: [&str; 3] = [
    "--image-clip-l-model",
    "--image-clip-g-model",
    "--image-t5xxl-model",
];

/// The categories of a GGUF model, checked in GPUStack's order: reranker, embedding, image,
/// else LLM. Refuses ([`Error::Unsupported`], its reason opening with `NOT_SUPPORTED`)
/// projector and adapter files, and diffusion models missing their autoencoder or text
/// encoders (unless `args` give them as separate files).
pub fn detect_categories(gguf: &GgufModel, args: &Args) -> Result<Vec<Category>> {
    if gguf.is_diffusion() {
        return diffusion_category(gguf, args);
    }
    let general_type = gguf.metadata().get_str("general.type")?;
    let architecture = gguf.architecture()?;
    // gguf-parser-go's rule: architecture `clip` is a projector, `controlvector` or type
    // `adapter` an adapter, type `imatrix` importance data; none is a model.
    if matches!(architecture, "clip" | "controlvector")
        || matches!(general_type, Some("adapter" | "imatrix"))
    {
        let what = if architecture == "clip" {
            "a multimodal projector"
        } else {
            "an adapter"
        };
        return Err(Error::unsupported(format!(
            "{NOT_SUPPORTED} {} is {what}, not a model llama-box serves by itself",
            gguf.path().display()
        )));
    }
    let category = if gguf.is_reranker()? {
        Category::Reranker
    } else if gguf.is_embedding()? {
        Category::Embedding
    } else {
        Category::Llm
    };
    Ok(vec![category])
}

fn diffusion_category(gguf: &GgufModel, args: &Args) -> Result<Vec<Category>> {
    let has_tensors = |prefixes: &[&str]| {
        gguf.tensors()
            .iter()
            .any(|t| prefixes.iter().any(|p| t.name.starts_with(p)))
    };
    let has_flag = |flags: &[&str]| flags.iter().any(|f| args.has(f));
    let missing: Vec<&str> = [
        (has_tensors(&DIFFUSION_MODEL), "the diffusion model"),
        (
            has_tensors(&AUTOENCODER) || has_flag(&AUTOENCODER_FLAGS),
            "the autoencoder (VAE)",
        ),
        (
            has_tensors(&CONDITIONERS) || has_flag(&CONDITIONER_FLAGS),
            "the text encoders",
        ),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, part)| part)
    .collect();
    if missing.is_empty() {
        return Ok(vec![Category::Image]);
    }
    Err(Error::unsupported(format!(
        "{NOT_SUPPORTED} {} is an image model without {} (give them with --image-vae-model / \
         --image-clip-l-model / --image-t5xxl-model)",
        gguf.path().display(),
        missing.join(" and ")
    )))
}

/// The directory holding the model file (relative projector paths are resolved against it).
pub fn model_directory(facts: &ModelFacts) -> Option<&Path> {
    facts.path.as_deref().and_then(Path::parent)
}

/// The projector (`--mmproj`) to load with the model: the user's, resolved against the model's
/// directory when relative; else the best `*mmproj*.gguf` next to the model (f32, then f16,
/// then bf16, then any other, ties by name) among those made for this model; else none. Image
/// models take none.
///
/// "Made for this model": llama-box discards a projector whose output width differs from the
/// model's embedding length, so a candidate whose header shows another width is passed over
/// (a directory holding the projectors of several model sizes). This reads the candidates'
/// headers; one that cannot be read is taken on trust, and loading it will say why.
///
/// GPUStack took the first file of an unsorted glob at launch and the first ascending match
/// at estimate time, so the two could differ; this one choice feeds both.
pub fn choose_mmproj(facts: &ModelFacts, args: &Args, categories: &[Category]) -> Option<PathBuf> {
    if let Some(given) = args.last("--mmproj").and_then(|a| a.value()) {
        return Some(resolve(facts, Path::new(given)));
    }
    if categories.contains(&Category::Image) {
        return None;
    }
    let n_embd = facts.gguf.as_ref().and_then(|g| g.embedding_length().ok());
    mmproj_candidates(facts).into_iter().find(|candidate| {
        match (GgufModel::open(candidate), n_embd) {
            (Ok(projector), Some(n_embd)) => projector_matches(&projector, n_embd) != Some(false),
            _ => true,
        }
    })
}

/// `*mmproj*.gguf` files next to the model, best first.
pub fn mmproj_candidates(facts: &ModelFacts) -> Vec<PathBuf> {
    let Some(listing) = facts.directory.as_ref() else {
        return Vec::new();
    };
    let mut names: Vec<&String> = listing
        .files
        .iter()
        .filter(|f| !f.contains('/') && f.contains("mmproj") && f.ends_with(".gguf"))
        .collect();
    names.sort_by_key(|f| (precision_rank(f), f.as_str()));
    names
        .into_iter()
        .map(|name| resolve(facts, Path::new(name)))
        .collect()
}

/// Whether a projector's output width is `n_embd`, judged from its last two-dimensional
/// `mm.*.weight` (the final projection; its rows or columns, depending on the projector type,
/// are the text model's embedding). `None` when it has no such tensor (resampler projectors).
pub fn projector_matches(projector: &GgufModel, n_embd: u64) -> Option<bool> {
    let last =
        projector.tensors().iter().rev().find(|t| {
            t.name.starts_with("mm.") && t.name.ends_with(".weight") && t.dims.len() == 2
        })?;
    Some(last.dims.contains(&n_embd))
}

/// A relative path is relative to the model's directory.
fn resolve(facts: &ModelFacts, path: &Path) -> PathBuf {
    match model_directory(facts) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Lower is preferred: full precision first (GPUStack's downloader prefers f32 over f16).
fn precision_rank(file: &str) -> u8 {
    let name = file.to_ascii_lowercase();
    if name.contains("f32") {
        0
    } else if name.contains("bf16") {
        2
    } else if name.contains("f16") {
        1
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferkit_core::{DirectoryFacts, ModelFormat, ModelSource};

    fn facts_with(files: &[&str]) -> ModelFacts {
        let mut listing = DirectoryFacts {
            files: files.iter().map(|f| f.to_string()).collect(),
            ..DirectoryFacts::default()
        };
        listing.files.sort();
        {
            let mut model_facts = ModelFacts::new(
                ModelSource::LocalPath {
                    path: "/models/vlm/model-Q4_K_M.gguf".into(),
                },
                ModelFormat::Gguf,
            );
            model_facts.path = Some("/models/vlm/model-Q4_K_M.gguf".into());
            model_facts.directory = Some(listing);
            model_facts
        }
    }

    #[test]
    fn projector_choice_prefers_precision_then_name() {
        let facts = facts_with(&[
            "model-Q4_K_M.gguf",
            "mmproj-model-bf16.gguf",
            "mmproj-model-f16.gguf",
            "mmproj-model-f32.gguf",
            "mmproj-model-q8_0.gguf",
            "sub/mmproj-other-f32.gguf",
        ]);
        let none = Args::default();
        let chosen = choose_mmproj(&facts, &none, &[Category::Llm]);
        assert_eq!(
            chosen,
            Some(PathBuf::from("/models/vlm/mmproj-model-f32.gguf"))
        );
        let facts = facts_with(&[
            "mmproj-b-q8_0.gguf",
            "mmproj-a-q4_0.gguf",
            "mmproj-bf16.gguf",
        ]);
        let chosen = choose_mmproj(&facts, &none, &[Category::Llm]);
        assert_eq!(chosen, Some(PathBuf::from("/models/vlm/mmproj-bf16.gguf")));
        assert_eq!(choose_mmproj(&facts, &none, &[Category::Image]), None);
        assert_eq!(
            choose_mmproj(&facts_with(&["model.gguf"]), &none, &[Category::Llm]),
            None
        );
    }

    #[test]
    fn a_relative_user_projector_is_resolved_against_the_model_directory() {
        let facts = facts_with(&["mmproj-model-f32.gguf"]);
        let args = Args::parse(&["--mmproj=proj/mm.gguf"], crate::flags::Syntax::Parameters)
            .expect("valid");
        let chosen = choose_mmproj(&facts, &args, &[Category::Llm]);
        assert_eq!(chosen, Some(PathBuf::from("/models/vlm/proj/mm.gguf")));
        let args = Args::parse(
            &["--mmproj", "/abs/mm.gguf"],
            crate::flags::Syntax::Parameters,
        )
        .expect("valid");
        assert_eq!(
            choose_mmproj(&facts, &args, &[Category::Llm]),
            Some(PathBuf::from("/abs/mm.gguf"))
        );
    }
}
