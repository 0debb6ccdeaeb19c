//! The outcome of a search: the assignment, the explanation, or why nothing fits.

use super::{Chosen, Group, Search};
use crate::backend::{Assignment, PlacementMode, Subordinate, SubordinateGrouping};
use crate::estimate::{Layout, ResourceEstimate};
use crate::placement::{Placement, gib};
use crate::{Error, Result};

impl Search<'_> {
    pub(super) fn finish(mut self, chosen: Chosen) -> Result<Placement> {
        let mode = self.mode_of(&chosen.group, &chosen.estimate);
        let subordinates = self.subordinates(&chosen.group)?;
        let main = &self.views[chosen.group.main];
        self.explanation.push(format!(
            "{}: {} fit; chose {} ({} score {:.1})",
            mode_name(mode),
            chosen.fitting,
            self.describe(&chosen.group),
            self.req.options.strategy.as_str(),
            chosen.score
        ));
        let assignment = Assignment {
            mode,
            worker: main.worker.name.clone(),
            address: main.worker.address().to_string(),
            devices: self.slots(&chosen.group),
            host: main.host(),
            estimate: chosen.estimate,
            port: self.req.options.port,
            subordinates,
        };
        Ok(Placement {
            assignment,
            explanation: self.explanation,
            rejected: self.rejected,
        })
    }

    pub(super) fn nothing_fits(self) -> Error {
        let largest = match &self.largest {
            Some((_, r)) => format!(
                "; the largest option, {}, was refused: {}",
                r.candidate, r.reason
            ),
            None => String::new(),
        };
        Error::NoPlacement {
            reason: format!(
                "no placement of {} with {} fits the cluster{largest}",
                self.req.spec.name,
                self.req.backend.id()
            ),
            explanation: self.explanation,
            rejected: self.rejected,
        }
    }

    fn mode_of(&self, group: &Group, estimate: &ResourceEstimate) -> PlacementMode {
        if group.members.is_empty() {
            return PlacementMode::CpuOnly;
        }
        if let Layout::Layers {
            offload_layers,
            total_layers,
            ..
        } = estimate.layout
            && offload_layers < total_layers
        {
            return PlacementMode::CpuOffload;
        }
        match (self.workers_of(group), group.members.len()) {
            (w, _) if w > 1 => PlacementMode::MultiWorker,
            (_, 1) => PlacementMode::SingleDevice,
            _ => PlacementMode::MultiDevice,
        }
    }

    fn subordinates(&self, group: &Group) -> Result<Vec<Subordinate>> {
        let remote: Vec<(usize, usize)> = group
            .members
            .iter()
            .copied()
            .filter(|m| m.0 != group.main)
            .collect();
        let mut processes: Vec<(usize, Vec<u32>)> = Vec::new();
        match self.caps.subordinates {
            SubordinateGrouping::None => {}
            SubordinateGrouping::PerRemoteDevice => {
                processes = remote
                    .iter()
                    .map(|&m| (m.0, vec![self.device(m).index]))
                    .collect();
            }
            SubordinateGrouping::PerRemoteWorker => {
                for &m in &remote {
                    let index = self.device(m).index;
                    match processes.iter_mut().find(|(v, _)| *v == m.0) {
                        Some((_, devices)) => devices.push(index),
                        None => processes.push((m.0, vec![index])),
                    }
                }
            }
        }
        let base = self.req.options.port;
        processes
            .into_iter()
            .enumerate()
            .map(|(i, (v, devices))| {
                let offset = u16::try_from(i + 1).ok();
                let port = offset.and_then(|o| base.checked_add(o)).ok_or_else(|| {
                    Error::invalid_parameter(
                        "port",
                        format!("port {base} leaves no room for {} subordinate ports", i + 1),
                    )
                })?;
                let worker = self.views[v].worker;
                Ok(Subordinate {
                    worker: worker.name.clone(),
                    address: worker.address().to_string(),
                    devices,
                    port,
                })
            })
            .collect()
    }

    pub(super) fn describe(&self, group: &Group) -> String {
        let main = &self.views[group.main];
        let name = &main.worker.name;
        let free = self.free_in(group);
        match (group.members.as_slice(), self.workers_of(group)) {
            ([], _) => format!(
                "{name} CPU only ({} RAM allocatable)",
                gib(main.ram_allocatable)
            ),
            ([m], _) => {
                let d = self.device(*m);
                format!(
                    "{}:{} ({}, {} allocatable)",
                    self.views[m.0].worker.name,
                    d.index,
                    self.views[m.0].device_name(d),
                    gib(d.allocatable)
                )
            }
            (members, 1) => {
                let indexes: Vec<u32> = members.iter().map(|&m| self.device(m).index).collect();
                let count = match indexes.len() {
                    n if n > MAX_INDEXES_LISTED => format!("{n} devices, "),
                    _ => String::new(),
                };
                format!(
                    "{name} devices {} ({count}{} allocatable in all)",
                    index_list(indexes),
                    gib(free)
                )
            }
            (members, workers) => {
                let remote = members.iter().filter(|m| m.0 != group.main).count();
                format!(
                    "{name} + {remote} remote devices on {} other workers ({} devices, {} \
                     allocatable in all)",
                    workers - 1,
                    members.len(),
                    gib(free)
                )
            }
        }
    }
}

