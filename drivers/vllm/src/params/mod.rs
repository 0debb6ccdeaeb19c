//! User backend parameters: tokenised, resolved against the target version's flag table,
//! translated from the other supported version where a flag was renamed, and type-checked.

pub(crate) mod settings;

use std::collections::BTreeMap;

use serde_json::Value;

use inferkit_core::flags::{
    Arity, FlagSpec, Found as Resolved, Removed, Replacements, Tokens, Translation, ValueKind,
    is_option,
};
use inferkit_core::{Error, Result};

use crate::flags::{self, VllmVersion};

/// Flags that decide the parallel layout; when the user gives any, automatic parallelism is off.
pub(crate) const PARALLEL_FLAGS: [&str; 2] = ["--tensor-parallel-size", "--pipeline-parallel-size"];

/// One user flag after normalisation.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    /// The flag in the target version's table.
    pub spec: &'static FlagSpec,
    /// The option string to emit: canonical name, or the negative form, plus `.key` for a JSON
    /// sub-key.
    pub option: String,
    /// Given in its negative form.
    pub negated: bool,
    /// Given as `--flag.key value`.
    pub sub_key: bool,
    /// Values, in order.
    pub values: Vec<String>,
}

/// The user's parameters for one target version.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// The version they were checked against.
    pub version: VllmVersion,
    /// The flags, in the user's order.
    pub args: Vec<Arg>,
    /// What was translated or dropped, for the user.
    pub notes: Vec<String>,
}

/// Cross-version translations, from backend-flags/README.md (0.10.1.1 → 0.33.0 removals and
/// their replacements) and the reverse direction for flags 0.33.0 added.
const RULES: &[(VllmVersion, &str, Translation)] = &[
    (
        VllmVersion::V0_33_0,
        "--task",
        Translation::Hook(task_to_runner),
    ),
    (
        VllmVersion::V0_33_0,
        "--cuda-graph-sizes",
        Translation::Hook(cuda_graph_sizes),
    ),
    (
        VllmVersion::V0_33_0,
        "--override-pooler-config",
        Translation::Rename("--pooler-config"),
    ),
    (
        VllmVersion::V0_33_0,
        "--disable-mm-preprocessor-cache",
        Translation::Hook(mm_cache_off),
    ),
    (
        VllmVersion::V0_33_0,
        "--guided-decoding-backend",
        Translation::Rename("--structured-outputs-config.backend"),
    ),
    (
        VllmVersion::V0_33_0,
        "--swap-space",
        Translation::Drop("the V1 engine does not swap KV blocks to host memory"),
    ),
    (
        VllmVersion::V0_33_0,
        "--preemption-mode",
        Translation::Drop("the V1 engine always recomputes preempted requests"),
    ),
    (
        VllmVersion::V0_33_0,
        "--num-lookahead-slots",
        Translation::Drop("it was removed with the V0 engine"),
    ),
    (
        VllmVersion::V0_33_0,
        "--enable-prompt-adapter",
        Translation::Drop("prompt adapters were removed"),
    ),
    (
        VllmVersion::V0_33_0,
        "--disable-async-output-proc",
        Translation::Drop("it was removed with the V0 engine"),
    ),
    (
        VllmVersion::V0_33_0,
        "--max-seq-len-to-capture",
        Translation::Drop("CUDA graphs are sized by --max-cudagraph-capture-size"),
    ),
    (
        VllmVersion::V0_33_0,
        "--rope-scaling",
        Translation::Refuse(
            "removed in vLLM 0.33.0; pass it as --hf-overrides '{\"rope_scaling\": ...}'",
        ),
    ),
    (
        VllmVersion::V0_33_0,
        "--rope-theta",
        Translation::Refuse(
            "removed in vLLM 0.33.0; pass it as --hf-overrides '{\"rope_theta\": ...}'",
        ),
    ),
    (
        VllmVersion::V0_10_1_1,
        "--pooler-config",
        Translation::Rename("--override-pooler-config"),
    ),
    (
        VllmVersion::V0_10_1_1,
        "--max-cudagraph-capture-size",
        Translation::Rename("--cuda-graph-sizes"),
    ),
    (
        VllmVersion::V0_10_1_1,
        "--cudagraph-capture-sizes",
        Translation::Rename("--cuda-graph-sizes"),
    ),
    // In neither table (removed in vLLM 0.10.0): GPUStack injected it for Qwen3 and vLLM 0.10
    // rejects it (hard case 13), so it is dropped with a note.
    (
        VllmVersion::V0_10_1_1,
        "--enable-reasoning",
        Translation::Drop("reasoning is enabled by --reasoning-parser alone"),
    ),
    (
        VllmVersion::V0_33_0,
        "--enable-reasoning",
        Translation::Drop("reasoning is enabled by --reasoning-parser alone"),
    ),
];

