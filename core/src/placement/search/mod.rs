//! The candidate search behind [`place`](super::place).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use crate::backend::{Capabilities, Platform, SubordinateGrouping};
use crate::estimate::{DeviceSlot, FitRequest, HostSlot, ResourceEstimate};
use crate::inventory::{Cluster, Device, MAX_DEVICES_PER_WORKER, WorkerInventory};
use crate::placement::resources::{DeviceClasses, DeviceView, Reserves, WorkerView};
use crate::placement::score::{self, PlacementStrategy};
use crate::placement::{
    Candidate as Refused, DeviceRef, Placement, PlacementRequest, Rejection, gib, selector_admits,
    selector_text, verify_claims,
};
use crate::{Error, Result};

mod modes;
mod report;

/// Why a process holds one MIG instance only, for refusals.
const MIG_ONE_PER_PROCESS: &str =
    "CUDA enumerates one MIG instance per process, so a model is not split over instances";

/// How many of the best-scored candidates of a mode are re-fitted exactly before the mode is
/// given up. Class probing makes a failure here rare; the bound keeps a pathological estimator
/// from costing a fit per device.
const MAX_EXACT_FITS: usize = 8;

/// A set of devices (possibly none) with the worker of the main process.
#[derive(Debug, Clone)]
struct Group {
    /// View index of the main worker.
    main: usize,
    /// (view index, position in that view's devices), in the backend's device order.
    members: Members,
}

/// A group's members: one device held in place, else a list. Single-device mode makes a group
/// per device of the cluster, and a list of one would be an allocation per device (800,000 on
/// a 100,000-worker fleet, issue 18).
#[derive(Debug, Clone)]
enum Members {
    One([(usize, usize); 1]),
    Many(Vec<(usize, usize)>),
}

impl Members {
    /// The one member `(view, device)`.
    fn one(member: (usize, usize)) -> Self {
        Members::One([member])
    }
}

impl std::ops::Deref for Members {
    type Target = [(usize, usize)];

    fn deref(&self) -> &[(usize, usize)] {
        match self {
            Members::One(one) => one,
            Members::Many(many) => many,
        }
    }
}

impl From<Vec<(usize, usize)>> for Members {
    fn from(members: Vec<(usize, usize)>) -> Self {
        Members::Many(members)
    }
}

impl FromIterator<(usize, usize)> for Members {
    fn from_iter<I: IntoIterator<Item = (usize, usize)>>(members: I) -> Self {
        Members::Many(members.into_iter().collect())
    }
}

/// A group known to fit, with its score.
struct Scored {
    group: Group,
    score: f64,
    /// Layers on devices for partial offload (0 for other modes, where all are).
    layers: u32,
}

/// The best candidates of a mode so far, and how many fit in all. Only the best
/// [`MAX_EXACT_FITS`] can be chosen, so only those are kept: a 100,000-worker fleet of 8 GPUs
/// has 800,000 single-device candidates (issue 18: peak memory under 3× the cluster file).
#[derive(Default)]
struct Shortlist {
    best: Vec<Scored>,
    fitting: usize,
}

impl From<Vec<Scored>> for Shortlist {
    fn from(best: Vec<Scored>) -> Self {
        Shortlist {
            fitting: best.len(),
            best,
        }
    }
}

/// The chosen group and its exact estimate.
struct Chosen {
    group: Group,
    /// The request the estimate answers: its devices and host are the assignment's.
    request: FitRequest,
    estimate: ResourceEstimate,
    score: f64,
    /// Candidates of the winning mode that fit.
    fitting: usize,
}

/// Outcome of probing a best-first list: how many lead items fit.
struct Prefix {
    count: usize,
    /// Estimate of the last item that fits.
    last_fit: Option<ResourceEstimate>,
    /// Error of the first item that does not fit.
    first_miss: Option<Error>,
}

/// One placement search.
pub(crate) struct Search<'a> {
    req: &'a PlacementRequest<'a>,
    caps: &'a Capabilities,
    views: Vec<WorkerView<'a>>,
    reserves: Reserves,
    offload: bool,
    distributed: bool,
    /// Largest host RAM (total, allocatable) of any eligible worker, for class probes
    /// ([`Self::largest_host`]).
    largest_ram: (u64, u64),
    /// Rank of each view's worker name, for cheap deterministic tie breaks.
    name_rank: Vec<u32>,
    explanation: Vec<String>,
    rejected: Vec<Rejection>,
    /// The refused group with the most devices and free memory: ((devices, bytes), the group,
    /// why).
    largest: Option<((usize, u64), Group, Rejection)>,
    /// Estimator fits asked so far, counted for the `place` span.
    fits: &'a Cell<u32>,
}

