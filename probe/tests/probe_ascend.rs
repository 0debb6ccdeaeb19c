//! `npu-smi` parsers on captures of Atlas 800T A2 (8 x 910B3), Atlas 300I Duo (310P3, two chips
//! per card), a machine without NPUs, an error message and a cut-off table.

use inferkit_core::{Error, Vendor};
use inferkit_probe::ascend::{devices, parse_chip_mapping, parse_status_table};

const MIB: u64 = 1 << 20;

fn capture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn probe_reason(error: Error) -> String {
    match error {
        Error::Probe { probe, reason } => {
            assert_eq!(probe, "npu-smi");
            reason
        }
        other => panic!("expected a probe error, got {other:?}"),
    }
}

#[test]
fn atlas_800t_a2_has_eight_910b3_with_64_gib_hbm() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-910b-8npu.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu.txt")).unwrap();
    assert_eq!(mapping.len(), 8, "MCU rows are skipped");
    assert_eq!(table.driver_version.as_deref(), Some("23.0.6"));

    let npus = devices(&mapping, &table, None).unwrap();
    assert_eq!(npus.len(), 8);
    for (i, npu) in npus.iter().enumerate() {
        assert_eq!(npu.index, i as u32);
        assert_eq!(npu.physical_index, Some(i as u32));
        assert_eq!(npu.vendor, Vendor::Ascend);
        assert_eq!(npu.name, "Ascend910B3");
        assert_eq!(npu.memory.total, 65536 * MIB);
        assert_eq!(npu.driver_version.as_deref(), Some("23.0.6"));
    }
    assert_eq!(npus[0].memory.used, 3392 * MIB);
    // NPU 3 runs a model: `61833/ 65536` with the slash glued to the number.
    assert_eq!(npus[3].memory.used, 61833 * MIB);
    assert_eq!(npus[3].pci_bus_id.as_deref(), Some("0000:02:00.0"));
    assert_eq!(npus[7].pci_bus_id.as_deref(), Some("0000:42:00.0"));
}

#[test]
fn atlas_300i_duo_exposes_each_310p3_chip_with_its_ddr() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-310p-duo.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-310p-duo.txt")).unwrap();
    let ids: Vec<(u32, u32, u32)> = mapping
        .iter()
        .map(|c| (c.npu_id, c.chip_id, c.logic_id))
        .collect();
    assert_eq!(ids, [(8, 0, 0), (8, 1, 1), (9, 0, 2), (9, 1, 3)]);

    let npus = devices(&mapping, &table, None).unwrap();
    let summary: Vec<(u32, &str, u64, u64, &str)> = npus
        .iter()
        .map(|d| {
            let bus = d.pci_bus_id.as_deref().unwrap();
            (
                d.index,
                d.name.as_str(),
                d.memory.used / MIB,
                d.memory.total / MIB,
                bus,
            )
        })
        .collect();
    // Each chip of a 300I Duo card is its own block; both chips share the card's bus id.
    assert_eq!(
        summary,
        [
            (0, "Ascend310P3", 1475, 44280, "0000:01:00.0"),
            (1, "Ascend310P3", 1462, 43693, "0000:01:00.0"),
            (2, "Ascend310P3", 39822, 44280, "0000:02:00.0"),
            (3, "Ascend310P3", 1461, 43693, "0000:02:00.0"),
        ]
    );
}

#[test]
fn visible_devices_renumber_from_zero_and_keep_the_logic_id() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-910b-8npu.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu.txt")).unwrap();
    let npus = devices(&mapping, &table, Some("6, 3")).unwrap();
    let ids: Vec<(u32, Option<u32>, Option<&str>)> = npus
        .iter()
        .map(|d| (d.index, d.physical_index, d.pci_bus_id.as_deref()))
        .collect();
    // ASCEND_RT_VISIBLE_DEVICES=6,3: the runtime calls them 0 and 1, in the listed order.
    assert_eq!(
        ids,
        [
            (0, Some(6), Some("0000:82:00.0")),
            (1, Some(3), Some("0000:02:00.0"))
        ]
    );
}

