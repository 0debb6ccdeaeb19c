//! Misspelt keys in user-written JSON (spec, plan options, cluster) are refused with the nearest
//! known key (issue 12, point 8), through the public `user_json::from_str`.

use std::path::Path;

use inferkit_core::{Error, user_json};
use serde::de::DeserializeOwned;

fn refusal<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    match user_json::from_str::<T>(text, Path::new("user.json")) {
        Err(Error::Parse { what, .. }) => what,
        other => panic!("{other:?}"),
    }
}

#[test]
fn misspelt_keys_of_a_spec_a_cluster_and_options_are_refused() {
    let spec = r#"{"name": "m", "source": "local_path", "path": "/m", "cpu_offload": true}"#;
    assert!(
        refusal::<inferkit_core::ModelSpec>(spec)
            .starts_with("unknown key `cpu_offload` (did you mean `cpu_offloading`?)")
    );
    let spec = r#"{"name": "m", "source": "local_path", "path": "/m", "repo_id": "a/b"}"#;
    assert!(refusal::<inferkit_core::ModelSpec>(spec).contains("`repo_id` does not belong"));
    let options = r#"{"backend_version": {"vllm": "0.10.1.1"}}"#;
    assert!(
        refusal::<inferkit_core::PlanOptions>(options)
            .starts_with("unknown key `backend_version` (did you mean `backend_versions`?)")
    );
    let cluster = r#"{"workers": [{"name": "w1", "devices": [{"index": 0,
        "vendor": "nvidia", "name": "H100", "memory": {"total": 1}, "computecapability": "9.0"}]}]}"#;
    assert!(
        refusal::<inferkit_core::Cluster>(cluster)
            .starts_with("unknown key `computecapability` (did you mean `compute_capability`?)")
    );
}

#[test]
fn a_spec_reads_back_what_it_writes() {
    let mut spec = inferkit_core::ModelSpec::local("/models/qwen.gguf");
    spec.cpu_offloading = Some(false);
    let json = serde_json::to_string(&spec).unwrap();
    let back: inferkit_core::ModelSpec =
        user_json::from_str(&json, Path::new("spec.json")).unwrap();
    assert_eq!(back, spec);
}

/// A device's vendor is read by name in any letter case, also when the JSON escapes it (the
/// name is then decoded, not borrowed from the text); other names are kept as written, and a
/// vendor that is not a string is refused.
#[test]
fn vendors_are_read_by_name_whether_borrowed_or_decoded() {
    use inferkit_core::Vendor;
    for (json, vendor) in [
        (r#""NVIDIA""#, Vendor::Nvidia),
        (r#""amd""#, Vendor::Amd),
        (r#""Asc\u0065nd""#, Vendor::Ascend),
        (r#""Hygon""#, Vendor::Other("Hygon".into())),
    ] {
        let read: Vendor = user_json::from_str(json, Path::new("v.json")).unwrap();
        assert_eq!(read, vendor, "{json}");
    }
    assert!(refusal::<Vendor>("7").starts_with("invalid type: integer `7`, expected a string"));
}
