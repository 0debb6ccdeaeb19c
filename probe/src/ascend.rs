//! Huawei Ascend NPUs through `npu-smi`.
//!
//! Two commands are read (formats of the Ascend HDK `npu-smi` tool, driver 23.x/24.x):
//!
//! * `npu-smi info -m`: the mapping from (NPU id, chip id) to the *chip logic id*, the number
//!   the CANN runtime and `ASCEND_RT_VISIBLE_DEVICES` use. MCU rows have logic id `-`.
//! * `npu-smi info`: the status table, one block per NPU (card) with one row per chip: PCI bus
//!   id, and `HBM-Usage(MB)` (910 series) or `Memory-Usage(MB)` (310P, DDR) as `used / total`.
//!   The NPU row's `Health` column is one of `OK`, `Warning`, `Alarm`, `Critical` or `UNKNOWN`
//!   (Huawei's `npu-smi info` reference, e.g. the Atlas 300I Pro and Atlas 200I A2 manuals:
//!   normal, minor alarm, major alarm, urgent alarm, absent or not started). [`devices`] keeps a
//!   `Warning` chip usable with the status recorded and marks every state worse than that
//!   unavailable, which placement then refuses (the "device unavailable" NPU of a VM).
//!
//! `ASCEND_RT_VISIBLE_DEVICES` renumbers devices for the process it is set in: with `4,5` the
//! runtime sees logic ids 4 and 5 as devices 0 and 1, and `device=4` is then invalid (the
//! `invalid device=6, input visible devices:6` failure users report). [`devices`] applies it, so
//! [`Device::index`] is what this process's runtime will accept and [`Device::physical_index`]
//! keeps the chip logic id, the value that goes into `ASCEND_RT_VISIBLE_DEVICES`.

use inferkit_core::Result;
use inferkit_core::inventory::{Device, DeviceHealth, Memory, Vendor};

use super::probe_error;

/// Name of the tool, used in errors.
const TOOL: &str = "npu-smi";

/// One chip row of `npu-smi info -m`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChipMapping {
    /// NPU (card) id, as `npu-smi info -i` takes it.
    pub npu_id: u32,
    /// Chip id within the card, as `npu-smi info -c` takes it.
    pub chip_id: u32,
    /// Chip logic id: the device number of the CANN runtime.
    pub logic_id: u32,
    /// Chip name as printed (`Ascend 910B3`, `Ascend 310P3`).
    pub chip_name: String,
}

/// One chip of the `npu-smi info` status table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChipStatus {
    /// NPU (card) id.
    pub npu_id: u32,
    /// Chip id within the card.
    pub chip_id: u32,
    /// The card's name column (`910B3`, `310P3`).
    pub name: String,
    /// PCI bus id of the chip, when printed.
    pub pci_bus_id: Option<String>,
    /// HBM (910 series) or DDR (310P) memory of the chip.
    pub memory: Memory,
    /// The `Health` column of the chip's NPU row as printed (`OK`, `Critical`), when present.
    pub health: Option<String>,
}

/// The whole `npu-smi info` status table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusTable {
    /// Driver version from the `Version:` banner.
    pub driver_version: Option<String>,
    /// Chips in table order.
    pub chips: Vec<ChipStatus>,
}

/// Parses `npu-smi info -m`. MCU rows (logic id `-`) are skipped.
pub fn parse_chip_mapping(text: &str) -> Result<Vec<ChipMapping>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, header)) if header.contains("Chip Logic ID") => {}
        _ => {
            return Err(garbled(
                "info -m",
                1,
                "no `NPU ID  Chip ID  Chip Logic ID` header",
            ));
        }
    }
    let mut chips = Vec::new();
    for (number, line) in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [npu, chip, logic, name @ ..] = fields.as_slice() else {
            return Err(garbled("info -m", number + 1, "fewer than three columns"));
        };
        if *logic == "-" {
            continue;
        }
        chips.push(ChipMapping {
            npu_id: number_field("info -m", number + 1, "NPU ID", npu)?,
            chip_id: number_field("info -m", number + 1, "Chip ID", chip)?,
            logic_id: number_field("info -m", number + 1, "Chip Logic ID", logic)?,
            chip_name: name.join(" "),
        });
    }
    Ok(chips)
}