impl<'a> Search<'a> {
    /// Resolves the backend's switches and reserves and filters the cluster down to eligible
    /// workers and devices; refused ones are recorded with their reasons.
    /// A search for `req`, counting the estimator fits it asks in `fits`.
    pub fn new(req: &'a PlacementRequest<'a>, fits: &'a Cell<u32>) -> Result<Self> {
        let caps = req.backend.capabilities();
        let spec = req.spec;
        let offload =
            caps.cpu_offload && spec.cpu_offloading.unwrap_or(caps.default_cpu_offloading);
        let distributed = caps.multi_worker
            && caps.subordinates != SubordinateGrouping::None
            && spec
                .distributed_inference_across_workers
                .unwrap_or(caps.default_distributed);
        let reserves = Reserves {
            device: req.options.device_reserve_for(caps),
            ram: req.options.ram_reserve,
        };
        let rule = allocatable_rule(reserves, caps.own_device_headroom, req.backend.id());
        let mut search = Search {
            req,
            caps,
            views: Vec::new(),
            reserves,
            offload,
            distributed,
            largest_ram: (0, 0),
            name_rank: Vec::new(),
            explanation: vec![rule],
            rejected: Vec::new(),
            largest: None,
            fits,
        };
        search.views = search.eligible_workers()?;
        search.name_rank = name_ranks(&search.views);
        search.largest_ram = search.views.iter().fold((0, 0), |(t, a), v| {
            (t.max(v.worker.ram.total), a.max(v.ram_allocatable))
        });
        Ok(search)
    }

    /// Honours a device selector, or tries the modes in GPUStack's order of preference.
    pub fn run(mut self) -> Result<Placement> {
        if !self.req.spec.device_selector.is_empty() {
            return self.manual();
        }
        let modes: [fn(&mut Self) -> Option<Chosen>; 5] = [
            Self::single_device,
            Self::multi_device,
            Self::multi_worker,
            Self::cpu_offload,
            Self::cpu_only,
        ];
        for mode in modes {
            if let Some(chosen) = mode(&mut self) {
                return self.finish(chosen);
            }
        }
        Err(self.nothing_fits())
    }

    // ---- filters ---------------------------------------------------------------------------

