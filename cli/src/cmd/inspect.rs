//! `inferkit inspect`: what inferkit reads from a model's files.

use std::io::Write;

use inferkit::Result;
use inferkit::gguf::{GgufModel, ReadOptions, file_type_name};
use inferkit::hf::HfModel;
use serde_json::{Value, json};

use crate::model_arg;
use crate::output::{Failure, Output};

/// Prints what inferkit reads from a model: format, architecture, sizes, context, heads.
///
/// A GGUF file gives its metadata (large arrays such as the tokenizer's are skipped unless
/// --full); a Hugging Face directory gives its config.json and safetensors headers.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a GGUF file or a Hugging Face model directory.
    pub model: String,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Read the large metadata arrays too (a full parse of the GGUF header).
    #[arg(long)]
    pub full: bool,
    /// List every tensor (name, type, dimensions, bytes) in the summary.
    #[arg(long)]
    pub tensors: bool,
}

/// Runs `inspect`.
pub fn run(args: &Args, out: &mut Output) -> std::result::Result<(), Failure> {
    let spec = model_arg::resolve(&args.model)?;
    let path = model_arg::local_path(&spec)?;
    if path.is_dir() {
        let summary = hf_summary(&HfModel::open(path)?);
        return print(out, &summary, args.json);
    }
    let options = if args.full {
        ReadOptions::full()
    } else {
        ReadOptions::default()
    };
    let model = GgufModel::open_with(path, &options)?;
    let summary = gguf_summary(&model)?;
    print(out, &summary, args.json)?;
    if !args.json {
        print_gguf_details(out, &model, args.tensors)?;
    }
    Ok(())
}

fn print(out: &mut Output, summary: &Value, json: bool) -> std::result::Result<(), Failure> {
    if json {
        writeln!(out, "{summary}")?;
    } else {
        print_fields(out, summary)?;
    }
    Ok(())
}

/// An accessor's value, or null when the key is absent or unreadable for this kind of file
/// (a clip file has no `<arch>.block_count`).
fn opt<T: Into<Value>>(value: Result<T>) -> Value {
    value.map(Into::into).unwrap_or(Value::Null)
}

fn gguf_summary(model: &GgufModel) -> Result<Value> {
    let file_type = model.file_type()?;
    // A GgufModel always has its first shard (`GgufModel::from_headers` refuses none).
    let first = &model.shards()[0];
    Ok(json!({
        "format": "gguf",
        "path": model.path(),
        "architecture": opt(model.architecture().map(str::to_owned)),
        "name": model.name()?,
        "version": model.version(),
        "byte_order": model.byte_order(),
        "tensor_count": model.tensors().len(),
        "metadata_count": model.metadata().len(),
        "tensor_bytes": model.tensor_bytes(),
        "parameters": model.parameters(),
        "file_type": file_type.and_then(file_type_name),
        "file_type_id": file_type,
        "block_count": opt(model.block_count()),
        "context_length": opt(model.context_length()),
        "embedding_length": opt(model.embedding_length()),
        "feed_forward_length": opt(model.feed_forward_length()),
        "head_count": opt(model.head_count()),
        "head_count_kv": opt(model.head_count_kv()),
        "key_length": opt(model.key_length()),
        "value_length": opt(model.value_length()),
        "sliding_window": opt(model.sliding_window()),
        "expert_count": opt(model.expert_count()),
        "expert_used_count": opt(model.expert_used_count()),
        "vocab_size": opt(model.vocab_size()),
        "pooling_type": opt(model.pooling_type()),
        "embedding": opt(model.is_embedding()),
        "clip": model.is_clip(),
        "projector_type": opt(model.projector_type().map(|p| p.map(str::to_owned))),
        "clip_vision": opt(model.clip_vision().map(|v| serde_json::to_value(v).unwrap_or_default())),
        "diffusion": model.is_diffusion(),
        "alignment": first.alignment,
        "data_offset": first.data_offset,
        "shards": model.shards().len(),
    }))
}

fn print_fields(out: &mut Output, summary: &Value) -> std::io::Result<()> {
    let Value::Object(fields) = summary else {
        return Ok(());
    };
    for (key, value) in fields {
        if !value.is_null() {
            writeln!(out, "{key:>20}: {value}")?;
        }
    }
    Ok(())
}

fn print_gguf_details(
    out: &mut Output,
    model: &GgufModel,
    list_tensors: bool,
) -> std::io::Result<()> {
    writeln!(out, "{:>20}:", "metadata")?;
    for entry in model.metadata().iter() {
        writeln!(
            out,
            "{:>22}{} = {}",
            "",
            entry.key,
            short_value(&entry.value)
        )?;
    }
    if list_tensors {
        writeln!(out, "{:>20}:", "tensors")?;
        for t in model.tensors() {
            writeln!(
                out,
                "{:>22}{} {} {:?} {} bytes",
                "", t.name, t.ggml_type, t.dims, t.bytes
            )?;
        }
    }
    Ok(())
}

/// The same fields for a Hugging Face directory (`config.json` + safetensors headers).
/// `format` is `safetensors` when the directory has safetensors weights, else `hf` (pickle
/// checkpoints or no weights: then sizes are absent and `parameters` is the config's estimate).
fn hf_summary(model: &HfModel) -> Value {
    let text = &model.config.text;
    let weights = model.safetensors();
    let parameters = model.parameters();
    json!({
        "format": if weights.is_some() { "safetensors" } else { "hf" },
        "path": model.dir,
        "architecture": model.config.architectures.first(),
        "model_type": model.config.model_type,
        "version": Value::Null,
        "tensor_count": weights.map(|w| w.summary.tensor_count),
        "metadata_count": Value::Null,
        "tensor_bytes": weights.map(|w| w.summary.total_bytes),
        "parameters": parameters.map(|p| p.count),
        "parameters_exact": parameters.map(|p| p.exact),
        "file_type": model.config.torch_dtype,
        "quantization": model.config.quantization.as_ref().map(|q| serde_json::to_value(q).unwrap_or_default()),
        "block_count": text.num_hidden_layers,
        "context_length": text.max_position_embeddings,
        "embedding_length": text.hidden_size,
        "feed_forward_length": text.intermediate_size,
        "head_count": text.num_attention_heads,
        "head_count_kv": text.num_key_value_heads,
        "key_length": text.head_dim,
        "sliding_window": text.sliding_window,
        "vocab_size": text.vocab_size,
        "vision": model.config.vision.is_some(),
        "shards": weights.map(|w| w.files.len()),
    })
}

fn short_value(value: &inferkit::gguf::Value) -> String {
    use inferkit::gguf::Value as V;
    match value {
        V::Array(a) if a.is_skipped() => {
            format!("[{}; {}] (skipped)", a.element_type.name(), a.len)
        }
        V::Array(a) => format!("[{}; {}]", a.element_type.name(), a.len),
        V::String(s) if s.len() > 60 => format!(
            "{:?}... ({} bytes)",
            &s[..s.floor_char_boundary(60)],
            s.len()
        ),
        V::String(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}
