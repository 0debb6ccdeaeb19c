// Command ggp_accuracy replays the llama.cpp measurements inferkit's accuracy test replays
// (tests/fixtures/llamacpp-memory/measurements*.jsonl) through gguf-parser-go's estimator and
// writes, per measured device, its figures beside the measured buffers, then prints the error
// table per architecture with the definitions of inferkit's table (max relative error).
//
// Usage (GOPATH set up as in ../README.md):
//
//	go run . -fixtures ../../../tests/fixtures/llamacpp-memory -out ggp-estimates.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	ggp "github.com/gpustack/gguf-parser-go"
)

// row is one measured llama.cpp context.
type row struct {
	Model       string            `json:"model"`
	FileType    string            `json:"file_type"`
	Header      string            `json:"header"`
	UseMmap     bool              `json:"use_mmap"`
	RPCServers  int               `json:"rpc_servers"`
	NGpuLayers  int64             `json:"n_gpu_layers"`
	TensorSplit []float64         `json:"tensor_split"`
	OK          bool              `json:"ok"`
	Buffers     map[string]uint64 `json:"buffers"`
	// The recurrent state, logged only as printed MiB (two decimals): one figure on CPU rows,
	// one per device on RPC rows.
	StateMiB json.RawMessage `json:"rs_mib_printed"`
	Settings struct {
		NCtx       int32  `json:"n_ctx"`
		NSeqMax    int32  `json:"n_seq_max"`
		TypeK      string `json:"type_k"`
		TypeV      string `json:"type_v"`
		FlashAttn  string `json:"flash_attn"`
		NBatch     int32  `json:"n_batch"`
		NUbatch    int32  `json:"n_ubatch"`
		SwaFull    bool   `json:"swa_full"`
		OffloadKQV *bool  `json:"offload_kqv"`
	} `json:"settings"`
}

// device is gguf-parser-go's figure for one measured device beside the measurement.
type device struct {
	Name string `json:"name"`
	// gguf-parser-go: weights, KV cache, compute (its computation usage without the RAM-only
	// graph-metadata footprint) and device total (footprint + weights + KV + computation,
	// weights counted as loaded: no mmap, no platform footprint).
	Weights uint64 `json:"weights"`
	KV      uint64 `json:"kv"`
	Compute uint64 `json:"compute"`
	Total   uint64 `json:"total"`
	// Measured buffers: compute, and weights + KV (with the recurrent state) + output + compute.
	MeasuredCompute uint64 `json:"measured_compute"`
	MeasuredTotal   uint64 `json:"measured_total"`
}

// result is one measured row (its file and 1-based line) with gguf-parser-go's figures.
type result struct {
	File         string   `json:"file"`
	Line         int      `json:"line"`
	Model        string   `json:"model"`
	Architecture string   `json:"architecture"`
	Devices      []device `json:"devices"`
}

func cacheType(name string) ggp.GGMLType {
	switch strings.ToLower(name) {
	case "f32":
		return ggp.GGMLTypeF32
	case "bf16":
		return ggp.GGMLTypeBF16
	case "q8_0":
		return ggp.GGMLTypeQ8_0
	case "q4_0":
		return ggp.GGMLTypeQ4_0
	case "q4_1":
		return ggp.GGMLTypeQ4_1
	case "q5_0":
		return ggp.GGMLTypeQ5_0
	case "q5_1":
		return ggp.GGMLTypeQ5_1
	case "iq4_nl":
		return ggp.GGMLTypeIQ4_NL
	default:
		return ggp.GGMLTypeF16
	}
}

