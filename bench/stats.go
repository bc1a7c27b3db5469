package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// payload returns a JSON value of about size bytes shaped like application state: an
// object with an array of small records (strings, numbers, booleans, a nested array), so
// that whatever scans it pays what it would on real data, not on one long string.
func payload(size int) []byte {
	b := []byte(`{"schema":3,"items":[`)
	for i := 0; ; i++ {
		rec := fmt.Appendf(nil, `{"id":%d,"name":"item-%d","price":%d.%02d,"inStock":%t,"tags":["alpha","beta"]}`, i, i, 10+i%90, i%100, i%3 == 0)
		if len(b)+len(rec)+3 > size && i > 0 {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, rec...)
	}
	b = append(b, "]}"...)
	for len(b) < size { // pad inside the object to the exact size
		b = append(b[:len(b)-1], ` }`...)
	}
	if !json.Valid(b) {
		panic("bench payload is not valid JSON")
	}
	return b
}

// dist summarises samples.
type dist struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50Ms"`
	P99  float64 `json:"p99Ms"`
	Mean float64 `json:"meanMs"`
	Min  float64 `json:"minMs"`
	Max  float64 `json:"maxMs"`
}

func summarize(samples []time.Duration) dist {
	if len(samples) == 0 {
		return dist{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return dist{
		N: len(s), P50: ms(percentile(s, 0.50)), P99: ms(percentile(s, 0.99)),
		Mean: ms(sum / time.Duration(len(s))), Min: ms(s[0]), Max: ms(s[len(s)-1]),
	}
}

// percentile is nearest-rank on sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(p*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + " µs"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 0, 64) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " B"
	}
}

func fmtRate(perSec float64) string {
	switch {
	case perSec >= 1e6:
		return strconv.FormatFloat(perSec/1e6, 'f', 2, 64) + " M/s"
	case perSec >= 1e3:
		return strconv.FormatFloat(perSec/1e3, 'f', 0, 64) + " k/s"
	default:
		return strconv.FormatFloat(perSec, 'f', 0, 64) + " /s"
	}
}