/// Parses the `npu-smi info` status table; the process table that follows it is ignored.
///
/// After each `+===`/`+---` rule comes an NPU row (`| 0  910B3 | OK | ...`), then that NPU's
/// chip rows (`| 0 | 0000:C1:00.0 | ... 3392 / 65536 |`); a 300I Duo repeats the NPU row
/// before each of its chips.
pub fn parse_status_table(text: &str) -> Result<StatusTable> {
    let mut table = StatusTable::default();
    let mut memory_column = None;
    let mut current_npu: Option<NpuRow> = None;
    let mut after_rule = false;
    for (number, line) in text.lines().enumerate() {
        let line_number = number + 1;
        match classify(line) {
            Row::Blank | Row::NpuHeader => {}
            Row::Rule => after_rule = true,
            Row::Version(version) => table.driver_version = version,
            Row::ProcessHeader => break,
            Row::ChipHeader(column) => memory_column = Some(column),
            Row::Other => return Err(garbled("info", line_number, "not a table row")),
            Row::Data(cells) if after_rule => {
                current_npu = Some(parse_npu_row(&cells, line_number)?);
                after_rule = false;
            }
            Row::Data(cells) => {
                let npu = current_npu
                    .as_ref()
                    .ok_or_else(|| garbled("info", line_number, "chip row before any NPU row"))?;
                let column = memory_column.ok_or_else(|| {
                    garbled("info", line_number, "chip row before the `Chip` header")
                })?;
                let chip = parse_chip_row(&cells, npu, column, line_number)?;
                table.chips.push(chip);
            }
        }
    }
    if memory_column.is_none() {
        let what = "no `Chip | Bus-Id | ... Memory-Usage(MB)` header";
        return Err(garbled("info", 1, what));
    }
    Ok(table)
}

/// What one line of the status table is.
enum Row<'a> {
    Blank,
    /// `+====...` or `+----...`: a block boundary.
    Rule,
    /// `| npu-smi 23.0.6   Version: 23.0.6 |`.
    Version(Option<String>),
    /// `| NPU   Name | Health | ...`.
    NpuHeader,
    /// `| Chip [Device] | Bus-Id | AICore(%) Memory-Usage(MB) [HBM-Usage(MB)] |`.
    ChipHeader(MemoryColumn),
    /// `| NPU  Chip | Process id | ...`: the process table, which is not read.
    ProcessHeader,
    /// An NPU or chip row, split into trimmed cells.
    Data(Vec<&'a str>),
    /// Anything else: not `npu-smi info` output.
    Other,
}

fn classify(line: &str) -> Row<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Row::Blank;
    }
    if trimmed.starts_with("+=") || trimmed.starts_with("+-") {
        return Row::Rule;
    }
    if !trimmed.starts_with('|') {
        return Row::Other;
    }
    if let Some((_, version)) = trimmed.split_once("Version:") {
        let version = version.trim_matches(|c: char| c == '|' || c.is_whitespace());
        return Row::Version(version.split_whitespace().next().map(str::to_string));
    }
    let cells: Vec<&str> = trimmed
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    let first = cells.first().copied().unwrap_or_default();
    if cells.iter().any(|c| c.contains("Process id")) {
        Row::ProcessHeader
    } else if first.starts_with("NPU") {
        Row::NpuHeader
    } else if first.starts_with("Chip") {
        Row::ChipHeader(MemoryColumn::from_header(&cells))
    } else {
        Row::Data(cells)
    }
}

/// Which `used / total` pair of a chip row holds the accelerator memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemoryColumn {
    /// `Memory-Usage(MB)  HBM-Usage(MB)`: the HBM pair, the last one (910 series).
    Hbm,
    /// `Memory-Usage(MB)` alone: the DDR pair (310P).
    Ddr,
}

impl MemoryColumn {
    fn from_header(cells: &[&str]) -> Self {
        if cells.iter().any(|c| c.contains("HBM-Usage")) {
            MemoryColumn::Hbm
        } else {
            MemoryColumn::Ddr
        }
    }
}

/// What an NPU row says about the chips listed under it.
struct NpuRow {
    id: u32,
    name: String,
    health: Option<String>,
}

/// `| 0     910B3     | OK     | 96.7   36   0 / 0 |`: NPU id, name and health.
fn parse_npu_row(cells: &[&str], line: usize) -> Result<NpuRow> {
    let mut words = cells
        .first()
        .copied()
        .unwrap_or_default()
        .split_whitespace();
    let id = words
        .next()
        .ok_or_else(|| garbled("info", line, "empty NPU row"))?;
    let id = number_field("info", line, "NPU", id)?;
    let name = words.collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err(garbled("info", line, "NPU row without a name"));
    }
    let health = cells
        .get(1)
        .map(|cell| cell.trim().to_string())
        .filter(|cell| !cell.is_empty());
    Ok(NpuRow { id, name, health })
}

