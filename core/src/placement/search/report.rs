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
                let indices: Vec<String> = members
                    .iter()
                    .map(|&m| self.device(m).index.to_string())
                    .collect();
                format!(
                    "{name} devices {} ({} allocatable in all)",
                    indices.join(","),
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