#[test]
fn a_visible_device_that_does_not_exist_is_named() {
    // The `invalid device=6` failure: a 310P box has logic ids 0-3 only.
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-310p-duo.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-310p-duo.txt")).unwrap();
    let reason = probe_reason(devices(&mapping, &table, Some("6")).unwrap_err());
    assert!(
        reason.contains("ASCEND_RT_VISIBLE_DEVICES=`6`: names device 6"),
        "{reason}"
    );
    assert!(reason.contains("[0,1,2,3]"), "{reason}");

    let reason = probe_reason(devices(&mapping, &table, Some("0,x")).unwrap_err());
    assert!(reason.contains("`x` is not a device id"), "{reason}");
    let reason = probe_reason(devices(&mapping, &table, Some("1,2,1")).unwrap_err());
    assert!(reason.contains("device 1 is listed twice"), "{reason}");
}

#[test]
fn a_chip_without_a_bus_id_has_none() {
    // Atlas 200I A2 (310B4, an SoC): the Bus-Id column reads `NA`.
    let table = "\
| npu-smi 23.0.rc3                                 Version: 23.0.rc3                                     |
| NPU     Name                  | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |
| Chip    Device                | Bus-Id          | AICore(%)    Memory-Usage(MB)                        |
+===============================+=================+======================================================+
| 0       310B4                 | OK              | 7.2          37                15    / 15            |
| 0       0                     | NA              | 0            1797 / 3513                             |
+===============================+=================+======================================================+
";
    let chips = parse_status_table(table).unwrap().chips;
    assert_eq!(chips.len(), 1);
    assert_eq!(chips[0].pci_bus_id, None);
    assert_eq!(
        (chips[0].memory.used, chips[0].memory.total),
        (1797 * MIB, 3513 * MIB)
    );
}

#[test]
fn a_machine_without_npus_has_no_devices() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-empty.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-empty.txt")).unwrap();
    assert!(mapping.is_empty());
    assert!(table.chips.is_empty());
    assert!(devices(&mapping, &table, None).unwrap().is_empty());
}

#[test]
fn error_text_instead_of_a_table_is_a_probe_error() {
    let text = capture("npu-smi-info-error.txt");
    let reason = probe_reason(parse_status_table(&text).unwrap_err());
    assert!(reason.contains("`npu-smi info` output, line 1"), "{reason}");
    let reason = probe_reason(parse_chip_mapping(&text).unwrap_err());
    assert!(
        reason.contains("`npu-smi info -m` output, line 1"),
        "{reason}"
    );
}

#[test]
fn a_cut_off_table_names_the_broken_line() {
    let reason =
        probe_reason(parse_status_table(&capture("npu-smi-info-garbled.txt")).unwrap_err());
    assert!(reason.contains("line 8"), "{reason}");
    assert!(reason.contains("6553#$%^&*"), "{reason}");
}

#[test]
fn mapping_and_table_of_different_machines_do_not_join() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-310p-duo.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu.txt")).unwrap();
    let reason = probe_reason(devices(&mapping, &table, None).unwrap_err());
    assert!(reason.contains("NPU 8 chip 0"), "{reason}");
}

#[test]
fn a_mapping_row_with_a_bad_id_is_rejected() {
    let text = "NPU ID  Chip ID  Chip Logic ID  Chip Name\n0  0  zero  Ascend 910B3\n";
    let reason = probe_reason(parse_chip_mapping(text).unwrap_err());
    assert!(
        reason.contains("line 2") && reason.contains("`zero`"),
        "{reason}"
    );
}

#[test]
fn memory_used_above_total_is_rejected() {
    let text = capture("npu-smi-info-910b-8npu.txt").replace("3392 / 65536", "93392 / 65536");
    let reason = probe_reason(parse_status_table(&text).unwrap_err());
    assert!(reason.contains("exceeds total"), "{reason}");
}
