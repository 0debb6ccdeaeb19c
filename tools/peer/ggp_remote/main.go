// Command ggp_remote reads one GGUF model from a Hugging Face endpoint (HF_ENDPOINT) with
// gguf-parser-go, with the options its gguf-parser CLI uses (large metadata skipped, mmap,
// the on-disk cache under -cache), and prints the wall time of the read in milliseconds and
// the tensors it found. hub.py starts the loopback stand-in and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	ggp "github.com/gpustack/gguf-parser-go"
)

func main() {
	repo := flag.String("repo", "", "repository, org/name")
	file := flag.String("file", "", "file in the repository (the first shard of a split model)")
	cache := flag.String("cache", "", "gguf-parser-go's cache folder")
	full := flag.Bool("full", false, "read large metadata too (the library's default)")
	flag.Parse()
	opts := []ggp.GGUFReadOption{ggp.UseMMap(), ggp.UseCache(), ggp.UseCachePath(*cache)}
	if !*full {
		opts = append(opts, ggp.SkipLargeMetadata())
	}
	start := time.Now()
	gf, err := ggp.ParseGGUFFileFromHuggingFace(context.Background(), *repo, *file, opts...)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%.2f %d\n", float64(elapsed.Microseconds())/1000, len(gf.TensorInfos))
}
