//! AMD GPUs through `rocm-smi`.
//!
//! The command is `rocm-smi --showmeminfo vram --showproductname --showbus --showuniqueid
//! --showdriverversion --json`. Its JSON has one object per GPU under the key `cardN`, where `N`
//! is the index (GPUStack reads it the same way), with string values; `system` holds the
//! driver version. Key spelling changed between ROCm releases (`Card series` in 5.x,
//! `Card Series` in 6.x), so keys are matched without regard to case.
//!
//! A card whose VRAM rocm-smi does not report (the field left out, or `N/A`) is listed as
//! unavailable rather than failing the whole probe: the other cards are still usable.

use serde_json::{Map, Value};

use inferkit_core::Result;
use inferkit_core::inventory::{Device, DeviceHealth, Memory, Vendor};

use super::probe_error;

/// Name of the tool, used in errors.
const TOOL: &str = "rocm-smi";

/// The arguments the probe passes to `rocm-smi`.
pub const ARGS: &[&str] = &[
    "--showmeminfo",
    "vram",
    "--showproductname",
    "--showbus",
    "--showuniqueid",
    "--showdriverversion",
    "--json",
];

/// What `rocm-smi` prints when the amdgpu driver is not loaded: no AMD GPU here.
pub const NO_DRIVER_MARKERS: &[&str] = &["amdgpu not found in modules", "No AMD GPUs"];

/// Parses the JSON output of `rocm-smi ... --json` into devices ordered by card index.
///
/// Lines before the JSON object (some releases print warnings on stdout) are skipped.
pub fn parse_rocm_smi_json(text: &str) -> Result<Vec<Device>> {
    let json = text.find('{').map(|start| &text[start..]).ok_or_else(|| {
        probe_error(
            TOOL,
            format!("no JSON object in the output: `{}`", excerpt(text)),
        )
    })?;
    let root: Map<String, Value> = serde_json::from_str(json)
        .map_err(|e| probe_error(TOOL, format!("output is not the expected JSON object: {e}")))?;
    let driver_version = root
        .get("system")
        .and_then(Value::as_object)
        .and_then(|system| field(system, "Driver version"))
        .map(str::to_string);
    let mut devices = root
        .iter()
        .filter_map(|(key, value)| card_index(key).map(|index| (index, key, value)))
        .map(|(index, key, value)| card(index, key, value, driver_version.as_deref()))
        .collect::<Result<Vec<Device>>>()?;
    devices.sort_by_key(|d| d.index);
    Ok(devices)
}

/// `card3` is index 3; other keys (`system`) are not GPUs.
fn card_index(key: &str) -> Option<u32> {
    key.strip_prefix("card")?.parse().ok()
}

fn card(index: u32, key: &str, value: &Value, driver_version: Option<&str>) -> Result<Device> {
    let fields = value
        .as_object()
        .ok_or_else(|| probe_error(TOOL, format!("`{key}` is not an object")))?;
    let (memory, health) = vram(fields, key)?;
    let name = field(fields, "Card Series")
        .or_else(|| field(fields, "Device Name"))
        .unwrap_or_default();
    Ok(Device {
        index,
        vendor: Vendor::Amd,
        name: name.to_string(),
        memory,
        compute_capability: field(fields, "GFX Version").map(str::to_string),
        uuid: field(fields, "Unique ID").map(|id| id.trim_start_matches("0x").to_string()),
        pci_bus_id: field(fields, "PCI Bus").map(str::to_string),
        driver_version: driver_version.map(str::to_string),
        runtime_version: None,
        physical_index: None,
        partition: None,
        health,
    })
}

/// Total and used VRAM of a card; a card for which either is not reported has no memory and
/// is unavailable, since its free memory is unknown.
fn vram(fields: &Map<String, Value>, card: &str) -> Result<(Memory, Option<Box<DeviceHealth>>)> {
    const TOTAL: &str = "VRAM Total Memory (B)";
    const USED: &str = "VRAM Total Used Memory (B)";
    let (Some(total), Some(used)) = (
        byte_field(fields, card, TOTAL)?,
        byte_field(fields, card, USED)?,
    ) else {
        let health = DeviceHealth {
            available: false,
            status: format!("{TOOL} does not report the total and used VRAM of {card}"),
        };
        return Ok((Memory::default(), Some(Box::new(health))));
    };
    if used > total {
        let reason = format!("{card}: VRAM used {used} exceeds total {total}");
        return Err(probe_error(TOOL, reason));
    }
    Ok((
        Memory {
            total,
            used,
            reserved: None,
        },
        None,
    ))
}

/// A string field, matched without regard to case; `N/A` and empty values count as absent.
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("N/A"))
}

/// A byte count (rocm-smi prints `(B)` fields as decimal strings): `None` when the field is
/// missing or `N/A`, an error when it holds something else that is not a number.
fn byte_field(fields: &Map<String, Value>, card: &str, name: &str) -> Result<Option<u64>> {
    let Some((_, raw)) = fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
    else {
        return Ok(None);
    };
    let number = match raw {
        Value::String(s) if s.trim().eq_ignore_ascii_case("N/A") => return Ok(None),
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    number
        .map(Some)
        .ok_or_else(|| probe_error(TOOL, format!("{card}: `{name}` is {raw}, not a byte count")))
}

/// The start of an unexpected output, for the error message.
fn excerpt(text: &str) -> String {
    text.trim().chars().take(120).collect()
}

/// Probes AMD GPUs by running `rocm-smi` with [`ARGS`].
///
/// The inventory it returns holds only devices; [`super::CompositeProbe`] adds the host. A
/// machine without `rocm-smi`, or where it reports that the amdgpu driver is not loaded, has no
/// AMD devices.
#[cfg(feature = "cli-probes")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli-probes")))]
#[derive(Debug, Clone)]
pub struct RocmProbe {
    tool: super::command::Tool,
}

#[cfg(feature = "cli-probes")]
impl Default for RocmProbe {
    fn default() -> Self {
        RocmProbe {
            tool: super::command::Tool::new(TOOL),
        }
    }
}

#[cfg(feature = "cli-probes")]
impl RocmProbe {
    /// Runs `rocm-smi` from `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the `rocm-smi` at `program` (a path, or a name looked up in `PATH`).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.tool.program = program.into();
        self
    }

    /// Gives the tool `timeout` to answer instead of 30 seconds.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tool.timeout = timeout;
        self
    }
}

#[cfg(feature = "cli-probes")]
#[async_trait::async_trait]
impl super::DeviceProbe for RocmProbe {
    fn name(&self) -> &'static str {
        TOOL
    }

    async fn probe(&self) -> Result<inferkit_core::inventory::WorkerInventory> {
        let output = self.tool.run(ARGS, NO_DRIVER_MARKERS).await?;
        let devices = match output {
            Some(text) => parse_rocm_smi_json(&text)?,
            None => Vec::new(),
        };
        Ok(inferkit_core::inventory::WorkerInventory {
            devices,
            ..Default::default()
        })
    }
}
