//go:build unix

package main

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkFirstTouchOfAPage is what one page fault costs on this machine: the first write
// to each page of fresh anonymous memory. A cold start is dominated by them (the sidecar
// takes ~130 more than the handshake program; see docs/performance.md), and on a VM they
// can cost tens of times what they do on bare metal.
func BenchmarkFirstTouchOfAPage(b *testing.B) {
	page := os.Getpagesize()
	const pages = 1024
	for b.Loop() {
		b.StopTimer()
		mem, err := syscall.Mmap(-1, 0, pages*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < pages; i++ {
			mem[i*page] = 1
		}
		b.StopTimer()
		if err := syscall.Munmap(mem); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pages), "ns/page")
}
