//! Which device holds which layer (`llama_model::load_tensors`): `n_gpu_layers` counts the
//! output layer first, offloaded layers go to devices in contiguous blocks by the cumulative
//! split, the input layer stays on the host.
//!
//! [`LayerMap::replay`] turns a map into the layout whose compute graph the allocator replays.

use std::collections::HashMap;
use std::ops::Range;

use super::graph::Placement;

/// Layer placement for one layout.
#[derive(Debug, Clone)]
pub(crate) struct LayerMap {
    /// Repeating layers per device, contiguous.
    ranges: Vec<Range<usize>>,
    /// Repeating layers on the host (`0..i_gpu_start`).
    host: Range<usize>,
    output: Option<usize>,
}

impl LayerMap {
    /// `n_gpu_layers = offload` over devices with shares `split`.
    pub fn new(n_layer: usize, offload: u32, split: &[f64]) -> LayerMap {
        let offload = offload as usize;
        // `i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)`: the output layer (index n_layer)
        // is the first one offloaded.
        let i_gpu_start = (n_layer + 1).saturating_sub(offload);
        let active = if split.is_empty() {
            0
        } else {
            offload.min(n_layer + 1)
        };
        // llama.cpp normalises the cumulative split in f32.
        let total: f32 = split.iter().map(|&s| s as f32).sum();
        let mut acc = 0.0f32;
        let cumulative: Vec<f32> = split
            .iter()
            .map(|&s| {
                acc += s as f32;
                acc / total
            })
            .collect();
        let device_of = |il: usize| -> Option<usize> {
            if il < i_gpu_start || il - i_gpu_start >= active {
                return None;
            }
            let x = (il - i_gpu_start) as f32 / active as f32;
            let index = cumulative.partition_point(|&c| c <= x);
            Some(index.min(split.len() - 1))
        };
        let mut ranges = vec![0..0; split.len()];
        for il in i_gpu_start.min(n_layer)..n_layer {
            if let Some(d) = device_of(il) {
                let r = &mut ranges[d];
                // Blocks are contiguous: the first layer seen starts the range.
                let start = if r.start == r.end { il } else { r.start };
                *r = start..il + 1;
            }
        }
        LayerMap {
            ranges,
            host: 0..i_gpu_start.min(n_layer),
            output: device_of(n_layer),
        }
    }

    /// Repeating layers on device `i`.
    pub fn range_on(&self, i: usize) -> Range<usize> {
        self.ranges.get(i).cloned().unwrap_or(0..0)
    }

    /// Repeating layers on the host.
    pub fn host_layers(&self) -> Range<usize> {
        self.host.clone()
    }

    /// The device of the output layer; `None` = host.
    pub fn output_device(&self) -> Option<usize> {
        self.output
    }

    /// Layers on device `i` for display, the output layer counted.
    pub fn layers_on(&self, i: usize) -> u32 {
        let repeating = self.range_on(i).len() as u32;
        repeating + u32::from(self.output == Some(i))
    }
}

/// The layout an allocator replay runs for one [`LayerMap`], and which replayed buffer
/// stands for each device.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    /// Buffer 0 is the host.
    pub placement: Placement,
    /// The replayed buffer whose peak device `i` takes; `None` for a device that runs
    /// nothing.
    pub device_buffers: Vec<Option<usize>>,
}

/// What a buffer's compute peak depends on: the classes of the layers it runs (in order,
/// reduced), whether they end with the model's last layer (which keeps only the output
/// rows), and whether it runs the output layer.
type RunKey = (Vec<usize>, bool, bool);