// options mirrors one measured row with gguf-parser-go's estimate options.
func options(r *row) []ggp.GGUFRunEstimateOption {
	s := r.Settings
	opts := []ggp.GGUFRunEstimateOption{
		ggp.WithLLaMACppContextSize(s.NCtx),
		ggp.WithParallelSize(s.NSeqMax),
		ggp.WithLLaMACppLogicalBatchSize(s.NBatch),
		ggp.WithLLaMACppPhysicalBatchSize(s.NUbatch),
		ggp.WithLLaMACppCacheKeyType(cacheType(s.TypeK)),
		ggp.WithLLaMACppCacheValueType(cacheType(s.TypeV)),
	}
	// llama.cpp resolves "auto" to on for the CPU and RPC backends at 0c1e57098.
	if s.FlashAttn != "off" {
		opts = append(opts, ggp.WithFlashAttention())
	}
	if s.SwaFull {
		opts = append(opts, ggp.WithLLaMACppFullSizeSWACache())
	}
	if s.OffloadKQV != nil && !*s.OffloadKQV {
		opts = append(opts, ggp.WithoutLLaMACppOffloadKVCache())
	}
	if r.RPCServers == 0 {
		return append(opts, ggp.WithLLaMACppOffloadLayers(0))
	}
	servers := make([]string, r.RPCServers)
	for i := range servers {
		servers[i] = fmt.Sprintf("127.0.0.1:%d", 50052+i)
	}
	// No split: the RPC servers report equal memory, so llama.cpp splits evenly.
	shares := r.TensorSplit
	if len(shares) == 0 {
		shares = make([]float64, r.RPCServers)
		for i := range shares {
			shares[i] = 1
		}
	}
	var sum, cum float64
	for _, v := range shares {
		sum += v
	}
	fractions := make([]float64, len(shares))
	for i, v := range shares {
		cum += v
		fractions[i] = cum / sum
	}
	fractions[len(fractions)-1] = 1
	ngl := uint64(math.MaxInt32)
	if r.NGpuLayers >= 0 {
		ngl = uint64(r.NGpuLayers)
	}
	return append(opts,
		ggp.WithRPCServers(servers),
		ggp.WithTensorSplitFraction(fractions),
		ggp.WithLLaMACppOffloadLayers(ngl))
}

func sumPrefix(buffers map[string]uint64, kind, device string) uint64 {
	var total uint64
	for k, v := range buffers {
		parts := strings.SplitN(k, ":", 2)
		if len(parts) != 2 || parts[0] != kind {
			continue
		}
		name := strings.ToLower(parts[1])
		// The host's weights: CPU, CPU_REPACK and CPU_Mapped buffers, and the AMX buffer a
		// CPU with AMX tiles adds (RPC rows: the host's F16 matmul weights).
		host := strings.HasPrefix(name, "cpu") || name == "amx"
		if name == device || (device == "cpu" && host) {
			total += v
		}
	}
	return total
}

// stateBytes is the recurrent state measured on a device (0 without one), from the MiB
// llama.cpp prints: within 0.005 MiB of the buffer.
func stateBytes(r *row, device string) uint64 {
	if len(r.StateMiB) == 0 {
		return 0
	}
	var mib float64
	if err := json.Unmarshal(r.StateMiB, &mib); err == nil {
		if device != "cpu" {
			return 0
		}
	} else {
		var perDevice map[string]float64
		if err := json.Unmarshal(r.StateMiB, &perDevice); err != nil {
			panic(fmt.Sprintf("rs_mib_printed: %v", err))
		}
		mib = perDevice[device]
	}
	return uint64(math.Round(mib * (1 << 20)))
}

func estimate(r *row, gf *ggp.GGUFFile) []device {
	e := gf.EstimateLLaMACppRun(options(r)...)
	var out []device
	for i, d := range e.Devices {
		// A CPU-only row has no device: gguf-parser-go always models one GPU beside the host
		// (at zero offload it still gives it a compute buffer), which is left out here.
		if i > r.RPCServers {
			break
		}
		name := "cpu"
		if i > 0 {
			name = fmt.Sprintf("rpc%d", i-1)
		}
		c := d.Computation
		compute := uint64(c.Input) + max(uint64(c.Compute), uint64(c.Output))
		weights := uint64(d.Weight.Sum())
		kv := uint64(d.KVCache.Sum())
		measuredCompute := sumPrefix(r.Buffers, "compute", name)
		measured := sumPrefix(r.Buffers, "model", name) + sumPrefix(r.Buffers, "kv", name) +
			stateBytes(r, name) + sumPrefix(r.Buffers, "output", name) + measuredCompute
		out = append(out, device{
			Name:            name,
			Weights:         weights,
			KV:              kv,
			Compute:         compute,
			Total:           uint64(d.Footprint) + weights + kv + uint64(c.Sum()),
			MeasuredCompute: measuredCompute,
			MeasuredTotal:   measured,
		})
	}
	return out
}

