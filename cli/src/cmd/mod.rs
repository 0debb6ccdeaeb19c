//! One module per subcommand: its arguments (clap) and its `run`.

pub mod estimate;
pub mod inspect;
pub mod plan;
pub mod probe;
pub mod schema;
pub mod serve;