/// `| 0 [device] | 0000:C1:00.0 | aicore  mem_used / mem_total  [hbm_used / hbm_total] |`.
fn parse_chip_row(
    cells: &[&str],
    npu: &NpuRow,
    column: MemoryColumn,
    line: usize,
) -> Result<ChipStatus> {
    let [chip, bus, usage, ..] = cells else {
        return Err(garbled(
            "info",
            line,
            "chip row with fewer than three cells",
        ));
    };
    let chip_id = chip
        .split_whitespace()
        .next()
        .ok_or_else(|| garbled("info", line, "chip row without a chip id"))?;
    let chip_id = number_field("info", line, "Chip", chip_id)?;
    let pairs = used_total_pairs(usage, line)?;
    let pair = match column {
        MemoryColumn::Hbm => pairs.last(),
        MemoryColumn::Ddr => pairs.first(),
    };
    let (used, total) = pair
        .copied()
        .ok_or_else(|| garbled("info", line, "no `used / total` memory"))?;
    if used > total {
        return Err(garbled(
            "info",
            line,
            format!("memory used {used} MB exceeds total {total} MB"),
        ));
    }
    Ok(ChipStatus {
        npu_id: npu.id,
        chip_id,
        name: npu.name.clone(),
        health: npu.health.clone(),
        pci_bus_id: Some(bus.to_string()).filter(|b| b.contains(':')),
        memory: Memory {
            total: mib_to_bytes(total)?,
            used: mib_to_bytes(used)?,
            reserved: None,
        },
    })
}

/// Every `a / b` pair of a usage cell, in MB, in order (`61833/ 65536` is written that way too).
fn used_total_pairs(cell: &str, line: usize) -> Result<Vec<(u64, u64)>> {
    let spaced = cell.replace('/', " / ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let mut pairs = Vec::new();
    for (at, word) in words.iter().enumerate() {
        if *word != "/" {
            continue;
        }
        let (Some(used), Some(total)) = (
            at.checked_sub(1).and_then(|i| words.get(i)),
            words.get(at + 1),
        ) else {
            return Err(garbled("info", line, format!("dangling `/` in `{cell}`")));
        };
        pairs.push((
            number_field("info", line, "memory used", used)?,
            number_field("info", line, "memory total", total)?,
        ));
    }
    Ok(pairs)
}

/// Joins the mapping and the status table into devices numbered as this process's CANN runtime
/// numbers them, given the value of `ASCEND_RT_VISIBLE_DEVICES` (`None` when unset).
pub fn devices(
    mapping: &[ChipMapping],
    table: &StatusTable,
    visible_devices: Option<&str>,
) -> Result<Vec<Device>> {
    let mut chips: Vec<&ChipMapping> = mapping.iter().collect();
    chips.sort_by_key(|c| c.logic_id);
    let visible = match visible_devices {
        None => chips,
        Some(list) => select_visible(&chips, list)?,
    };
    visible
        .into_iter()
        .enumerate()
        .map(|(index, chip)| device(chip, table, index))
        .collect()
}

/// The chips `ASCEND_RT_VISIBLE_DEVICES` names, in the order it names them.
fn select_visible<'a>(chips: &[&'a ChipMapping], list: &str) -> Result<Vec<&'a ChipMapping>> {
    let variable = Vendor::Ascend.visible_devices_env();
    let refuse = |why: String| probe_error(TOOL, format!("{variable}=`{list}`: {why}"));
    let mut selected: Vec<&ChipMapping> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let logic_id: u32 = id
            .parse()
            .map_err(|_| refuse(format!("`{id}` is not a device id")))?;
        if selected.iter().any(|c| c.logic_id == logic_id) {
            return Err(refuse(format!("device {logic_id} is listed twice")));
        }
        let chip = chips
            .iter()
            .find(|c| c.logic_id == logic_id)
            .ok_or_else(|| {
                let known: Vec<String> = chips.iter().map(|c| c.logic_id.to_string()).collect();
                refuse(format!(
                    "names device {logic_id}, but npu-smi lists logic ids [{}]",
                    known.join(",")
                ))
            })?;
        selected.push(chip);
    }
    Ok(selected)
}

fn device(chip: &ChipMapping, table: &StatusTable, index: usize) -> Result<Device> {
    let status = table
        .chips
        .iter()
        .find(|s| s.npu_id == chip.npu_id && s.chip_id == chip.chip_id)
        .ok_or_else(|| {
            probe_error(
                TOOL,
                format!(
                    "`npu-smi info -m` lists NPU {} chip {} but `npu-smi info` does not",
                    chip.npu_id, chip.chip_id
                ),
            )
        })?;
    let index = u32::try_from(index).map_err(|_| probe_error(TOOL, "more than 2^32 chips"))?;
    Ok(Device {
        index,
        vendor: Vendor::Ascend,
        name: chip_name(chip, status),
        memory: status.memory,
        compute_capability: None,
        uuid: None,
        pci_bus_id: status.pci_bus_id.clone(),
        driver_version: table.driver_version.clone(),
        runtime_version: None,
        physical_index: Some(chip.logic_id),
        partition: None,
        health: status
            .health
            .as_deref()
            .and_then(device_health)
            .map(Box::new),
    })
}

