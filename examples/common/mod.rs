//! What every example binary does before its own work: read the command line as UTF-8 and turn
//! a parse outcome into usage text or a one-line error with exit status 2.

use std::process::ExitCode;

/// Parses the command-line words (program name skipped) with `parse`. `Ok(None)` from `parse`
/// means `--help`: the usage is printed and the caller exits successfully. A word that is not
/// UTF-8 (`std::env::args` would panic on it) or a parse error prints one line plus the usage
/// and gives exit status 2.
pub fn parse_command_line<T>(
    usage: &str,
    parse: impl FnOnce(std::vec::IntoIter<String>) -> Result<Option<T>, String>,
) -> Result<T, ExitCode> {
    let words: Result<Vec<String>, String> = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|bad| format!("argument `{}` is not UTF-8\n{usage}", bad.display()))
        })
        .collect();
    match words.and_then(|words| parse(words.into_iter())) {
        Ok(Some(parsed)) => Ok(parsed),
        Ok(None) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("{message}");
            Err(ExitCode::from(2))
        }
    }
}