    fn eligible_workers(&mut self) -> Result<Vec<WorkerView<'a>>> {
        let cluster = self.req.cluster;
        check_inventory(cluster)?;
        let mut classes = DeviceClasses::default();
        // Workers and devices filtered out, by reason.
        let mut refused: BTreeMap<String, (Vec<String>, Vec<DeviceRef>)> = BTreeMap::new();
        let mut views = Vec::with_capacity(cluster.workers.len());
        for worker in &cluster.workers {
            if let Some(reason) = self.worker_refusal(worker) {
                refused
                    .entry(reason)
                    .or_default()
                    .0
                    .push(worker.name.clone());
                continue;
            }
            let view = WorkerView::new(
                worker,
                |device| match self.device_refusal(worker, device) {
                    None => true,
                    Some(reason) => {
                        let id = DeviceRef {
                            worker: worker.name.clone(),
                            index: device.index,
                        };
                        refused.entry(reason).or_default().1.push(id);
                        false
                    }
                },
                self.reserves,
                &self.req.spec.name,
                &mut classes,
            )?;
            views.push(view);
        }
        let devices: usize = views.iter().map(|v| v.devices.len()).sum();
        self.explanation.push(format!(
            "{}/{} workers and {devices} devices are eligible for {}",
            views.len(),
            cluster.workers.len(),
            self.req.backend.id()
        ));
        for (reason, (names, devices)) in refused {
            if !names.is_empty() {
                self.reject(Refused::Workers { names }, reason.clone());
            }
            if !devices.is_empty() {
                self.reject(Refused::Devices { devices }, reason);
            }
        }
        Ok(views)
    }

    fn worker_refusal(&self, worker: &WorkerInventory) -> Option<String> {
        let selector = &self.req.spec.worker_selector;
        if !selector_admits(selector, worker) {
            return Some(format!(
                "labels do not match the worker selector {}",
                selector_text(selector)
            ));
        }
        let platforms = &self.caps.platforms;
        if let Some(platform) = Platform::of_worker(worker)
            && !platforms.is_empty()
            && !platforms.contains(&platform)
        {
            return Some(format!(
                "{} does not run on {platform}",
                self.req.backend.id()
            ));
        }
        self.req
            .prepared
            .check_worker(worker)
            .err()
            .map(|unfit| unfit.to_string())
    }

    fn device_refusal(&self, worker: &WorkerInventory, device: &Device) -> Option<String> {
        if let Some(status) = device.unavailable_reason() {
            return Some(format!(
                "{} {} is unavailable: {status}",
                device.vendor, device.index
            ));
        }
        if !self.caps.vendors.contains(&device.vendor) {
            return Some(format!(
                "{} does not run on {} devices",
                self.req.backend.id(),
                device.vendor
            ));
        }
        self.req
            .prepared
            .check_device(worker, device)
            .err()
            .map(|unfit| unfit.to_string())
    }

    // ---- search helpers --------------------------------------------------------------------

    /// Probes each bucket (groups of one device class, best first) and scores every group that
    /// fits. With `with_largest_host`, probes use the largest host RAM of the cluster so that the
    /// answer depends on the devices only; each group's own RAM is checked afterwards.
    fn search_buckets(&mut self, buckets: &[Vec<Group>], with_largest_host: bool) -> Shortlist {
        let mut candidates = Shortlist::default();
        for bucket in buckets.iter().filter(|b| !b.is_empty()) {
            let prefix = fitting_prefix(bucket, |g| {
                let host = if with_largest_host {
                    self.largest_host(g)
                } else {
                    self.views[g.main].host()
                };
                self.fit(g, host, false)
            });
            self.reject_misses(bucket, &prefix);
            let Some(estimate) = prefix.last_fit else {
                continue;
            };
            let claims: Vec<u64> = estimate.devices.iter().map(|d| d.held()).collect();
            let ram = estimate.host.total();
            let mut short_of_ram = Vec::new();
            for group in &bucket[..prefix.count] {
                if self.host_need(group, &claims, ram) > self.views[group.main].ram_allocatable {
                    short_of_ram.push(self.views[group.main].worker.name.clone());
                    continue;
                }
                let score = self.score(group, &claims, ram);
                let candidate = Scored {
                    group: group.clone(),
                    score,
                    layers: 0,
                };
                self.consider(&mut candidates, candidate);
            }
            if !short_of_ram.is_empty() {
                short_of_ram.dedup();
                let reason = format!(
                    "host RAM: needs {}, the worker has less allocatable",
                    gib(ram)
                );
                self.reject(
                    Refused::Workers {
                        names: short_of_ram,
                    },
                    reason,
                );
            }
        }
        candidates
    }

    fn reject_misses(&mut self, bucket: &[Group], prefix: &Prefix) {
        let Some(error) = &prefix.first_miss else {
            return;
        };
        let first = &bucket[prefix.count];
        let alike = bucket.len() - prefix.count - 1;
        self.reject_group(first, alike, reason(error));
    }

    /// Adds a candidate that fits to the shortlist. Once it holds twice the candidates that can
    /// be chosen, the best are selected in linear time and the rest dropped: the order is total
    /// (it ends on worker and device), so the survivors are those a full sort would put first.
    fn consider(&self, list: &mut Shortlist, candidate: Scored) {
        list.fitting += 1;
        list.best.push(candidate);
        if list.best.len() >= 2 * MAX_EXACT_FITS {
            self.keep_best(&mut list.best);
        }
    }

    /// Keeps the best [`MAX_EXACT_FITS`] candidates, in no particular order.
    fn keep_best(&self, candidates: &mut Vec<Scored>) {
        if candidates.len() > MAX_EXACT_FITS {
            candidates.select_nth_unstable_by(MAX_EXACT_FITS - 1, |a, b| self.by_preference(a, b));
            candidates.truncate(MAX_EXACT_FITS);
        }
    }

    /// Sorts the shortlist's candidates best first, fits the best few exactly in that order,
    /// and returns the first that passes the final check.
    fn pick(&mut self, shortlist: impl Into<Shortlist>, allow_offload: bool) -> Option<Chosen> {
        let Shortlist {
            best: mut candidates,
            fitting,
        } = shortlist.into();
        self.keep_best(&mut candidates);
        candidates.sort_by(|a, b| self.by_preference(a, b));
        for candidate in candidates {
            let host = self.views[candidate.group.main].host();
            let request = self.request(&candidate.group, host, allow_offload);
            let exact = self
                .fit_request(&candidate.group, &request)
                .and_then(|estimate| self.verify(&candidate.group, estimate));
            match exact {
                Ok(estimate) => {
                    return Some(Chosen {
                        group: candidate.group,
                        request,
                        estimate,
                        score: candidate.score,
                        fitting,
                    });
                }
                Err(e) => self.reject_group(&candidate.group, 0, reason(&e)),
            }
        }
        None
    }

    /// Fits each group in turn and returns the first that fits; rejects the last otherwise.
    fn first_fitting(&mut self, attempts: Vec<Group>) -> Option<Group> {
        let mut last_error = None;
        for group in &attempts {
            match self.fit(group, self.views[group.main].host(), false) {
                Ok(_) => return Some(group.clone()),
                Err(e) => last_error = Some(e),
            }
        }
        if let (Some(group), Some(error)) = (attempts.last(), last_error) {
            self.reject_group(group, 0, reason(&error));
        }
        None
    }

    fn fit(&self, group: &Group, host: HostSlot, allow_offload: bool) -> Result<ResourceEstimate> {
        self.fit_request(group, &self.request(group, host, allow_offload))
    }

    /// What the estimator is asked about `group` with `host`.
    fn request(&self, group: &Group, host: HostSlot, allow_offload: bool) -> FitRequest {
        FitRequest {
            devices: self.slots(group),
            host,
            allow_cpu_offload: allow_offload,
        }
    }

    /// The estimator's fit of `request`, built for `group` by [`Self::request`], checked.
    fn fit_request(&self, group: &Group, request: &FitRequest) -> Result<ResourceEstimate> {
        if let Some(refusal) = self.mig_refusal(group) {
            return Err(Error::unsupported(refusal));
        }
        self.fits.set(self.fits.get().saturating_add(1));
        let _span = tracing::trace_span!("estimate", devices = request.devices.len()).entered();
        let estimate = self.req.prepared.estimator().fit(request)?;
        if estimate.devices.len() != request.devices.len() {
            return Err(Error::unsupported(format!(
                "the {} estimator answered for {} devices when asked about {}",
                self.req.backend.id(),
                estimate.devices.len(),
                request.devices.len()
            )));
        }
        estimate.check_fits(&request.devices, &request.host)?;
        Ok(estimate)
    }

    /// Why `group` cannot run: it gives one process a MIG instance and another device. CUDA
    /// enumerates one MIG instance per process, however many are visible (NVIDIA MIG User
    /// Guide, "CUDA Device Enumeration"). The main process holds the main worker's devices; a
    /// subordinate holds a remote worker's (Ray, MindIE) or one remote device (RPC servers).
    /// The modes build no such group; this is the rule every fit passes (manual selection
    /// included).
    fn mig_refusal(&self, group: &Group) -> Option<String> {
        if group.members.len() < 2 {
            return None;
        }
        let per_device = self.caps.subordinates == SubordinateGrouping::PerRemoteDevice;
        let mut workers: Vec<usize> = group
            .members
            .iter()
            .map(|m| m.0)
            .filter(|&v| v == group.main || !per_device)
            .collect();
        workers.sort_unstable();
        workers.dedup();
        workers.into_iter().find_map(|v| {
            let held: Vec<(usize, usize)> =
                group.members.iter().copied().filter(|m| m.0 == v).collect();
            let mig = held.iter().copied().find(|&m| self.is_mig(m))?;
            (held.len() > 1).then(|| {
                let view = &self.views[v];
                format!(
                    "one process on {} would hold {} devices, among them MIG instance {} ({}): \
                     a CUDA process uses one MIG instance ({MIG_ONE_PER_PROCESS})",
                    view.worker.name,
                    held.len(),
                    self.device(mig).index,
                    view.device_name(self.device(mig))
                )
            })
        })
    }

    fn verify(&self, group: &Group, estimate: ResourceEstimate) -> Result<ResourceEstimate> {
        let main = &self.views[group.main].worker.name;
        verify_claims(
            self.req.cluster,
            &estimate,
            main,
            self.reserves.device,
            self.reserves.ram,
        )?;
        Ok(estimate)
    }

    fn slots(&self, group: &Group) -> Vec<DeviceSlot> {
        group
            .members
            .iter()
            .map(|&(v, d)| self.views[v].slot(&self.views[v].devices[d], v != group.main))
            .collect()
    }

    /// The main worker's host slot with the cluster's largest RAM, for class probes whose
    /// answer must not depend on one worker's RAM.
    fn largest_host(&self, group: &Group) -> HostSlot {
        HostSlot {
            worker: self.views[group.main].worker.name.clone(),
            total: self.largest_ram.0,
            allocatable: self.largest_ram.1,
            os: Some(self.views[group.main].worker.os.clone()),
        }
    }

    /// Host RAM a group needs on its main worker: the host claim, plus the device claims on
    /// unified memory.
    fn host_need(&self, group: &Group, claims: &[u64], ram: u64) -> u64 {
        if !self.views[group.main].unified {
            return ram;
        }
        group
            .members
            .iter()
            .zip(claims)
            .filter(|((v, _), _)| *v == group.main)
            .fold(ram, |acc, (_, c)| acc.saturating_add(*c))
    }

    // ---- ordering and scoring --------------------------------------------------------------

    /// Sorts groups of one class best first: larger weakest device, then more free memory,
    /// then worker name and device index. Keys are computed once per group.
    fn sort_by_weakest_device(&self, groups: &mut [Group]) {
        groups.sort_by_cached_key(|g| {
            let weakest = g
                .members
                .iter()
                .map(|&m| self.device(m).allocatable)
                .min()
                .unwrap_or(0);
            (
                std::cmp::Reverse(weakest),
                std::cmp::Reverse(self.free_in(g)),
                self.tie_key(g),
            )
        });
    }

    /// Candidates, best first: more layers on devices, fewer devices, higher score, more free
    /// device memory (GPUStack keeps the first of equal scores in a list sorted by free memory),
    /// then worker name and device index.
    fn by_preference(&self, a: &Scored, b: &Scored) -> Ordering {
        b.layers
            .cmp(&a.layers)
            .then(a.group.members.len().cmp(&b.group.members.len()))
            .then(b.score.total_cmp(&a.score))
            .then_with(|| self.free_in(&b.group).cmp(&self.free_in(&a.group)))
            .then_with(|| self.tie_break(&a.group, &b.group))
    }

    fn tie_break(&self, a: &Group, b: &Group) -> Ordering {
        self.tie_key(a).cmp(&self.tie_key(b))
    }

    /// The worker name's rank, then the first device index: the deterministic last resort.
    fn tie_key(&self, group: &Group) -> (u32, Option<u32>) {
        let first = group.members.first().map(|&m| self.device(m).index);
        (self.name_rank[group.main], first)
    }

    /// The placement strategy's score of a group, with `claims` per member (empty: unknown,
    /// scored as zero) and `ram` on the main worker.
    fn score(&self, group: &Group, claims: &[u64], ram: u64) -> f64 {
        let main = &self.views[group.main];
        match self.req.options.strategy {
            PlacementStrategy::Spread => {
                let devices = group
                    .members
                    .iter()
                    .filter(|m| m.0 == group.main)
                    .map(|&m| self.device(m));
                score::spread(main, devices)
            }
            PlacementStrategy::Binpack => {
                let mut per_worker: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
                for (i, &m) in group.members.iter().enumerate() {
                    let claim = claims.get(i).copied().unwrap_or(0);
                    per_worker
                        .entry(m.0)
                        .or_default()
                        .push((claim, self.device(m).allocatable));
                }
                let main_devices = per_worker.remove(&group.main).unwrap_or_default();
                let main_score = score::binpack_worker(ram, main.ram_allocatable, &main_devices);
                let subordinates: Vec<f64> = per_worker
                    .into_iter()
                    .map(|(v, devices)| {
                        score::binpack_worker(0, self.views[v].ram_allocatable, &devices)
                    })
                    .collect();
                score::binpack_combined(main_score, &subordinates)
            }
        }
    }

    // ---- small accessors -------------------------------------------------------------------

    fn device(&self, (v, d): (usize, usize)) -> &DeviceView {
        &self.views[v].devices[d]
    }

    /// The `k` devices of worker `v` with the most free memory, in device index order (the
    /// order a user expects in `CUDA_VISIBLE_DEVICES` and tensor splits).
    fn largest_by_index(&self, v: usize, k: usize) -> Vec<(usize, usize)> {
        let mut members: Vec<(usize, usize)> = (0..k).map(|d| (v, d)).collect();
        members.sort_by_key(|&m| self.device(m).index);
        members
    }

    /// Whether a member is a MIG instance.
    fn is_mig(&self, (v, d): (usize, usize)) -> bool {
        let view = &self.views[v];
        view.worker.devices[view.devices[d].position].is_mig_instance()
    }

    /// Free device memory of a group (host RAM for CPU-only groups).
    fn free_in(&self, group: &Group) -> u64 {
        if group.members.is_empty() {
            return self.views[group.main].ram_allocatable;
        }
        saturating_sum(group.members.iter().map(|&m| self.device(m).allocatable))
    }

    /// Free memory of worker `v`'s eligible devices.
    fn free_of(&self, v: usize) -> u64 {
        saturating_sum(self.views[v].devices.iter().map(|d| d.allocatable))
    }

    /// Orders workers by free device memory, most first, then by name.
    fn most_free_first(&self, a: usize, b: usize) -> Ordering {
        self.free_of(b)
            .cmp(&self.free_of(a))
            .then(self.name_rank[a].cmp(&self.name_rank[b]))
    }

    fn workers_of(&self, group: &Group) -> usize {
        let mut workers: Vec<usize> = group.members.iter().map(|m| m.0).collect();
        workers.sort_unstable();
        workers.dedup();
        workers.len()
    }

    /// Records a refused group (standing for `alike` more like it, with less free memory) and
    /// keeps the largest one for the summary of [`Self::nothing_fits`].
    fn reject_group(&mut self, group: &Group, alike: usize, reason: String) {
        let alike = u32::try_from(alike).unwrap_or(u32::MAX);
        let rejection = Rejection::new(self.describe(group), reason).with_alike(alike);
        let size = (group.members.len(), self.free_in(group));
        if self
            .largest
            .as_ref()
            .is_none_or(|(largest, _, _)| size > *largest)
        {
            self.largest = Some((size, group.clone(), rejection.clone()));
        }
        self.rejected.push(rejection);
    }

    fn reject(&mut self, candidate: Refused, reason: impl Into<String>) {
        self.rejected.push(Rejection::new(candidate, reason));
    }
}