/// Whether a refusal of an unknown flag names the nearest valid one: a search over every flag
/// of the version, wasted where the caller drops the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suggest {
    Nearest,
    Nothing,
}

impl Params {
    /// Parses, translates and checks `raw` for `version`.
    pub(crate) fn parse(version: VllmVersion, raw: &[String]) -> Result<Self> {
        Self::parse_with(version, raw, Suggest::Nearest)
    }

    /// [`Params::parse`] for a caller that only uses parameters that parse and drops the
    /// error: an unknown flag is refused without naming the nearest valid one.
    pub(crate) fn parse_without_suggestions(version: VllmVersion, raw: &[String]) -> Result<Self> {
        Self::parse_with(version, raw, Suggest::Nothing)
    }

    fn parse_with(version: VllmVersion, raw: &[String], suggest: Suggest) -> Result<Self> {
        let mut params = Params {
            version,
            args: Vec::new(),
            notes: Vec::new(),
        };
        let mut tokens = Tokens::entries(raw);
        while let Some(token) = tokens.next() {
            if !is_option(token) {
                return Err(Error::invalid_parameter(
                    token,
                    "unexpected positional argument: the model path is set by the platform",
                ));
            }
            // argparse reads `--flag=value` (and a form's `--flag value`) as the flag with its
            // value whatever the flag: the name is looked up after the split.
            let (written, attached) = tokens.split_inline(token, |_| false);
            let (written, attached) =
                split_short_value(version, written.to_string(), attached.map(str::to_string));
            if let Some(why) = removed_before_both(version, &written) {
                // GPUStack injected such flags by default; a switch, so nothing follows it.
                params
                    .notes
                    .push(format!("dropped {written}: {why} (vLLM {version})"));
                continue;
            }
            let mut values: Vec<String> = attached.into_iter().collect();
            let (found, sub_key) = params.lookup(&written, suggest)?;
            let arity = if sub_key.is_some() {
                Arity::One(ValueKind::Text)
            } else {
                found.resolved.spec.arity
            };
            while arity.wants_more(values.len()) {
                match tokens.peek() {
                    Some(value) if !is_option(value) => {
                        values.push(value.to_string());
                        tokens.next();
                    }
                    _ => break,
                }
            }
            let arg = build_arg(found.version, &written, found.resolved, sub_key, values)?;
            match found.rule {
                None => params.push(arg)?,
                Some(rule) => params.translate(&written, arg, rule)?,
            }
        }
        params.refuse_platform_flags()?;
        Ok(params)
    }

