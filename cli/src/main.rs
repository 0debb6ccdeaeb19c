//! `inferkit`: inspect model files, estimate their memory, plan a deployment on a cluster,
//! probe this machine, serve a plan, and print the JSON Schemas of the file formats.
//!
//! Exit status: 0 on success, 1 when the library refuses (a model that does not fit, a bad
//! file) or stdout cannot be written, 2 for a command-line usage error. `--json` output and
//! the error object are public contracts (see `tests/contract.rs`).

mod catalog;
mod cluster_arg;
mod cmd;
mod download;
mod kubernetes_arg;
mod logging;
mod model_arg;
mod output;
mod progress;
mod warnings;

use std::process::ExitCode;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::output::{Failure, Output};

/// Plan, size and launch AI model inference on GPU fleets.
///
/// MODEL arguments are a GGUF file (any shard of a split model, or a header-only GGUF), a
/// Hugging Face model directory (`config.json` + safetensors headers), or a model by name,
/// planned without downloading it: `hf://ORG/NAME[@REVISION][:QUANT]`,
/// `hf://ORG/NAME[@REVISION]/PATH/IN/REPO`, `ms://ORG/NAME[@REVISION][:QUANT]`,
/// `ollama://NAME[:TAG]`, or an `http(s)://` URL of a GGUF file. HF_ENDPOINT and HF_TOKEN are
/// honoured; `--offline` reads caches only.
#[derive(Debug, Parser)]
#[command(
    name = "inferkit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Say more: `plan` gives every reason in full; logs go to stderr at info level (-v),
    /// debug (-vv) or trace (-vvv). RUST_LOG (e.g. `inferkit=debug`) takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(cmd::inspect::Args),
    Estimate(cmd::estimate::Args),
    Plan(Box<cmd::plan::Args>),
    Probe(cmd::probe::Args),
    Serve(cmd::serve::Args),
    Schema(cmd::schema::Args),
    /// Prints a shell completion script: `inferkit completions bash > ~/.local/share/bash-completion/completions/inferkit`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether errors are reported as the JSON error object on stdout.
    fn json(&self) -> bool {
        match self {
            Command::Inspect(args) => args.json,
            Command::Estimate(args) => args.json(),
            Command::Plan(args) => args.json(),
            Command::Probe(args) => args.json,
            Command::Serve(_) | Command::Schema(_) | Command::Completions { .. } => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let mut out = Output::stdout();
    let json = cli.command.json();
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(&args, &mut out),
        Command::Estimate(args) => cmd::estimate::run(&args, &mut out),
        Command::Plan(args) => cmd::plan::run(&args, cli.verbose > 0, &mut out),
        Command::Probe(args) => cmd::probe::run(&args, &mut out),
        Command::Serve(args) => cmd::serve::run(&args, &mut out),
        Command::Schema(args) => cmd::schema::run(&args, &mut out),
        Command::Completions { shell } => completions(shell, &mut out),
    };
    let result = result.and_then(|()| out.finish());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(json, &mut out),
    }
}

/// Writes the completion script (generated in memory: clap_complete panics on a write error).
fn completions(shell: clap_complete::Shell, out: &mut Output) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "inferkit", &mut script);
    out.write_all(&script)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