func relative(got, want uint64) float64 {
	if want == 0 {
		if got == 0 {
			return 0
		}
		return 1
	}
	return math.Abs(float64(got)-float64(want)) / float64(want)
}

// summary is the largest relative error over one architecture's device rows; under is the
// largest shortfall of the device total (the estimate below the measurement: an OOM).
type summary struct {
	rows                  int
	compute, total, under float64
}

func (s *summary) add(d device) {
	s.rows++
	s.compute = max(s.compute, relative(d.Compute, d.MeasuredCompute))
	s.total = max(s.total, relative(d.Total, d.MeasuredTotal))
	if d.Total < d.MeasuredTotal {
		s.under = max(s.under, relative(d.Total, d.MeasuredTotal))
	}
}

func (s *summary) print(name string) {
	fmt.Printf("| %s | %d | %.1f%% | %.1f%% |\n", name, s.rows, s.compute*100, s.total*100)
}

func main() {
	fixtures := flag.String("fixtures", "tests/fixtures/llamacpp-memory", "measurements folder")
	outPath := flag.String("out", "ggp-estimates.jsonl", "where the per-row figures go")
	flag.Parse()
	out, err := os.Create(*outPath)
	if err != nil {
		panic(err)
	}
	defer out.Close()
	enc := json.NewEncoder(out)
	files := []string{"measurements.jsonl", "measurements-archs.jsonl",
		"measurements-offload.jsonl", "measurements-archs-offload.jsonl"}
	for _, file := range files {
		models := map[string]*ggp.GGUFFile{}
		byArch := map[string]*summary{}
		all := &summary{}
		f, err := os.Open(filepath.Join(*fixtures, file))
		if err != nil {
			panic(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		line := 0
		for sc.Scan() {
			line++
			var r row
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				panic(err)
			}
			if !r.OK {
				continue
			}
			gf, ok := models[r.Header]
			if !ok {
				gf, err = ggp.ParseGGUFFile(filepath.Join(*fixtures, "..", "gguf", r.Header))
				if err != nil {
					panic(fmt.Sprintf("%s: %v", r.Header, err))
				}
				models[r.Header] = gf
			}
			arch := gf.Architecture().Architecture
			devices := estimate(&r, gf)
			if err := enc.Encode(result{file, line, r.Model, arch, devices}); err != nil {
				panic(err)
			}
			s := byArch[arch]
			if s == nil {
				s = &summary{}
				byArch[arch] = s
			}
			for _, d := range devices {
				s.add(d)
				all.add(d)
			}
		}
		f.Close()
		// Titles and columns as inferkit's accuracy test prints them, so that
		// tools/measure/llamacpp/readme_tables.py groups these rows the same way.
		title := "CPU backend"
		if strings.Contains(file, "offload") {
			title = "Offloaded over RPC devices"
		}
		fmt.Printf("\n%s (%s)\n| architecture | rows | max compute error | max total error |\n|---|---|---|---|\n", title, file)
		archs := make([]string, 0, len(byArch))
		for a := range byArch {
			archs = append(archs, a)
		}
		sort.Strings(archs)
		for _, a := range archs {
			byArch[a].print(a)
		}
		fmt.Printf("all rows: %d, max compute error %.1f%%, max total error %.1f%%, largest total under-estimate %.1f%%\n",
			all.rows, all.compute*100, all.total*100, all.under*100)
	}
	projectors(*fixtures, enc)
	diffusion(*fixtures, enc)
}

// projectorRow is one measured clip.cpp projector (measurements-mmproj.jsonl).
type projectorRow struct {
	Projector string            `json:"projector"`
	Header    string            `json:"mmproj_header"`
	Buffers   map[string]uint64 `json:"buffers"`
	Warmup    []uint32          `json:"warmup_image_size"`
	Hparams   struct {
		Type string `json:"projector"`
	} `json:"hparams"`
	Settings struct {
		FlashAttn string `json:"flash_attn"`
		Warmup    bool   `json:"warmup"`
	} `json:"settings"`
}

// projectors compares gguf-parser-go's projector estimate on the CPU (-ngl 0), told the
// warm-up image llama.cpp used, with the buffer clip.cpp reserves for that image (the need a
// launch plans for, also with --no-warmup), as inferkit's projector test does.
func projectors(fixtures string, enc *json.Encoder) {
	const file = "measurements-mmproj.jsonl"
	data, err := os.ReadFile(filepath.Join(fixtures, file))
	if err != nil {
		panic(err)
	}
	var rows []projectorRow
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r projectorRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			panic(err)
		}
		rows = append(rows, r)
	}
	need := func(projector, flash string) uint64 {
		for _, r := range rows {
			if r.Projector == projector && r.Settings.FlashAttn == flash && r.Settings.Warmup {
				return r.Buffers["clip_compute_reserve:cpu"]
			}
		}
		panic("no warm-up row for " + projector)
	}
	type worst struct {
		rows             int
		weights, compute float64
	}
	byType := map[string]*worst{}
	for i, r := range rows {
		path := filepath.Join(fixtures, "..", "gguf", "vlm", r.Projector, r.Header)
		gf, err := ggp.ParseGGUFFile(path)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", path, err))
		}
		opts := []ggp.GGUFRunEstimateOption{ggp.WithLLaMACppOffloadLayers(0)}
		// Audio encoders have no warm-up image.
		if len(r.Warmup) > 0 {
			opts = append(opts, ggp.WithLLaMACppVisualMaxImageSize(r.Warmup[0]))
		}
		if r.Settings.FlashAttn != "off" {
			opts = append(opts, ggp.WithFlashAttention())
		}
		d := gf.EstimateLLaMACppRun(opts...).Devices[0]
		c := d.Computation
		got := device{
			Name:            "cpu",
			Weights:         uint64(d.Weight.Sum()),
			Compute:         uint64(c.Input) + max(uint64(c.Compute), uint64(c.Output)),
			MeasuredCompute: need(r.Projector, r.Settings.FlashAttn),
		}
		got.Total = uint64(d.Footprint) + got.Weights + uint64(c.Sum())
		got.MeasuredTotal = r.Buffers["clip_weights:cpu"] + got.MeasuredCompute
		if err := enc.Encode(result{file, i + 1, r.Projector, r.Hparams.Type, []device{got}}); err != nil {
			panic(err)
		}
		w := byType[r.Hparams.Type]
		if w == nil {
			w = &worst{}
			byType[r.Hparams.Type] = w
		}
		w.rows++
		w.weights = max(w.weights, relative(got.Weights, r.Buffers["clip_weights:cpu"]))
		w.compute = max(w.compute, relative(got.Compute, got.MeasuredCompute))
	}
	fmt.Printf("\nProjectors (%s)\n| projector type | rows | max weights error | max compute error |\n|---|---|---|---|\n", file)
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		w := byType[t]
		fmt.Printf("| %s | %d | %.1f%% | %.1f%% |\n", t, w.rows, w.weights*100, w.compute*100)
	}
}

