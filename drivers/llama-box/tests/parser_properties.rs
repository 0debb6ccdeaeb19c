//! Properties of the llama-box parameter parser on arbitrary input: it never panics, and what
//! it accepts is an argv llama-box reads back to the same flags.

use inferkit_llama_box::flag_table;
use inferkit_llama_box::llamacpp::{Args, Syntax};
use proptest::prelude::*;

/// Tokens mixing real spellings, `=` forms, numbers, words and noise.
fn token() -> impl Strategy<Value = String> {
    let spellings: Vec<String> = flag_table()
        .flags
        .iter()
        .flat_map(|f| f.spellings())
        .map(str::to_string)
        .collect();
    prop_oneof![
        3 => proptest::sample::select(spellings.clone()),
        1 => (proptest::sample::select(spellings), "[a-z0-9.,/=-]{0,8}")
            .prop_map(|(flag, value)| format!("{flag}={value}")),
        2 => "-?[0-9]{1,6}",
        1 => "(on|off|auto|f16|q8_0|none|layer|yarn)",
        1 => "[ -~]{0,12}",
    ]
}

proptest! {
    #[test]
    fn accepted_parameters_round_trip_as_argv(tokens in proptest::collection::vec(token(), 0..12)) {
        if let Ok(args) = Args::parse(&tokens, Syntax::Parameters) {
            let argv = args.to_argv();
            let again = Args::parse(&argv, Syntax::Argv).expect("normalised argv parses");
            prop_assert_eq!(again.to_argv(), argv);
            for arg in &args.args {
                prop_assert!(flag_table().lookup(&arg.flag).is_some());
            }
        }
    }

    #[test]
    fn settings_never_panic(tokens in proptest::collection::vec(token(), 0..12)) {
        if let Ok(args) = Args::parse(&tokens, Syntax::LlamaServer) {
            let mut settings = inferkit_llama_box::llamacpp::LlamaSettings::default();
            let _ = args.apply_to(&mut settings);
        }
    }
}