    /// Resolves what the user wrote to a flag of the target version, or of the other version
    /// with the translation rule to apply.
    fn lookup(&self, written: &str, suggest: Suggest) -> Result<(Found, Option<String>)> {
        let normalised = flags::normalise_option(written);
        let (option, sub_key) = split_sub_key(&normalised);
        let version = self.version;
        let nearest = |prefix: &str, suffix: &str| match suggest {
            Suggest::Nearest => format!("{prefix}{}{suffix}", flags::nearest(version, option)),
            Suggest::Nothing => String::new(),
        };
        if let Some(found) = flags::resolve(version, option)? {
            return Ok((Found::direct(version, found), sub_key));
        }
        for other in VllmVersion::ALL.into_iter().filter(|v| *v != version) {
            let Some(resolved) = flags::resolve_exact(other, option) else {
                continue;
            };
            if let Some(spec) = version.flag(resolved.spec.name) {
                let negative = spec.negatives.first().filter(|_| resolved.negated);
                let same = Resolved {
                    spec,
                    spelling: negative.copied().unwrap_or(spec.name),
                    negated: negative.is_some(),
                };
                return Ok((Found::direct(version, same), sub_key));
            }
            let rule = rule_for(version, resolved.spec.name).ok_or_else(|| {
                Error::invalid_parameter(
                    written,
                    format!(
                        "removed in vLLM {version} (it exists in {other}){}",
                        nearest("; nearest valid flag: ", "")
                    ),
                )
            })?;
            return Ok((
                Found {
                    version: other,
                    resolved,
                    rule: Some(rule),
                },
                sub_key,
            ));
        }
        Err(Error::invalid_parameter(
            written,
            format!(
                "unknown vLLM {version} flag{}",
                nearest("; did you mean ", "?")
            ),
        ))
    }

    fn push(&mut self, arg: Arg) -> Result<()> {
        if let Some(previous) = self
            .args
            .iter()
            .find(|a| std::ptr::eq(a.spec, arg.spec) && !a.sub_key)
            && !arg.spec.repeatable
            && !arg.sub_key
        {
            self.notes.push(format!(
                "{} is given more than once; vLLM keeps the last value",
                previous.spec.name
            ));
        }
        if arg.spec.deprecated {
            self.notes.push(format!(
                "{} is deprecated in vLLM {}",
                arg.spec.name, self.version
            ));
        }
        self.args.push(arg);
        Ok(())
    }

    /// Applies a cross-version translation to a flag parsed with the other version's table.
    fn translate(&mut self, written: &str, arg: Arg, rule: &Translation) -> Result<()> {
        let version = self.version;
        let value = arg.values.first().cloned().unwrap_or_default();
        let replacement = match rule.apply(&arg.values) {
            Ok(replacement) => replacement,
            Err(Removed::Dropped(why)) => {
                self.notes
                    .push(format!("dropped {written}: {why} (vLLM {version})"));
                return Ok(());
            }
            Err(Removed::Refused(why)) => return Err(Error::invalid_parameter(written, why)),
        };
        let shown: Vec<String> = replacement
            .iter()
            .map(|(name, values)| {
                format!("{name} {}", values.join(" "))
                    .trim_end()
                    .to_string()
            })
            .collect();
        self.notes.push(if shown.is_empty() {
            format!("dropped {written} {value}: it is vLLM's default in {version}")
        } else {
            format!(
                "translated {written} {value} to {} for vLLM {version}",
                shown.join(" ")
            )
        });
        for (name, values) in replacement {
            let (option, sub_key) = split_sub_key(&name);
            let resolved = flags::resolve(version, option)?.ok_or_else(|| {
                Error::invalid_parameter(written, format!("no vLLM {version} equivalent"))
            })?;
            let arg = build_arg(version, written, resolved, sub_key, values)?;
            self.push(arg)?;
        }
        Ok(())
    }

    fn refuse_platform_flags(&self) -> Result<()> {
        match self.args.iter().find(|a| a.spec.platform_owned.is_some()) {
            Some(arg) => Err(Error::invalid_parameter(
                arg.spec.name,
                "set by the platform (it comes last on the command line and cannot be overridden)",
            )),
            None => Ok(()),
        }
    }

    /// The normalised command-line tokens, in the user's order, without the secrets that
    /// travel in the environment ([`Params::env_secrets`]).
    pub(crate) fn tokens(&self) -> Vec<String> {
        self.args
            .iter()
            .filter(|a| env_secret(a).is_none())
            .flat_map(|a| std::iter::once(a.option.clone()).chain(a.values.iter().cloned()))
            .collect()
    }

    /// The user's secret flags that vLLM also reads from a variable, as that variable and the
    /// value (`--api-key K` → `VLLM_API_KEY=K`): off the command line, where every local user
    /// can read it. The last one given wins, as on vLLM's command line.
    pub(crate) fn env_secrets(&self) -> BTreeMap<String, String> {
        self.args
            .iter()
            .filter_map(env_secret)
            .map(|(variable, value)| (variable.to_string(), value.to_string()))
            .collect()
    }