/// Most device indexes a group lists one by one (a whole 8- or 16-GPU node).
const MAX_INDEXES_LISTED: usize = 16;

/// Most runs of consecutive indexes a wide group lists before "and N more".
const MAX_RUNS_LISTED: usize = 8;

/// The device indexes of a group on one worker: up to [`MAX_INDEXES_LISTED`] as they are
/// (`0,1,2,3`); more as sorted runs (`0-511,768-1023`), at most [`MAX_RUNS_LISTED`], so that a
/// refusal on a wide worker stays one readable line.
fn index_list(mut indexes: Vec<u32>) -> String {
    let join = |parts: Vec<String>| parts.join(",");
    if indexes.len() <= MAX_INDEXES_LISTED {
        return join(indexes.iter().map(u32::to_string).collect());
    }
    indexes.sort_unstable();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for index in indexes.iter().copied() {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(index) => *end = index,
            _ => runs.push((index, index)),
        }
    }
    let shown = join(
        runs.iter()
            .take(MAX_RUNS_LISTED)
            .map(|&(start, end)| {
                if start == end {
                    start.to_string()
                } else {
                    format!("{start}-{end}")
                }
            })
            .collect(),
    );
    let more = match runs.len().saturating_sub(MAX_RUNS_LISTED) {
        0 => String::new(),
        n => format!(" and {n} more runs"),
    };
    format!("{shown}{more}")
}

/// The mode as explanations and rejections name it.
pub(super) fn mode_name(mode: PlacementMode) -> &'static str {
    match mode {
        PlacementMode::SingleDevice => "single device",
        PlacementMode::MultiDevice => "several devices of one worker",
        PlacementMode::MultiWorker => "several workers",
        PlacementMode::CpuOffload => "partial CPU offload",
        PlacementMode::CpuOnly => "CPU only",
    }
}

#[cfg(test)]
mod tests {
    use super::index_list;

    #[test]
    fn a_node_lists_its_devices_one_by_one() {
        assert_eq!(index_list(vec![3, 1, 2]), "3,1,2");
        assert_eq!(
            index_list((0..16).collect()),
            (0..16).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
    }

    #[test]
    fn a_wide_group_lists_runs() {
        assert_eq!(index_list((0..1024).rev().collect()), "0-1023");
        let gaps: Vec<u32> = (0..40).filter(|i| i % 4 != 3).chain([100]).collect();
        assert_eq!(
            index_list(gaps),
            "0-2,4-6,8-10,12-14,16-18,20-22,24-26,28-30 and 3 more runs"
        );
    }
}
