//! Arbitrary `backend_parameters` never panic `prepare`, the estimator or `launch`: each either
//! accepts them or refuses with a typed error naming the parameter.

mod support;

use std::sync::LazyLock;

use inferkit_core::{
    Assignment, Backend, Error, FitRequest, ModelFacts, ModelSpec, PlacementMode, Vendor,
};
use inferkit_vox_box::VoxBox;
use proptest::prelude::*;
use support::*;

static WHISPER: LazyLock<(ModelFacts, ModelSpec)> =
    LazyLock::new(|| local("faster-whisper-tiny.en"));

/// Real flags (some platform-owned), abbreviations, negative numbers, `=` forms, words with
/// multi-byte characters and blanks: tokens that reach every branch of the argparse checks.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "--debug",
            "-d",
            "--host",
            "--port",
            "--model",
            "--device",
            "--data-dir",
            "--huggingface-repo-id",
            "--model-scope-model-id",
            "--de",
            "--d",
            "--",
            "-",
            "",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        "--(debug|data-dir|port|de)=[0-9a-z_ \u{3000}]{0,6}",
        "-{0,2}[a-z\u{e9}\u{3000}-]{0,10}",
        "\\PC{0,12}",
    ]
}

fn refusal_names_a_parameter(err: &Error) -> bool {
    matches!(err, Error::InvalidParameter { name, reason } if !reason.is_empty() && !name.is_empty())
}

proptest! {
    #[test]
    fn parameters_are_accepted_or_refused_by_name(tokens in prop::collection::vec(token(), 0..6)) {
        let vox = VoxBox::new();
        let (facts, base) = &*WHISPER;
        let mut spec = base.clone();
        spec.backend_parameters = tokens;
        let estimated = vox.prepare(facts, &spec).and_then(|e| {
            e.estimator().fit(&FitRequest {
                devices: vec![gpu(0, Vendor::Nvidia, 20 * GIB)],
                host: host(32 * GIB),
                allow_cpu_offload: false,
            })
        });
        match estimated {
            Ok(estimate) => {
                let assignment = Assignment {
                    mode: PlacementMode::SingleDevice,
                    worker: "gpu-worker".into(),
                    address: "10.0.0.5".into(),
                    devices: vec![gpu(0, Vendor::Nvidia, 20 * GIB)],
                    host: host(32 * GIB),
                    estimate,
                    port: 40123,
                    subordinates: Vec::new(),
                };
                let launched = vox.prepare(facts, &spec).and_then(|p| p.launch(&assignment));
                prop_assert!(launched.is_ok(), "{:?}", launched);
            }
            Err(err) => prop_assert!(refusal_names_a_parameter(&err), "{err:?}"),
        }
    }
}