    /// Whether the user gave the flag (in any form).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.args.iter().any(|a| a.spec.name == name)
    }

    /// The last value given to a flag that takes one (vLLM keeps the last).
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|a| a.spec.name == name && !a.sub_key)
            .and_then(|a| a.values.first())
            .map(String::as_str)
    }

    /// The last setting of a switch: `Some(true)` for `--x`, `Some(false)` for its negative.
    pub(crate) fn switch(&self, name: &str) -> Option<bool> {
        self.args
            .iter()
            .rev()
            .find(|a| a.spec.name == name)
            .map(|a| !a.negated)
    }

    /// A flag's value parsed as `T`, with a typed error naming the flag.
    pub(crate) fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.value(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    Error::invalid_parameter(name, format!("`{v}` is out of the supported range"))
                })
            })
            .transpose()
    }

    /// A JSON flag's object as vLLM assembles it: the last whole value given to `name`, then
    /// every later `name.key value` merged in (dotted keys nest; the value is JSON where it
    /// parses, else a string). `None` when the flag is not given.
    pub(crate) fn json_object(&self, name: &str) -> Result<Option<Value>> {
        let mut assembled: Option<Value> = None;
        for arg in self.args.iter().filter(|a| a.spec.name == name) {
            let Some(value) = arg.values.first() else {
                continue;
            };
            if !arg.sub_key {
                let whole: Value = serde_json::from_str(value).map_err(|e| {
                    Error::invalid_parameter(name, format!("`{value}` is not JSON: {e}"))
                })?;
                assembled = Some(whole);
                continue;
            }
            let key = arg.option.get(name.len() + 1..).unwrap_or_default();
            let leaf = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            let patch = key.rsplit('.').fold(leaf, |inner, k| {
                Value::Object([(k.to_string(), inner)].into_iter().collect())
            });
            merge_json(
                assembled.get_or_insert_with(|| Value::Object(Default::default())),
                patch,
            );
        }
        Ok(assembled)
    }

    /// A whole-number flag in vLLM's human-readable form (`32k`).
    pub(crate) fn human_int(&self, name: &str) -> Result<Option<u64>> {
        match self.value(name) {
            None | Some("auto") => Ok(None),
            Some(v) => match inferkit_core::flags::parse_human_int(v) {
                Some(n) if n < 0 => Ok(None),
                Some(n) => Ok(Some(n as u64)),
                None => Err(Error::invalid_parameter(
                    name,
                    format!("`{v}` is not an integer"),
                )),
            },
        }
    }
}

/// Merges `patch` into `target`: objects key by key, any other value replaced.
pub(crate) fn merge_json(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}

/// A resolved flag and, when it came from the other version's table, the rule to apply.
struct Found {
    version: VllmVersion,
    resolved: Resolved,
    rule: Option<&'static Translation>,
}

impl Found {
    fn direct(version: VllmVersion, resolved: Resolved) -> Self {
        Found {
            version,
            resolved,
            rule: None,
        }
    }
}

/// The variable a secret flag travels in, with its value: a table-marked secret with a
/// variable, given one value (several keys stay on the command line: the variable holds one).
fn env_secret(arg: &Arg) -> Option<(&'static str, &str)> {
    match (arg.spec.secret, arg.spec.env, arg.values.as_slice()) {
        (true, Some(variable), [value]) if !arg.sub_key => Some((variable, value.as_str())),
        _ => None,
    }
}

fn rule_for(target: VllmVersion, name: &str) -> Option<&'static Translation> {
    RULES
        .iter()
        .find(|(v, n, _)| *v == target && *n == name)
        .map(|(.., rule)| rule)
}

