//! `rocm-smi --json` parser on captures of an 8 x MI300X node (ROCm 6), an RX 7900 XTX
//! (ROCm 5.7 key spelling), a machine without GPUs, the no-driver message and broken JSON.

use inferkit_core::{Error, Vendor};
use inferkit_probe::rocm::{NO_DRIVER_MARKERS, parse_rocm_smi_json};

fn capture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn probe_reason(error: Error) -> String {
    match error {
        Error::Probe { probe, reason } => {
            assert_eq!(probe, "rocm-smi");
            reason
        }
        other => panic!("expected a probe error, got {other:?}"),
    }
}

#[test]
fn mi300x_node_has_eight_gfx942_gpus_with_192_gib() {
    let gpus = parse_rocm_smi_json(&capture("rocm-smi-mi300x-8gpu.json")).unwrap();
    assert_eq!(gpus.len(), 8);
    for (i, gpu) in gpus.iter().enumerate() {
        assert_eq!(gpu.index, i as u32);
        assert_eq!(gpu.vendor, Vendor::Amd);
        assert_eq!(gpu.name, "AMD Instinct MI300X OAM");
        assert_eq!(gpu.memory.total, 205_822_885_888);
        assert_eq!(gpu.compute_capability.as_deref(), Some("gfx942"));
        assert_eq!(gpu.driver_version.as_deref(), Some("6.8.5"));
    }
    assert_eq!(gpus[3].memory.used, 154_711_654_400);
    assert_eq!(gpus[0].memory.used, 297_566_208);
    assert_eq!(gpus[0].uuid.as_deref(), Some("8d6f3d2c1a4b5e01"));
    assert_eq!(gpus[5].pci_bus_id.as_deref(), Some("0000:A6:00.0"));
}

#[test]
fn rx_7900_xtx_with_rocm5_key_spelling() {
    let gpus = parse_rocm_smi_json(&capture("rocm-smi-rx7900xtx.json")).unwrap();
    assert_eq!(gpus.len(), 1);
    let gpu = &gpus[0];
    assert_eq!(gpu.name, "Navi 31 [Radeon RX 7900 XT/7900 XTX]");
    assert_eq!(gpu.memory.total, 25_753_026_560);
    assert_eq!(gpu.memory.used, 1_468_006_400);
    assert_eq!(
        gpu.compute_capability, None,
        "ROCm 5.7 prints no GFX Version"
    );
    assert_eq!(gpu.uuid, None);
    assert_eq!(gpu.pci_bus_id.as_deref(), Some("0000:03:00.0"));
}

#[test]
fn cards_are_ordered_by_index_not_by_key_order() {
    let text = r#"{"card10": {"VRAM Total Memory (B)": "100", "VRAM Total Used Memory (B)": "1"},
                   "card2": {"VRAM Total Memory (B)": "200", "VRAM Total Used Memory (B)": "2"}}"#;
    let indices: Vec<u32> = parse_rocm_smi_json(text)
        .unwrap()
        .iter()
        .map(|g| g.index)
        .collect();
    assert_eq!(indices, [2, 10]);
}

#[test]
fn warnings_before_the_json_are_skipped() {
    let text = format!(
        "WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n{}",
        capture("rocm-smi-rx7900xtx.json")
    );
    assert_eq!(parse_rocm_smi_json(&text).unwrap().len(), 1);
}

#[test]
fn an_empty_object_means_no_gpus() {
    assert!(
        parse_rocm_smi_json(&capture("rocm-smi-empty.json"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_no_driver_message_is_recognised_as_no_devices() {
    let text = capture("rocm-smi-no-driver.txt");
    assert!(NO_DRIVER_MARKERS.iter().any(|m| text.contains(m)));
    // Without the marker check the text is not JSON at all.
    let reason = probe_reason(parse_rocm_smi_json(&text).unwrap_err());
    assert!(reason.contains("no JSON object"), "{reason}");
}

#[test]
fn cut_off_json_is_a_probe_error() {
    let reason = probe_reason(parse_rocm_smi_json(&capture("rocm-smi-garbled.json")).unwrap_err());
    assert!(reason.contains("not the expected JSON object"), "{reason}");
}

#[test]
fn a_memory_value_that_is_not_a_number_names_card_and_field() {
    let text = r#"{"card0": {"VRAM Total Memory (B)": "48GB", "VRAM Total Used Memory (B)": "0"}}"#;
    let reason = probe_reason(parse_rocm_smi_json(text).unwrap_err());
    assert!(
        reason.contains("card0") && reason.contains("VRAM Total Memory (B)"),
        "{reason}"
    );
}

#[test]
fn a_card_whose_vram_is_not_available_is_listed_unavailable() {
    let gpus = parse_rocm_smi_json(&capture("rocm-smi-bad-value.json")).unwrap();
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0].name, "AMD Radeon PRO W7900");
    assert_eq!(gpus[0].memory.total, 0);
    assert_eq!(
        gpus[0].unavailable_reason(),
        Some("rocm-smi does not report the total and used VRAM of card0")
    );
}

#[test]
fn a_card_without_memory_fields_is_unavailable_and_the_others_are_kept() {
    let text = r#"{"card0": {"Card Series": "AMD Instinct MI300X"},
                   "card1": {"Card Series": "AMD Instinct MI300X",
                             "VRAM Total Memory (B)": "205822885888",
                             "VRAM Total Used Memory (B)": "295272448"}}"#;
    let gpus = parse_rocm_smi_json(text).unwrap();
    assert_eq!(gpus.len(), 2);
    assert!(gpus[0].unavailable_reason().unwrap().contains("card0"));
    assert_eq!(gpus[1].unavailable_reason(), None);
    assert_eq!(gpus[1].health, None);
    assert_eq!(gpus[1].memory.total, 205_822_885_888);
}
