//! Secrets: which launch parameters and variables hold credentials, and how plans carry them.
//!
//! The one rule of the whole SDK. A variable is secret when its name ends in `_TOKEN`, `_KEY`,
//! `_SECRET` or `_PASSWORD` (`HF_TOKEN`, `OPENAI_API_KEY`); a flag is secret when its name
//! ends the same way (`--api-key`, `--hf-token`) or its flag table marks it
//! ([`FlagSpec::secret`]).
//!
//! A plan never holds a secret value: [`redact`] replaces it with a [placeholder] naming the
//! variable the launcher reads the value from (`${HF_TOKEN}`), and says how the value will
//! reach the backend. The launcher fills the placeholders in from its own environment at start
//! ([`resolve`]): an environment variable of the process is set from the variable it names;
//! a flag the backend also reads from a variable (the `env` mark of its flag table,
//! [`FlagSpec::env`]) moves to that variable; any other secret flag stays on the command line,
//! the one place the backend takes it, where local users can read it in `/proc/PID/cmdline`
//! (the explanation says so).
//!
//! [placeholder]: placeholder

use std::collections::BTreeMap;

use crate::flags::{FlagSpec, FlagTable};
use crate::launch::LaunchSpec;
use crate::{Error, Result};

/// Endings of secret variable names, and (as `-token`, `-key`, ...) of secret flag names.
const SECRET_ENDINGS: [&str; 4] = ["TOKEN", "KEY", "SECRET", "PASSWORD"];

/// Whether the environment variable `name` holds a secret.
pub fn is_secret_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_ENDINGS
        .iter()
        .any(|ending| upper == *ending || upper.ends_with(&format!("_{ending}")))
}

/// Whether the flag spelled `flag` (`--api-key`, `--api_key`) takes a secret value; `spec` is
/// its entry in the backend's flag table, when known.
pub fn is_secret_flag(flag: &str, spec: Option<&FlagSpec>) -> bool {
    spec.is_some_and(|spec| spec.secret) || is_secret_variable(&flag_variable_stem(flag))
}

/// The placeholder standing for the value of `variable`: `${VARIABLE}`.
pub fn placeholder(variable: &str) -> String {
    format!("${{{variable}}}")
}

/// The variable a placeholder names, when `value` is one and names a secret variable.
pub fn placeholder_variable(value: &str) -> Option<&str> {
    value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|name| is_variable_name(name) && is_secret_variable(name))
}

/// The variable the launcher reads the value of the secret flag `flag` from when the backend
/// takes it on the command line only: `INFERKIT_` and the flag's name (`INFERKIT_API_KEY`).
pub fn flag_variable(flag: &str) -> String {
    format!("INFERKIT_{}", flag_variable_stem(flag))
}

/// `--api-key=x` → `API_KEY`: the flag's name without dashes, in upper snake case.
fn flag_variable_stem(flag: &str) -> String {
    let name = flag.split('=').next().unwrap_or(flag);
    name.trim_start_matches('-')
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Replaces every secret value of `spec` with a placeholder and says, one line per secret, where
/// the launcher will read it from and how it reaches the backend (for the plan's explanation).
/// Values that already are placeholders are kept. `table` is the flag table of the program
/// ([`crate::Prepared::flag_table`]): its `secret` marks add to the name rule
/// ([`is_secret_flag`]), and a secret flag with an `env` mark moves to that variable.
pub fn redact(spec: &mut LaunchSpec, table: Option<&FlagTable>) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, value) in &mut spec.env {
        if is_secret_variable(name) && placeholder_variable(value).is_none() {
            *value = placeholder(name);
            notes.push(format!(
                "secret: {name} of {} is not kept in the plan; the launcher passes on the \
                 {name} of its own environment",
                spec.program
            ));
        }
    }
    let mut args = Vec::with_capacity(spec.args.len());
    let mut words = std::mem::take(&mut spec.args).into_iter();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (flag.to_string(), Some(value)),
            _ => (word.clone(), None),
        };
        let known = table
            .and_then(|table| table.lookup(&flag))
            .map(|found| found.spec);
        if !flag.starts_with('-') || !is_secret_flag(&flag, known) {
            args.push(word);
            continue;
        }
        let value = match inline {
            Some(value) => Some(value.to_string()),
            None => words.next(),
        };
        if value
            .as_deref()
            .is_some_and(|v| placeholder_variable(v).is_some())
        {
            args.push(flag);
            args.extend(value);
            continue;
        }
        if let Some(variable) = known.and_then(|spec| spec.env) {
            spec.env.insert(variable.to_string(), placeholder(variable));
            notes.push(format!(
                "secret: {flag} of {} is not kept in the plan; the launcher passes the \
                 {variable} of its own environment as {variable}, which {} reads instead of \
                 the flag",
                spec.program, spec.program
            ));
            continue;
        }
        let variable = flag_variable(&flag);
        args.push(flag.clone());
        args.push(placeholder(&variable));
        notes.push(format!(
            "secret: {flag} of {} is not kept in the plan; the launcher puts the {variable} of \
             its own environment on the command line, the only place {} takes it, where local \
             users can read it (/proc/PID/cmdline)",
            spec.program, spec.program
        ));
    }
    spec.args = args;
    notes
}