/// Why a switch removed before both supported versions is dropped, when `written` is one: it
/// has a [`Translation::Drop`] and is in neither table, not even as an abbreviation of the target's.
fn removed_before_both(version: VllmVersion, written: &str) -> Option<&'static str> {
    let normalised = flags::normalise_option(written);
    let Some(Translation::Drop(why)) = rule_for(version, &normalised) else {
        return None;
    };
    let known = VllmVersion::ALL
        .into_iter()
        .any(|v| !matches!(flags::resolve(v, &normalised), Ok(None)));
    (!known).then_some(*why)
}

/// `--compilation-config.level` → (`--compilation-config`, `Some("level")`).
fn split_sub_key(option: &str) -> (&str, Option<String>) {
    match option.split_once('.') {
        Some((base, key)) if base.starts_with("--") && !key.is_empty() => {
            (base, Some(key.to_string()))
        }
        _ => (option, None),
    }
}

/// argparse's attached value of a one-letter short alias: `-O3` is `-O 3`.
fn split_short_value(
    version: VllmVersion,
    written: String,
    attached: Option<String>,
) -> (String, Option<String>) {
    let unknown = || matches!(flags::resolve(version, &written), Ok(None));
    // A short alias is `-` and one ASCII letter: anything else (`-è3`) has none to split off.
    let short_alias = written.len() > 2 && written.is_char_boundary(2);
    if attached.is_some() || written.starts_with("--") || !short_alias || !unknown() {
        return (written, attached);
    }
    let (short, rest) = written.split_at(2);
    match flags::resolve_exact(version, short) {
        Some(r) if r.spec.arity != Arity::Switch => (short.to_string(), Some(rest.to_string())),
        // Versions without a `-O` alias read `-O3` as the optimisation level.
        None if short == "-O" && version.flag(OPTIMIZATION_LEVEL).is_some() => {
            (OPTIMIZATION_LEVEL.to_string(), Some(rest.to_string()))
        }
        _ => (written, attached),
    }
}

/// The flag `-O<n>` means where `-O` is not an alias of `--compilation-config`.
const OPTIMIZATION_LEVEL: &str = "--optimization-level";

/// Checks the values of one flag and builds its [`Arg`].
fn build_arg(
    version: VllmVersion,
    written: &str,
    resolved: Resolved,
    sub_key: Option<String>,
    values: Vec<String>,
) -> Result<Arg> {
    let spec = resolved.spec;
    if let Some(key) = sub_key {
        if spec.arity.kind(0) != Some(ValueKind::Json) {
            return Err(Error::invalid_parameter(
                written,
                format!(
                    "{} is not a JSON flag, so `.{key}` cannot address a key of it",
                    spec.name
                ),
            ));
        }
        if values.len() != 1 {
            return Err(Error::invalid_parameter(written, "expects one value"));
        }
        return Ok(Arg {
            spec,
            option: format!("{}.{key}", spec.name),
            negated: false,
            sub_key: true,
            values,
        });
    }
    match (spec.arity, values.len()) {
        (Arity::Switch, 0) | (Arity::Optional(_), _) => {}
        (Arity::Switch, _) => {
            return Err(Error::invalid_parameter(
                written,
                "is a switch and takes no value",
            ));
        }
        (Arity::One(_) | Arity::Many(_), 0) => {
            return Err(Error::invalid_parameter(written, "expects a value"));
        }
        _ => {}
    }
    for value in &values {
        flags::check_value(version, spec, written, value)?;
    }
    let option = if resolved.negated {
        resolved.spelling
    } else {
        spec.name
    };
    Ok(Arg {
        spec,
        option: option.to_string(),
        negated: resolved.negated,
        sub_key: false,
        values,
    })
}

/// `--cuda-graph-sizes N` → `--max-cudagraph-capture-size N`; several sizes →
/// `--cudagraph-capture-sizes`.
fn cuda_graph_sizes(values: &[String]) -> Replacements {
    let target = if values.len() == 1 {
        "--max-cudagraph-capture-size"
    } else {
        "--cudagraph-capture-sizes"
    };
    vec![(target.to_string(), values.to_vec())]
}

/// `--disable-mm-preprocessor-cache` → `--mm-processor-cache-gb 0`.
fn mm_cache_off(_: &[String]) -> Replacements {
    vec![("--mm-processor-cache-gb".to_string(), vec!["0".to_string()])]
}