impl LayerMap {
    /// The layout to replay, kept small for long models and many devices: a buffer's peak is
    /// the largest working set of one layer plus the inputs its split copies in, so each run
    /// of layers keeps its first `max_run` layers (every repeating pattern, like Gemma-3's six,
    /// appears in them) and the model's last layer; a device whose reduced run matches an
    /// earlier device's takes that device's peak instead of a replay of its own.
    /// `classes[l]` is layer `l`'s [`super::shape::ModelShape::layer_classes`].
    pub fn replay(&self, classes: &[usize], max_run: usize) -> Replay {
        let n_layer = classes.len();
        let reduce = |run: Range<usize>| -> Vec<usize> {
            let mut kept: Vec<usize> = run.clone().take(max_run).collect();
            if run.contains(&n_layer.wrapping_sub(1)) && kept.last() != Some(&(n_layer - 1)) {
                kept.push(n_layer - 1);
            }
            kept
        };
        let mut layers: Vec<(usize, usize)> = reduce(self.host_layers())
            .into_iter()
            .map(|l| (l, 0))
            .collect();
        let mut buffers = 1;
        let mut seen: HashMap<RunKey, usize> = HashMap::new();
        let mut output = 0;
        let device_buffers = (0..self.ranges.len())
            .map(|i| {
                let kept = reduce(self.range_on(i));
                let holds_output = self.output == Some(i);
                if kept.is_empty() && !holds_output {
                    return None;
                }
                let ends_model = kept.last() == Some(&(n_layer - 1));
                let key = (
                    kept.iter().map(|&l| classes[l]).collect(),
                    ends_model,
                    holds_output,
                );
                let buffer = *seen.entry(key).or_insert_with(|| {
                    layers.extend(kept.iter().map(|&l| (l, buffers)));
                    buffers += 1;
                    buffers - 1
                });
                if holds_output {
                    output = buffer;
                }
                Some(buffer)
            })
            .collect();
        Replay {
            placement: Placement {
                layers,
                output,
                buffers,
            },
            device_buffers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_layers_count_the_output_layer_first() {
        // 16 layers, -ngl 1: only the output layer is offloaded.
        let map = LayerMap::new(16, 1, &[1.0]);
        assert_eq!(map.output_device(), Some(0));
        assert!(map.range_on(0).is_empty());
        // -ngl 5: output + the last 4 repeating layers.
        let map = LayerMap::new(16, 5, &[1.0]);
        assert_eq!(map.range_on(0), 12..16);
        assert_eq!(map.host_layers(), 0..12);
    }

    #[test]
    fn split_gives_contiguous_blocks_output_in_the_last() {
        // Full offload (17 of 16+1) over 3:1.
        let map = LayerMap::new(16, 17, &[3.0, 1.0]);
        assert_eq!(map.range_on(0), 0..13);
        assert_eq!(map.range_on(1), 13..16);
        assert_eq!(map.output_device(), Some(1));
    }

    #[test]
    fn replay_keeps_each_devices_run_and_who_holds_the_last_layer() {
        // -ngl 4 of 4+1 over 3:1: layer 0 on the host, 1-3 (the last) on the first device,
        // only the output layer on the second.
        let map = LayerMap::new(4, 4, &[3.0, 1.0]);
        let replay = map.replay(&[0; 4], 8);
        assert_eq!(
            replay.placement.layers,
            vec![(0, 0), (1, 1), (2, 1), (3, 1)]
        );
        assert_eq!(replay.placement.output, 2);
        assert_eq!(replay.placement.buffers, 3);
        assert_eq!(replay.device_buffers, vec![Some(1), Some(2)]);
    }

    #[test]
    fn replay_shares_the_buffer_of_devices_running_the_same_layers() {
        // 100 identical layers over four equal devices: the first three run 25 layers each
        // (replayed once, first 8), the last also the last layer and the output.
        let map = LayerMap::new(100, 101, &[1.0; 4]);
        let replay = map.replay(&[0; 100], 8);
        assert_eq!(
            replay.device_buffers,
            vec![Some(1), Some(1), Some(1), Some(2)]
        );
        let last_run: Vec<usize> = replay
            .placement
            .layers
            .iter()
            .filter(|&&(_, b)| b == 2)
            .map(|&(l, _)| l)
            .collect();
        let start = map.range_on(3).start;
        let mut expected: Vec<usize> = (start..start + 8).collect();
        expected.push(99);
        assert_eq!(last_run, expected);
        assert_eq!(replay.placement.layers.len(), 17);
        // A device whose layers differ (a dense prefix) gets a replay of its own.
        let mut classes = vec![0; 100];
        classes[map.range_on(1).start] = 1;
        let replay = map.replay(&classes, 8);
        assert_eq!(
            replay.device_buffers,
            vec![Some(1), Some(2), Some(1), Some(3)]
        );
    }
}