/// Fills the placeholders of `spec` in with the values `lookup` gives their variables (the
/// launcher's environment), and returns the secret values set, for scrubbing them from logs.
/// A variable `lookup` does not know is an error naming it, before anything starts.
pub fn resolve(
    spec: &mut LaunchSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut secrets = BTreeMap::new();
    let mut fill = |value: &mut String| -> Result<()> {
        let Some(variable) = placeholder_variable(value) else {
            return Ok(());
        };
        let variable = variable.to_string();
        let secret = lookup(&variable).ok_or_else(|| {
            Error::invalid_parameter(
                variable.as_str(),
                format!(
                    "the plan takes this secret from the environment of the launcher ({}); set \
                     {variable}",
                    placeholder(&variable)
                ),
            )
        })?;
        *value = secret.clone();
        secrets.insert(variable, secret);
        Ok(())
    };
    for value in spec.env.values_mut() {
        fill(value)?;
    }
    for arg in &mut spec.args {
        fill(arg)?;
    }
    Ok(secrets)
}

/// `line` with every secret value in `secrets` (variable → value, from [`resolve`]) replaced by
/// its placeholder: for output lines a backend may echo its arguments in.
pub fn scrub(line: &str, secrets: &BTreeMap<String, String>) -> String {
    secrets
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .fold(line.to_string(), |line, (variable, value)| {
            line.replace(value.as_str(), &placeholder(variable))
        })
}