/// Fits items of a best-first list, assuming an item fits whenever a worse one does: the first,
/// the last, then a binary search for the boundary. About 2 + log2(n) fits.
fn fitting_prefix<T>(items: &[T], mut fit: impl FnMut(&T) -> Result<ResourceEstimate>) -> Prefix {
    let n = items.len();
    let Some(first) = items.first() else {
        return Prefix {
            count: 0,
            last_fit: None,
            first_miss: None,
        };
    };
    let mut last_fit = match fit(first) {
        Ok(estimate) => estimate,
        Err(e) => {
            return Prefix {
                count: 0,
                last_fit: None,
                first_miss: Some(e),
            };
        }
    };
    if n == 1 {
        return Prefix {
            count: 1,
            last_fit: Some(last_fit),
            first_miss: None,
        };
    }
    let mut first_miss = match fit(&items[n - 1]) {
        Ok(estimate) => {
            return Prefix {
                count: n,
                last_fit: Some(estimate),
                first_miss: None,
            };
        }
        Err(e) => e,
    };
    let (mut fits, mut misses) = (0, n - 1);
    while misses - fits > 1 {
        let mid = fits + (misses - fits) / 2;
        match fit(&items[mid]) {
            Ok(estimate) => (fits, last_fit) = (mid, estimate),
            Err(e) => (misses, first_miss) = (mid, e),
        }
    }
    Prefix {
        count: fits + 1,
        last_fit: Some(last_fit),
        first_miss: Some(first_miss),
    }
}

