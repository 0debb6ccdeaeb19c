//! `quantization_config`: the method and, where the config says, the bits and group size.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::JsonDoc;
use crate::Result;

/// The quantization method named by `quant_method`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum QuantMethod {
    /// `awq`: int4 weights packed eight per I32, fp16 scales and packed zero points per group.
    Awq,
    /// `gptq`: int2/3/4/8 weights packed in I32, scales and zero points per group.
    Gptq,
    /// `fp8`: F8_E4M3 weights with per-tensor or per-block scales.
    Fp8,
    /// `compressed-tensors` (llm-compressor): format and bits per config group.
    CompressedTensors,
    /// `bitsandbytes`: int8 or nf4/fp4.
    BitsAndBytes,
    /// `mxfp4`: OCP microscaling FP4, U8 blocks and E8M0 scales (gpt-oss).
    Mxfp4,
    /// Any other method, as written.
    Other(String),
}

impl From<String> for QuantMethod {
    fn from(s: String) -> Self {
        match s.as_str() {
            "awq" => QuantMethod::Awq,
            "gptq" => QuantMethod::Gptq,
            "fp8" => QuantMethod::Fp8,
            "compressed-tensors" => QuantMethod::CompressedTensors,
            "bitsandbytes" => QuantMethod::BitsAndBytes,
            "mxfp4" => QuantMethod::Mxfp4,
            _ => QuantMethod::Other(s),
        }
    }
}

impl From<QuantMethod> for String {
    fn from(m: QuantMethod) -> Self {
        match m {
            QuantMethod::Awq => "awq".into(),
            QuantMethod::Gptq => "gptq".into(),
            QuantMethod::Fp8 => "fp8".into(),
            QuantMethod::CompressedTensors => "compressed-tensors".into(),
            QuantMethod::BitsAndBytes => "bitsandbytes".into(),
            QuantMethod::Mxfp4 => "mxfp4".into(),
            QuantMethod::Other(s) => s,
        }
    }
}

/// `quantization_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationConfig {
    /// `quant_method`.
    pub method: QuantMethod,
    /// Weight bits: `bits` (`w_bit`), bitsandbytes' `load_in_4bit`/`load_in_8bit`, the first
    /// compressed-tensors group's `weights.num_bits`, or implied by the method (fp8: 8,
    /// mxfp4: 4).
    pub bits: Option<u64>,
    /// Quantization group size (`group_size`, `q_group_size`, or the first compressed-tensors
    /// group's); -1 means per channel (GPTQ).
    pub group_size: Option<i64>,
    /// `weight_block_size` of block-wise FP8 (`[128, 128]`).
    pub weight_block_size: Option<Vec<u64>>,
    /// The whole object.
    pub raw: Value,
}

impl QuantizationConfig {
    /// The `quantization_config` at the top level, else in the text config at `text_path`.
    pub(super) fn find(doc: &JsonDoc, text_path: &[&str]) -> Result<Option<Self>> {
        for base in [&[][..], text_path] {
            let path = [base, &["quantization_config"]].concat();
            if let Some(raw) = doc.get::<Map<String, Value>>(&path)? {
                return Self::read(doc, &path, Value::Object(raw)).map(Some);
            }
        }
        Ok(None)
    }

    fn read(doc: &JsonDoc, path: &[&str], raw: Value) -> Result<Self> {
        let method = QuantMethod::from(
            doc.get::<String>(&join(path, &["quant_method"]))?
                .ok_or_else(|| doc.invalid(path, "has no `quant_method`"))?,
        );
        let group = first_config_group(doc, path);
        let group_weights = group
            .as_deref()
            .map(|g| join(path, &["config_groups", g, "weights"]));
        let mut bits = first_present(doc, &[join(path, &["bits"]), join(path, &["w_bit"])])?;
        let mut group_size = first_present(
            doc,
            &[join(path, &["group_size"]), join(path, &["q_group_size"])],
        )?;
        if let Some(weights) = &group_weights {
            if bits.is_none() {
                bits = doc.get(&join(weights, &["num_bits"]))?;
            }
            if group_size.is_none() {
                group_size = doc.get(&join(weights, &["group_size"]))?;
            }
        }
        let bits = match bits {
            Some(b) => Some(b),
            None => implied_bits(doc, path, &method)?,
        };
        Ok(QuantizationConfig {
            method,
            bits,
            group_size,
            weight_block_size: doc.get(&join(path, &["weight_block_size"]))?,
            raw,
        })
    }
}

/// `base` followed by `rest`, as one key path.
fn join<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [base, rest].concat()
}

fn first_present<T: DeserializeOwned>(doc: &JsonDoc, paths: &[Vec<&str>]) -> Result<Option<T>> {
    for path in paths {
        if let Some(v) = doc.get(path)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Name of the first (in key order) compressed-tensors config group.
fn first_config_group(doc: &JsonDoc, path: &[&str]) -> Option<String> {
    doc.get::<Map<String, Value>>(&[path, &["config_groups"]].concat())
        .ok()??
        .keys()
        .next()
        .cloned()
}

fn implied_bits(doc: &JsonDoc, path: &[&str], method: &QuantMethod) -> Result<Option<u64>> {
    Ok(match method {
        QuantMethod::Fp8 => Some(8),
        QuantMethod::Mxfp4 => Some(4),
        QuantMethod::BitsAndBytes => {
            let flag = |k: &str| doc.get::<bool>(&[path, &[k]].concat());
            if flag("load_in_4bit")? == Some(true) {
                Some(4)
            } else if flag("load_in_8bit")? == Some(true) {
                Some(8)
            } else {
                None
            }
        }
        _ => None,
    })
}