/// The device health for a `Health` column value: `OK` is healthy and needs no entry, a
/// `Warning` (minor alarm) leaves the chip usable, and `Alarm`, `Critical`, `UNKNOWN` or any
/// value this parser does not know make it unavailable.
pub fn device_health(reported: &str) -> Option<DeviceHealth> {
    if reported.eq_ignore_ascii_case("OK") {
        return None;
    }
    Some(DeviceHealth {
        available: reported.eq_ignore_ascii_case("Warning"),
        status: format!("{TOOL} health {reported}"),
    })
}

/// `Ascend 910B3` from `-m` becomes `Ascend910B3` (the product's own spelling); the table's
/// `910B3` is the fallback.
fn chip_name(chip: &ChipMapping, status: &ChipStatus) -> String {
    let from_mapping: String = chip.chip_name.split_whitespace().collect();
    if from_mapping.is_empty() {
        format!("Ascend{}", status.name.replace(' ', ""))
    } else {
        from_mapping
    }
}

/// Bytes in one MiB: `npu-smi` prints memory in MiB (`MB` in its headers means MiB).
const MIB: u64 = 1 << 20;

/// `mib` MiB in bytes, or a probe error when the product overflows `u64` (garbage input).
fn mib_to_bytes(mib: u64) -> Result<u64> {
    mib.checked_mul(MIB)
        .ok_or_else(|| probe_error(TOOL, format!("{mib} MiB does not fit in 64 bits of bytes")))
}

fn number_field<T: std::str::FromStr>(
    command: &str,
    line: usize,
    column: &str,
    text: &str,
) -> Result<T> {
    text.parse()
        .map_err(|_| garbled(command, line, format!("{column} `{text}` is not a number")))
}

fn garbled(command: &str, line: usize, what: impl std::fmt::Display) -> inferkit_core::Error {
    probe_error(
        TOOL,
        format!("`npu-smi {command}` output, line {line}: {what}"),
    )
}

/// Probes Ascend NPUs by running `npu-smi info -m` and `npu-smi info`.
///
/// The inventory it returns holds only devices; [`super::CompositeProbe`] adds the host. A
/// machine without `npu-smi` has no Ascend devices. `ASCEND_RT_VISIBLE_DEVICES`, when set in
/// this process, is applied (see the module documentation).
#[cfg(feature = "cli-probes")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli-probes")))]
#[derive(Debug, Clone)]
pub struct AscendProbe {
    tool: super::command::Tool,
}

#[cfg(feature = "cli-probes")]
impl Default for AscendProbe {
    fn default() -> Self {
        AscendProbe {
            tool: super::command::Tool::new(TOOL),
        }
    }
}

#[cfg(feature = "cli-probes")]
impl AscendProbe {
    /// Runs `npu-smi` from `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the `npu-smi` at `program` (a path, or a name looked up in `PATH`).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.tool.program = program.into();
        self
    }

    /// Gives the tool `timeout` to answer instead of 30 seconds.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tool.timeout = timeout;
        self
    }

    /// Reads the devices; `None` when `npu-smi` is not installed.
    async fn read_devices(&self) -> Result<Option<Vec<Device>>> {
        let Some(mapping) = self.tool.run(&["info", "-m"], &[]).await? else {
            return Ok(None);
        };
        let Some(table) = self.tool.run(&["info"], &[]).await? else {
            return Ok(None);
        };
        let visible = std::env::var(Vendor::Ascend.visible_devices_env()).ok();
        devices(
            &parse_chip_mapping(&mapping)?,
            &parse_status_table(&table)?,
            visible.as_deref(),
        )
        .map(Some)
    }
}

#[cfg(feature = "cli-probes")]
#[async_trait::async_trait]
impl super::DeviceProbe for AscendProbe {
    fn name(&self) -> &'static str {
        TOOL
    }

    async fn probe(&self) -> Result<inferkit_core::inventory::WorkerInventory> {
        let devices = self.read_devices().await?.unwrap_or_default();
        Ok(inferkit_core::inventory::WorkerInventory {
            devices,
            ..Default::default()
        })
    }
}