/// A copy of `spec` fit to show (dry runs, logs): [`redact`] by the name rule alone.
pub fn shown(spec: &LaunchSpec) -> LaunchSpec {
    let mut shown = spec.clone();
    redact(&mut shown, None);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::ProcessRole;

    fn spec(args: &[&str], env: &[(&str, &str)]) -> LaunchSpec {
        LaunchSpec {
            worker: "w".into(),
            role: ProcessRole::Main,
            program: "vllm".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: Vec::new(),
            run_time_files: Vec::new(),
            health: None,
        }
    }

    #[test]
    fn the_name_rule() {
        for secret in [
            "HF_TOKEN",
            "OPENAI_API_KEY",
            "db_password",
            "AWS_SECRET",
            "TOKEN",
        ] {
            assert!(is_secret_variable(secret), "{secret}");
        }
        for plain in [
            "CUDA_VISIBLE_DEVICES",
            "TOKENIZERS_PARALLELISM",
            "KEYRING",
            "MONKEY",
        ] {
            assert!(!is_secret_variable(plain), "{plain}");
        }
        for flag in ["--api-key", "--hf-token", "--api_key", "--api-key=x"] {
            assert!(is_secret_flag(flag, None), "{flag}");
        }
        for flag in [
            "--ssl-keyfile",
            "--ssl-key-file",
            "--tokenizer",
            "--max-num-batched-tokens",
        ] {
            assert!(!is_secret_flag(flag, None), "{flag}");
        }
        let marked = FlagSpec {
            name: "--auth",
            secret: true,
            ..FlagSpec::BLANK
        };
        assert!(is_secret_flag("--auth", Some(&marked)));
    }

    #[test]
    fn plans_keep_placeholders_and_say_how_each_secret_travels() {
        let mut launched = spec(
            &[
                "--port",
                "8000",
                "--api-key",
                "sk-X",
                "--hf-token=hf_Y",
                "--x=1",
            ],
            &[("HF_HUB_OFFLINE", "1"), ("MY_SECRET", "s3")],
        );
        let notes = redact(&mut launched, Some(&TABLE));
        assert_eq!(
            launched.args,
            [
                "--port",
                "8000",
                "--api-key",
                "${INFERKIT_API_KEY}",
                "--x=1"
            ]
        );
        assert_eq!(launched.env["HF_TOKEN"], "${HF_TOKEN}");
        assert_eq!(launched.env["MY_SECRET"], "${MY_SECRET}");
        assert_eq!(launched.env["HF_HUB_OFFLINE"], "1");
        let text = serde_json::to_string(&launched).unwrap() + &notes.join("\n");
        for value in ["sk-X", "hf_Y", "s3"] {
            assert!(!text.contains(value), "{value} leaked: {text}");
        }
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("/proc/PID/cmdline")));
        // Redacting a plan again changes nothing.
        let again = launched.clone();
        assert!(redact(&mut launched, Some(&TABLE)).is_empty());
        assert_eq!(launched, again);
    }

    #[test]
    fn without_a_table_a_secret_flag_stays_on_the_command_line() {
        let mut launched = spec(&["--hf-token", "hf_Y", "--auth", "plain"], &[]);
        let notes = redact(&mut launched, None);
        assert_eq!(
            launched.args,
            ["--hf-token", "${INFERKIT_HF_TOKEN}", "--auth", "plain"]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        // The table's marks: `--auth` is secret, `--hf-token` travels as HF_TOKEN.
        let mut launched = spec(&["--hf-token", "hf_Y", "--auth", "a1"], &[]);
        redact(&mut launched, Some(&TABLE));
        assert_eq!(launched.args, ["--auth", "${INFERKIT_AUTH}"]);
        assert_eq!(launched.env["HF_TOKEN"], "${HF_TOKEN}");
    }

    /// A backend's table: `--hf-token` also read from `HF_TOKEN`, `--auth` marked secret.
    static FLAGS: &[FlagSpec] = &[
        FlagSpec {
            name: "--auth",
            arity: crate::flags::Arity::One(crate::flags::ValueKind::Text),
            secret: true,
            ..FlagSpec::BLANK
        },
        FlagSpec {
            name: "--hf-token",
            arity: crate::flags::Arity::One(crate::flags::ValueKind::Text),
            env: Some("HF_TOKEN"),
            ..FlagSpec::BLANK
        },
    ];
    static TABLE: FlagTable = FlagTable {
        backend: "test",
        version: "0",
        flags: FLAGS,
        spellings: &[
            crate::flags::Spelling {
                text: "--auth",
                flag: 0,
                negative: false,
            },
            crate::flags::Spelling {
                text: "--hf-token",
                flag: 1,
                negative: false,
            },
        ],
    };

    #[test]
    fn the_launcher_fills_placeholders_from_its_environment() {
        let mut launched = spec(
            &["--api-key", "${INFERKIT_API_KEY}", "${NOT_A_SECRET_NAME}"],
            &[("HF_TOKEN", "${HF_TOKEN}")],
        );
        let environment = |name: &str| match name {
            "INFERKIT_API_KEY" => Some("sk-X".to_string()),
            "HF_TOKEN" => Some("hf_Y".to_string()),
            _ => None,
        };
        let secrets = resolve(&mut launched, environment).unwrap();
        assert_eq!(launched.args, ["--api-key", "sk-X", "${NOT_A_SECRET_NAME}"]);
        assert_eq!(launched.env["HF_TOKEN"], "hf_Y");
        assert_eq!(
            scrub("loaded key sk-X and hf_Y", &secrets),
            "loaded key ${INFERKIT_API_KEY} and ${HF_TOKEN}"
        );
        let mut missing = spec(&[], &[("HF_TOKEN", "${HF_TOKEN}")]);
        match resolve(&mut missing, |_| None).unwrap_err() {
            Error::InvalidParameter { name, .. } => assert_eq!(name, "HF_TOKEN"),
            other => panic!("{other:?}"),
        }
    }
}
