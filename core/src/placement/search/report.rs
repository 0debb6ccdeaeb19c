//! The outcome of a search: the assignment, the explanation, or why nothing fits.

use super::{Chosen, Group, Search};
use crate::backend::{Assignment, PlacementMode, Subordinate, SubordinateGrouping};
use crate::estimate::{Layout, ResourceEstimate};
use crate::placement::{Candidate as Refused, DeviceRef, Placement};
use crate::{Error, Result};

impl Search<'_> {
    pub(super) fn finish(mut self, mut chosen: Chosen) -> Result<Placement> {
        let mode = self.mode_of(&chosen.group, &chosen.estimate);
        let subordinates = self.subordinates(&chosen.group)?;
        let main = &self.views[chosen.group.main];
        self.req
            .prepared
            .estimator()
            .annotate_chosen(&chosen.request, &mut chosen.estimate)?;
        self.explanation.push(format!(
            "{}: {} fit; chose {} ({} score {:.1})",
            mode.describe(),
            chosen.fitting,
            self.describe(&chosen.group),
            self.req.options.strategy.as_str(),
            chosen.score
        ));
        let assignment = Assignment {
            mode,
            worker: main.worker.name.clone(),
            address: main.worker.address().to_string(),
            devices: chosen.request.devices,
            host: chosen.request.host,
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

    /// The error when no mode fits: the largest option refused and why, completed by the
    /// estimator's [`explain_refusal`](crate::ResourceEstimator::explain_refusal) of it (or by
    /// why that failed: the refusal and its rejected options are kept either way).
    pub(super) fn nothing_fits(self) -> Error {
        let largest = match &self.largest {
            Some((_, group, r)) => {
                let note = match self.refusal_note(group) {
                    Ok(Some(note)) => format!("; {note}"),
                    Ok(None) => String::new(),
                    // The refusal stands without its note: the note only completes it.
                    Err(e) => format!("; (no further note: {e})"),
                };
                format!(
                    "; the largest option, {}, was refused: {}{note}",
                    r.describe_candidate(),
                    r.reason
                )
            }
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

    /// The estimator's note on why `group` was refused, for a group that could run at all
    /// (one refused for its MIG instances gets none).
    fn refusal_note(&self, group: &Group) -> Result<Option<String>> {
        if self.mig_refusal(group).is_some() {
            return Ok(None);
        }
        let host = self.views[group.main].host();
        let request = self.request(group, host, self.offload);
        self.req.prepared.estimator().explain_refusal(&request)
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

    /// The group as a rejection or the explanation names it.
    pub(super) fn describe(&self, group: &Group) -> Refused {
        let main = &self.views[group.main];
        let worker = main.worker.name.clone();
        let allocatable = self.free_in(group);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match (&*group.members, self.workers_of(group)) {
            ([], _) => Refused::Host {
                worker,
                ram_allocatable: main.ram_allocatable,
            },
            ([m], _) => {
                let view = &self.views[m.0];
                let device = self.device(*m);
                Refused::Device {
                    device: DeviceRef {
                        worker: view.worker.name.clone(),
                        index: device.index,
                    },
                    name: view.device_name(device).to_string(),
                    allocatable: device.allocatable,
                }
            }
            (members, 1) => Refused::WorkerDevices {
                worker,
                indices: members.iter().map(|&m| self.device(m).index).collect(),
                allocatable,
            },
            (members, workers) => Refused::AcrossWorkers {
                main: worker,
                remote_devices: count(members.iter().filter(|m| m.0 != group.main).count()),
                other_workers: count(workers - 1),
                devices: count(members.len()),
                allocatable,
            },
        }
    }
}