/// The first explanation line: how allocatable memory is computed for this backend.
fn allocatable_rule(reserves: Reserves, own_headroom: bool, backend: &str) -> String {
    if own_headroom {
        format!(
            "allocatable = total − max(used, allocated), less {} host RAM reserve; no device \
             reserve: {backend} keeps its own headroom inside the fraction of each device it takes",
            gib(reserves.ram)
        )
    } else {
        format!(
            "allocatable = total − max(used, allocated) − reserve ({} per device, {} host RAM)",
            gib(reserves.device),
            gib(reserves.ram)
        )
    }
}

/// A sum of byte counts that stops at `u64::MAX` (inventories are input: never overflow).
fn saturating_sum(bytes: impl Iterator<Item = u64>) -> u64 {
    bytes.fold(0, u64::saturating_add)
}

/// The rank of each view's worker name in name order.
fn name_ranks(views: &[WorkerView<'_>]) -> Vec<u32> {
    // The names sit beside their view numbers: a comparison reads the two names only, not
    // the views and workers that hold them (the largest single cost of planning a 100k-worker
    // fleet, by `perf`).
    // Names are unique (`check_inventory`), so an unstable sort gives the one order.
    let mut order: Vec<(&str, usize)> = views
        .iter()
        .enumerate()
        .map(|(v, view)| (view.worker.name.as_str(), v))
        .collect();
    order.sort_unstable();
    let mut ranks = vec![0; views.len()];
    for (rank, (_, v)) in order.into_iter().enumerate() {
        ranks[v] = u32::try_from(rank).unwrap_or(u32::MAX);
    }
    ranks
}

/// Worker names and device indices identify what a plan claims: duplicates would let two
/// claims land on one device unseen. A worker with more than [`MAX_DEVICES_PER_WORKER`] devices
/// is refused before any search.
fn check_inventory(cluster: &Cluster) -> Result<()> {
    // Membership only: a hash set reports the same first repeated name as an ordered one,
    // without a tree search per worker.
    let mut names = HashSet::with_capacity(cluster.workers.len());
    let mut indices: Vec<u32> = Vec::new();
    for worker in &cluster.workers {
        if worker.devices.len() > MAX_DEVICES_PER_WORKER {
            return Err(Error::invalid_parameter(
                "devices",
                format!(
                    "worker {} lists {} devices; at most {MAX_DEVICES_PER_WORKER} devices per \
                     worker are planned",
                    worker.name,
                    worker.devices.len()
                ),
            ));
        }
        if !names.insert(worker.name.as_str()) {
            return Err(Error::invalid_parameter(
                "workers",
                format!("two workers are named `{}`", worker.name),
            ));
        }
        // One list for all workers, refilled for each: no list allocated per worker, and a
        // sorted list of a worker's few indices finds a repeated one faster than hashing each.
        indices.clear();
        indices.extend(worker.devices.iter().map(|d| d.index));
        indices.sort_unstable();
        if let Some(pair) = indices.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::invalid_parameter(
                "devices",
                format!(
                    "worker {} has two devices with index {}",
                    worker.name, pair[0]
                ),
            ));
        }
    }
    Ok(())
}

