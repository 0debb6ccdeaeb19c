//! Which device holds which layer (`llama_model::load_tensors`): `n_gpu_layers` counts the
//! output layer first, offloaded layers go to devices in contiguous blocks by the cumulative
//! split, the input layer stays on the host.

use std::ops::Range;

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
}
