//! The memory limit of this process's cgroup (containers, systemd slices, Kubernetes pods).
//!
//! A worker in a container with `--memory 16g` must not offer the host's 512 GiB to the planner.
//! The files read are those of the kernel's cgroup interfaces:
//!
//! | | v2 | v1 |
//! |---|---|---|
//! | membership (`/proc/self/cgroup`) | `0::/path` | `N:memory:/path` |
//! | limit | `memory.max` (`max` = none) | `memory.limit_in_bytes` |
//! | usage | `memory.current` | `memory.usage_in_bytes` |
//! | reclaimable page cache (`memory.stat`) | `inactive_file` | `total_inactive_file` |
//!
//! The limit in force is the smallest along the path from the process's cgroup up to the root
//! of the mounted hierarchy (a parent's limit binds its children). Levels that are not visible
//! (a container sees its own cgroup as the root) are skipped.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use inferkit_core::inventory::Memory;
use inferkit_core::{Error, Result};

/// Where cgroup hierarchies are mounted on Linux.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The file listing this process's cgroups.
const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// cgroup v1 reports "no limit" as `PAGE_COUNTER_MAX` pages, `0x7FFFFFFFFFFFF000` bytes with
/// 4 KiB pages (kernel `mm/page_counter.c`); any limit this large is no limit.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Which cgroup interface holds the memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    /// The legacy per-controller hierarchies (`/sys/fs/cgroup/memory/...`).
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup/...`).
    V2,
}

impl CgroupVersion {
    fn limit_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        }
    }

    fn usage_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        }
    }

    fn inactive_file_key(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "total_inactive_file",
            CgroupVersion::V2 => "inactive_file",
        }
    }

    /// The directory of the hierarchy under the cgroup mount point.
    fn hierarchy(self, cgroup_root: &Path) -> PathBuf {
        match self {
            CgroupVersion::V1 => cgroup_root.join("memory"),
            CgroupVersion::V2 => cgroup_root.to_path_buf(),
        }
    }
}

/// The memory cgroup a process belongs to: its interface and its path inside the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryCgroup {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// Path relative to the hierarchy root (`/docker/3f2a...`, `/` in a cgroup namespace).
    pub path: String,
}

/// A cgroup memory limit that is in force, and what the cgroup uses under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMemory {
    /// The smallest limit on the path to the root, in bytes.
    pub limit: u64,
    /// Working set of the limiting cgroup: usage minus inactive page cache, in bytes.
    pub working_set: u64,
}

/// Finds the memory cgroup in the text of `/proc/self/cgroup`. A v1 memory controller line wins
/// over the v2 line (hybrid hosts mount the memory controller on v1).
pub fn parse_proc_self_cgroup(text: &str) -> Option<MemoryCgroup> {
    let entries = text.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        Some((controllers, path))
    });
    let mut unified = None;
    for (controllers, path) in entries {
        if controllers.split(',').any(|c| c == "memory") {
            return Some(MemoryCgroup {
                version: CgroupVersion::V1,
                path: path.to_string(),
            });
        }
        if controllers.is_empty() {
            unified = Some(MemoryCgroup {
                version: CgroupVersion::V2,
                path: path.to_string(),
            });
        }
    }
    unified
}

/// Parses a limit file: `max` (v2) or a v1 value of `2^62` or more is no limit (`None`).
pub fn parse_limit(text: &str, file: &Path) -> Result<Option<u64>> {
    let value = text.trim();
    if value == "max" {
        return Ok(None);
    }
    let bytes = parse_bytes(value, file)?;
    Ok(Some(bytes).filter(|b| *b < V1_UNLIMITED_FLOOR))
}

/// Parses a file holding one byte count (`memory.current`, `memory.usage_in_bytes`).
fn parse_bytes(text: &str, file: &Path) -> Result<u64> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| Error::parse(file, 0, format!("`{value}` is not a byte count")))
}

/// The value of `key` in a `memory.stat` file (`key value` lines); `None` if absent.
pub fn parse_stat(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Reads the memory limit in force for `cgroup` from the hierarchy mounted at `cgroup_root`;
/// `None` when no level of the path has a limit.
pub fn read_limit(cgroup_root: &Path, cgroup: &MemoryCgroup) -> Result<Option<CgroupMemory>> {
    let hierarchy = cgroup.version.hierarchy(cgroup_root);
    let mut tightest: Option<(u64, PathBuf)> = None;
    for dir in levels(&hierarchy, &cgroup.path) {
        let limit_file = dir.join(cgroup.version.limit_file());
        let Some(text) = read_optional(&limit_file)? else {
            continue;
        };
        if let Some(limit) = parse_limit(&text, &limit_file)?
            && tightest.as_ref().is_none_or(|(best, _)| limit < *best)
        {
            tightest = Some((limit, dir));
        }
    }
    let Some((limit, dir)) = tightest else {
        return Ok(None);
    };
    let working_set = working_set(&dir, cgroup.version)?;
    Ok(Some(CgroupMemory { limit, working_set }))
}

/// Reads [`read_limit`] for this process from `/proc/self/cgroup` and the hierarchies mounted
/// under `/sys/fs/cgroup`; `None` off Linux or outside any memory cgroup.
pub fn read_own_limit() -> Result<Option<CgroupMemory>> {
    let Some(membership) = read_optional(Path::new(PROC_SELF_CGROUP))? else {
        return Ok(None);
    };
    match parse_proc_self_cgroup(&membership) {
        Some(cgroup) => read_limit(Path::new(CGROUP_ROOT), &cgroup),
        None => Ok(None),
    }
}

/// Host memory as a process in the cgroup sees it: the total is capped at the limit, and what
/// is available is the smaller of the cgroup's headroom and the host's free memory.
pub fn effective_ram(physical: Memory, cgroup: Option<CgroupMemory>) -> Memory {
    let Some(cgroup) = cgroup.filter(|c| c.limit < physical.total) else {
        return physical;
    };
    let headroom = cgroup.limit.saturating_sub(cgroup.working_set);
    let available = headroom.min(physical.free());
    Memory {
        total: cgroup.limit,
        used: cgroup.limit - available,
        reserved: None,
    }
}

/// Usage minus inactive page cache, as cAdvisor's `container_memory_working_set_bytes` and
/// `docker stats` count it (page cache the kernel can reclaim is not memory in use).
fn working_set(dir: &Path, version: CgroupVersion) -> Result<u64> {
    let usage_file = dir.join(version.usage_file());
    let usage = match read_optional(&usage_file)? {
        Some(text) => parse_bytes(&text, &usage_file)?,
        None => return Ok(0),
    };
    let inactive = read_optional(&dir.join("memory.stat"))?
        .and_then(|stat| parse_stat(&stat, version.inactive_file_key()))
        .unwrap_or(0);
    Ok(usage.saturating_sub(inactive))
}

/// The directories from the cgroup's own up to the hierarchy root, innermost first.
fn levels(hierarchy: &Path, cgroup_path: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = cgroup_path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "..")
        .collect();
    (0..=parts.len())
        .rev()
        .map(|depth| {
            parts[..depth]
                .iter()
                .fold(hierarchy.to_path_buf(), |dir, p| dir.join(p))
        })
        .collect()
}

/// A file's text, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