/// An estimator error as a rejection reason, with its numbers.
fn reason(error: &Error) -> String {
    match error {
        Error::DoesNotFit {
            needed,
            available,
            reason,
        } => format!(
            "{reason}: needs {}, {} available",
            gib(*needed),
            gib(*available)
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::Layout;

    fn fits_below(limit: u32) -> impl FnMut(&u32) -> Result<ResourceEstimate> {
        move |&item| {
            if item < limit {
                Ok(ResourceEstimate {
                    layout: Layout::Single,
                    devices: vec![],
                    host: Default::default(),
                    host_error_band: None,
                    launch_parameters: vec![],
                    details: Default::default(),
                    notes: vec![format!("{item}")],
                })
            } else {
                Err(Error::unsupported(format!("{item}")))
            }
        }
    }

    #[test]
    fn prefix_finds_the_boundary_in_few_fits() {
        let items: Vec<u32> = (0..1000).collect();
        let mut calls = 0;
        let mut fit = fits_below(377);
        let prefix = fitting_prefix(&items, |i| {
            calls += 1;
            fit(i)
        });
        assert_eq!(prefix.count, 377);
        assert_eq!(prefix.last_fit.unwrap().notes, vec!["376"]);
        assert_eq!(prefix.first_miss, Some(Error::unsupported("377")));
        assert!(calls <= 12, "{calls} fits");
        assert_eq!(fitting_prefix(&items, fits_below(0)).count, 0);
        assert_eq!(fitting_prefix(&items, fits_below(5000)).count, 1000);
        assert_eq!(fitting_prefix(&[7u32], fits_below(8)).count, 1);
        let none = fitting_prefix(&[] as &[u32], fits_below(8));
        assert_eq!(
            (none.count, none.last_fit, none.first_miss),
            (0, None, None)
        );
    }
}