/// vLLM 0.10's `--task` expressed with 0.33's `--runner` and `--convert`.
fn task_to_runner(values: &[String]) -> Replacements {
    let task = values.first().map(String::as_str).unwrap_or_default();
    let pair = |runner: &str, convert: Option<&str>| {
        let mut out = vec![("--runner".to_string(), vec![runner.to_string()])];
        if let Some(convert) = convert {
            out.push(("--convert".to_string(), vec![convert.to_string()]));
        }
        out
    };
    match task {
        "embed" | "embedding" => pair("pooling", Some("embed")),
        "classify" | "score" => pair("pooling", Some("classify")),
        "reward" => pair("pooling", None),
        "draft" => pair("draft", None),
        "generate" | "transcription" => pair("generate", None),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(version: VllmVersion, raw: &[&str]) -> Result<Params> {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        Params::parse(version, &raw)
    }

    #[test]
    fn both_value_forms_underscores_and_abbreviations_normalise() {
        let p = parse(
            VllmVersion::V0_33_0,
            &[
                " --max_model_len=8192 ",
                "--gpu-memory-util",
                "0.8",
                "--enforce-eager",
                "--kv-cache-dtype fp8",
            ],
        )
        .unwrap();
        assert_eq!(
            p.tokens(),
            [
                "--max-model-len",
                "8192",
                "--gpu-memory-utilization",
                "0.8",
                "--enforce-eager",
                "--kv-cache-dtype",
                "fp8"
            ]
        );
    }

    #[test]
    fn unknown_flag_suggests_the_nearest() {
        let err = parse(VllmVersion::V0_33_0, &["--max-model-length", "4096"]).unwrap_err();
        assert!(
            err.to_string().contains("did you mean --max-model-len"),
            "{err}"
        );
    }

    /// Selection parses only to read `--hf-overrides` and drops any error: it gets the same
    /// parameters and the same refusals, less the search for the nearest flag.
    #[test]
    fn parsing_without_suggestions_differs_only_in_the_message() {
        let cases: [&[&str]; 5] = [
            &["--max-model-len", "8192", "--enforce-eager"],
            &[
                "--hf-overrides",
                "{\"architectures\": [\"LlamaForCausalLM\"]}",
            ],
            &["--max-model-length", "4096"],
            &["--tensor-parallel-size", "two"],
            &["--task=embed"],
        ];
        for version in VllmVersion::ALL {
            for case in cases {
                let raw: Vec<String> = case.iter().map(|s| s.to_string()).collect();
                let (full, quiet) = (
                    Params::parse(version, &raw),
                    Params::parse_without_suggestions(version, &raw),
                );
                match (full, quiet) {
                    (Ok(full), Ok(quiet)) => {
                        assert_eq!(full.tokens(), quiet.tokens(), "{case:?}");
                        assert_eq!(full.notes, quiet.notes, "{case:?}");
                    }
                    (Err(full), Err(quiet)) => {
                        let (full, quiet) = (full.to_string(), quiet.to_string());
                        assert!(full.starts_with(&quiet), "{full} / {quiet}");
                        assert!(!quiet.contains("did you mean"), "{quiet}");
                    }
                    other => panic!("{version} {case:?}: {other:?}"),
                }
            }
        }
        let raw = vec!["--max-model-length".to_string()];
        let quiet = Params::parse_without_suggestions(VllmVersion::V0_33_0, &raw).unwrap_err();
        assert_eq!(
            quiet.to_string(),
            "invalid parameter --max-model-length: unknown vLLM 0.33.0 flag"
        );
    }

    #[test]
    fn wrong_type_and_bad_choice_are_refused() {
        let err = parse(VllmVersion::V0_33_0, &["--tensor-parallel-size", "two"]).unwrap_err();
        assert!(err.to_string().contains("not an integer"), "{err}");
        let err = parse(VllmVersion::V0_10_1_1, &["--kv-cache-dtype", "int4"]).unwrap_err();
        assert!(err.to_string().contains("choices"), "{err}");
        // 0.33.0 turned the list into an unenforced suggestion.
        assert!(parse(VllmVersion::V0_33_0, &["--kv-cache-dtype", "int4"]).is_ok());
    }

    #[test]
    fn task_becomes_runner_and_convert_on_0_33() {
        let p = parse(VllmVersion::V0_33_0, &["--task=embed"]).unwrap();
        assert_eq!(p.tokens(), ["--runner", "pooling", "--convert", "embed"]);
        assert!(p.notes[0].contains("translated --task"), "{:?}", p.notes);
        let p = parse(VllmVersion::V0_10_1_1, &["--task=embed"]).unwrap();
        assert_eq!(p.tokens(), ["--task", "embed"]);
    }

    #[test]
    fn disable_log_requests_is_the_negative_form_on_0_33() {
        let p = parse(VllmVersion::V0_33_0, &["--disable-log-requests"]).unwrap();
        assert_eq!(p.tokens(), ["--disable-log-requests"]);
        assert_eq!(p.switch("--enable-log-requests"), Some(false));
    }

    #[test]
    fn renamed_flags_cross_both_ways() {
        let p = parse(VllmVersion::V0_33_0, &["--cuda-graph-sizes", "256"]).unwrap();
        assert_eq!(p.tokens(), ["--max-cudagraph-capture-size", "256"]);
        let p = parse(
            VllmVersion::V0_10_1_1,
            &["--max-cudagraph-capture-size", "256"],
        )
        .unwrap();
        assert_eq!(p.tokens(), ["--cuda-graph-sizes", "256"]);
        let p = parse(
            VllmVersion::V0_10_1_1,
            &["--device-memory-utilization", "0.5"],
        )
        .unwrap();
        assert_eq!(p.tokens(), ["--gpu-memory-utilization", "0.5"]);
        let p = parse(VllmVersion::V0_33_0, &["--swap-space", "4"]).unwrap();
        assert!(p.tokens().is_empty());
        assert!(
            p.notes[0].starts_with("dropped --swap-space"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn platform_flags_and_positionals_are_refused() {
        assert!(parse(VllmVersion::V0_33_0, &["--port", "9000"]).is_err());
        assert!(parse(VllmVersion::V0_33_0, &["--served-model-name", "x"]).is_err());
        assert!(parse(VllmVersion::V0_33_0, &["/models/other"]).is_err());
    }

    #[test]
    fn json_sub_keys_and_json_values_are_checked() {
        let p = parse(
            VllmVersion::V0_33_0,
            &["--compilation-config.cudagraph_mode", "NONE"],
        )
        .unwrap();
        assert_eq!(p.tokens(), ["--compilation-config.cudagraph_mode", "NONE"]);
        assert!(parse(VllmVersion::V0_33_0, &["--hf-overrides", "{\"a\": "]).is_err());
        assert!(parse(VllmVersion::V0_33_0, &["--max-model-len.x", "1"]).is_err());
    }

    #[test]
    fn a_multibyte_character_after_one_dash_is_an_unknown_flag_not_a_panic() {
        // Found by fuzz/backend_params: `-è…` was split inside the `è`.
        let err = parse(VllmVersion::V0_10_1_1, &["-\u{e8}\u{e8}-ctx-size", "36"]).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    }

    #[test]
    fn one_letter_aliases_take_attached_values() {
        let p = parse(VllmVersion::V0_10_1_1, &["-O3"]).unwrap();
        assert_eq!(p.tokens(), ["--compilation-config", "3"]);
        let p = parse(VllmVersion::V0_33_0, &["-O3"]).unwrap();
        assert_eq!(p.tokens(), ["--optimization-level", "3"]);
        let p = parse(VllmVersion::V0_33_0, &["-tp", "2"]).unwrap();
        assert_eq!(p.tokens(), ["--tensor-parallel-size", "2"]);
    }

    #[test]
    fn switches_refuse_values_and_values_are_required() {
        assert!(parse(VllmVersion::V0_33_0, &["--enforce-eager=yes"]).is_err());
        assert!(parse(VllmVersion::V0_33_0, &["--max-model-len"]).is_err());
    }
}
