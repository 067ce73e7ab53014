//go:build linux

package pager_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem"
)

// Environment of the application child.
const (
	envSocket   = "FARMEM_PAGER_TEST_SOCKET"
	envPages    = "FARMEM_PAGER_TEST_PAGES"
	envDuration = "FARMEM_PAGER_TEST_DURATION"
	envSeed     = "FARMEM_PAGER_TEST_SEED"
	envWorkers  = "FARMEM_PAGER_TEST_WORKERS"
	envMode     = "FARMEM_PAGER_TEST_MODE"
)

// word returns the 8 bytes at word index j of page pg at version v: the
// content model of the application child. Version 0 is a page never
// written: zeros.
func word(pg, v uint64, j int) uint64 {
	if v == 0 {
		return 0
	}
	x := pg*0x9E3779B97F4A7C15 ^ v*0xBF58476D1CE4E5B9 ^ uint64(j)*0x94D049BB133111EB
	x ^= x >> 31
	return x | 1 // never zero, so a lost page never passes
}

// childApp maps a region through farmem.Map and runs workers on it until
// the duration ends, each owning the pages p with p % workers == its index
// and keeping their versions on the heap. An operation picks one of its
// pages and, at random: writes a new version with plain 8-byte stores,
// writes one with copy() from a heap buffer, writes one word of it (a
// partial write), or checks it with plain loads or with copy(). Mode
// "mixed" adds a goroutine that allocates heavily (and the parent sets
// GOGC=10); mode "writes" only writes, to race eviction. Every 200 ms it
// prints "progress N" (N ops); at the end it checks every byte of the
// region and prints "ok ...".
func childApp() error {
	pages, _ := strconv.Atoi(os.Getenv(envPages))
	dur, err := time.ParseDuration(os.Getenv(envDuration))
	if err != nil {
		return err
	}
	seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	workers, _ := strconv.Atoi(os.Getenv(envWorkers))
	mode := os.Getenv(envMode)
	ps := os.Getpagesize()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	m, err := farmem.Map(ctx, os.Getenv(envSocket), pages*ps)
	cancel()
	if err != nil {
		return err
	}
	mem := m.Bytes()
	versions := make([]uint64, pages)
	partial := make([]int32, pages) // word index of the last partial write, -1 none
	for i := range partial {
		partial[i] = -1
	}
	var ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)

	var progressWG sync.WaitGroup
	progressWG.Add(1)
	progressStop := make(chan struct{})
	go func() {
		defer progressWG.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Printf("progress %d\n", ops.Load())
			case <-progressStop:
				return
			}
		}
	}()

	var allocated atomic.Int64
	if mode == "mixed" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 99))
			live := make([][]byte, 512)
			maps := make([]map[int]string, 16)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := make([]byte, 64+rng.IntN(32<<10))
				b[0] = byte(i)
				live[rng.IntN(len(live))] = b
				if i%64 == 0 {
					mp := make(map[int]string, 64)
					for k := range 64 {
						mp[k] = strconv.Itoa(k * i)
					}
					maps[rng.IntN(len(maps))] = mp
				}
				if i%4096 == 0 {
					runtime.GC()
				}
				allocated.Add(int64(len(b)))
			}
		}()
	}

	words := ps / 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			buf := make([]byte, ps)
			tmp := make([]byte, ps)
			mine := (pages - w + workers - 1) / workers
			for {
				select {
				case <-stop:
					return
				default:
				}
				pg := w + workers*rng.IntN(mine)
				page := mem[pg*ps : (pg+1)*ps]
				op := rng.IntN(5)
				if mode == "writes" {
					op = rng.IntN(3)
				}
				switch op {
				case 0: // a new version with plain stores
					versions[pg]++
					partial[pg] = -1
					for j := range words {
						binary.LittleEndian.PutUint64(page[j*8:], word(uint64(pg), versions[pg], j))
					}
				case 1: // a new version with copy()
					versions[pg]++
					partial[pg] = -1
					for j := range words {
						binary.LittleEndian.PutUint64(buf[j*8:], word(uint64(pg), versions[pg], j))
					}
					copy(page, buf)
				case 2: // one word: a partial write racing eviction
					j := rng.IntN(words)
					if versions[pg] == 0 || partial[pg] >= 0 {
						// keep the model simple: one partial write per version
						versions[pg]++
						copyVersion(buf, uint64(pg), versions[pg])
						copy(page, buf)
						partial[pg] = -1
					}
					partial[pg] = int32(j)
					binary.LittleEndian.PutUint64(page[j*8:], ^word(uint64(pg), versions[pg], j))
				case 3: // check with plain loads
					if err := checkLoads(page, uint64(pg), versions[pg], partial[pg]); err != nil {
						errs <- err
						return
					}
				case 4: // check with copy()
					copy(tmp, page)
					if err := checkLoads(tmp, uint64(pg), versions[pg], partial[pg]); err != nil {
						errs <- fmt.Errorf("copy(): %w", err)
						return
					}
				}
				ops.Add(1)
			}
		}()
	}
	select {
	case <-time.After(dur):
	case err := <-errs:
		close(stop)
		wg.Wait()
		return err
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	// Every byte of the region, half with plain loads, half with copy().
	tmp := make([]byte, ps)
	for pg := range pages {
		page := mem[pg*ps : (pg+1)*ps]
		if pg%2 == 1 {
			copy(tmp, page)
			page = tmp
		}
		if err := checkLoads(page, uint64(pg), versions[pg], partial[pg]); err != nil {
			return fmt.Errorf("final sweep: %w", err)
		}
		ops.Add(1)
	}
	close(progressStop)
	progressWG.Wait()
	var written uint64
	for _, v := range versions {
		written += v
	}
	if err := m.Close(); err != nil {
		return err
	}
	fmt.Printf("ok ops=%d versions=%d allocated=%d numgc=%d\n", ops.Load(), written, allocated.Load(), numGC())
	return nil
}

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

func copyVersion(buf []byte, pg, v uint64) {
	for j := range len(buf) / 8 {
		binary.LittleEndian.PutUint64(buf[j*8:], word(pg, v, j))
	}
}

// checkLoads compares a page with the model using plain 8-byte loads.
func checkLoads(page []byte, pg, v uint64, partial int32) error {
	for j := range len(page) / 8 {
		want := word(pg, v, j)
		if int32(j) == partial {
			want = ^want
		}
		if got := binary.LittleEndian.Uint64(page[j*8:]); got != want {
			return fmt.Errorf("page %d version %d word %d: got %#x, want %#x", pg, v, j, got, want)
		}
	}
	return nil
}