// diffusionRow is one measured stable-diffusion.cpp run (sdcpp/measurements.jsonl).
type diffusionRow struct {
	Args      string            `json:"sdcpp_args"`
	Version   string            `json:"sd_version_detected"`
	Width     uint32            `json:"width"`
	Height    uint32            `json:"height"`
	VaeTiling bool              `json:"vae_tiling"`
	FlashAttn bool              `json:"diffusion_fa"`
	Headers   map[string]string `json:"headers"`
	Params    []struct {
		Desc  string `json:"desc"`
		Bytes uint64 `json:"bytes"`
	} `json:"params_buffers"`
	ComputeMax map[string]uint64 `json:"compute_buffer_max_by_component"`
}

// diffusion compares gguf-parser-go's stable-diffusion.cpp estimate (one file holding every
// stage, on the CPU) with each stage's measured weights and largest compute buffer, on the
// rows inferkit's diffusion test reads from a single file (FLUX, whose encoders and VAE are
// separate files, cannot be given to it).
func diffusion(fixtures string, enc *json.Encoder) {
	const file = "sdcpp/measurements.jsonl"
	data, err := os.ReadFile(filepath.Join(fixtures, file))
	if err != nil {
		panic(err)
	}
	stages := map[string][]string{
		"diffusion":     {"unet", "flux", "mmdit"},
		"vae":           {"vae"},
		"text_encoders": {"clip", "t5"},
	}
	type worst struct {
		rows             int
		weights, compute map[string]float64
	}
	byFamily := map[string]*worst{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r diffusionRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			panic(err)
		}
		header := r.Headers["model"]
		if len(r.Headers) > 1 {
			continue
		}
		if header == "" {
			for _, f := range []string{"sd15.f16", "sd15.q8_0", "sd15.q4_0"} {
				if strings.Contains(r.Args, f+".gguf") {
					header = f + ".gguf.header"
				}
			}
		}
		if header == "" {
			continue
		}
		gf, err := ggp.ParseGGUFFile(filepath.Join(fixtures, "sdcpp", header))
		if err != nil {
			panic(fmt.Sprintf("%s: %v", header, err))
		}
		opts := []ggp.GGUFRunEstimateOption{ggp.WithStableDiffusionCppOffloadLayers(0),
			ggp.WithStableDiffusionCppWidth(r.Width), ggp.WithStableDiffusionCppHeight(r.Height),
			ggp.WithStableDiffusionCppBatchCount(1)}
		if r.FlashAttn {
			opts = append(opts, ggp.WithFlashAttention())
		}
		if r.VaeTiling {
			opts = append(opts, ggp.WithStableDiffusionCppAutoencoderTiling())
		}
		e, failure := estimateDiffusion(gf, opts)
		if failure != "" {
			fmt.Printf("%s line %d (%s): gguf-parser-go panicked: %s\n", file, i+1, header, failure)
			continue
		}
		got := map[string][2]uint64{
			"diffusion": {uint64(e.Devices[0].Weight), uint64(e.Devices[0].Computation)},
		}
		if e.Autoencoder != nil {
			d := e.Autoencoder.Devices[0]
			got["vae"] = [2]uint64{uint64(d.Weight), uint64(d.Computation)}
		}
		var cw, cc uint64
		for _, c := range e.Conditioners {
			cw += uint64(c.Devices[0].Weight)
			cc = max(cc, uint64(c.Devices[0].Computation))
		}
		got["text_encoders"] = [2]uint64{cw, cc}
		w := byFamily[r.Version]
		if w == nil {
			w = &worst{weights: map[string]float64{}, compute: map[string]float64{}}
			byFamily[r.Version] = w
		}
		w.rows++
		var devices []device
		for _, stage := range []string{"diffusion", "vae", "text_encoders"} {
			var weights, compute uint64
			for _, p := range r.Params {
				if slices.Contains(stages[stage], p.Desc) {
					weights += p.Bytes
				}
			}
			for _, desc := range stages[stage] {
				compute = max(compute, r.ComputeMax[desc])
			}
			w.weights[stage] = max(w.weights[stage], relative(got[stage][0], weights))
			w.compute[stage] = max(w.compute[stage], relative(got[stage][1], compute))
			devices = append(devices, device{Name: stage, Weights: got[stage][0],
				Compute: got[stage][1], Total: got[stage][0] + got[stage][1],
				MeasuredCompute: compute, MeasuredTotal: weights + compute})
		}
		if err := enc.Encode(result{file, i + 1, header, r.Version, devices}); err != nil {
			panic(err)
		}
	}
	fmt.Printf("\nstable-diffusion.cpp (%s)\n| family | rows | max weights error | max diffusion compute error | max VAE compute error | max text-encoder compute error |\n|---|---|---|---|---|---|\n", file)
	families := make([]string, 0, len(byFamily))
	for f := range byFamily {
		families = append(families, f)
	}
	sort.Strings(families)
	for _, f := range families {
		w := byFamily[f]
		fmt.Printf("| %s | %d | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", f, w.rows,
			max(w.weights["diffusion"], w.weights["vae"], w.weights["text_encoders"])*100,
			w.compute["diffusion"]*100, w.compute["vae"]*100, w.compute["text_encoders"]*100)
	}
}

// estimateDiffusion runs gguf-parser-go's estimate, which panics on some headers (its
// conditioner list and the file's conditioner tensors disagree): the panic is reported.
func estimateDiffusion(gf *ggp.GGUFFile, opts []ggp.GGUFRunEstimateOption) (e ggp.StableDiffusionCppRunEstimate, failure string) {
	defer func() {
		if p := recover(); p != nil {
			failure = fmt.Sprint(p)
		}
	}()
	return gf.EstimateStableDiffusionCppRun(opts...), ""
}
