//go:build !unix

package main

import "time"

// processCPU is not measured here: the deltas section's in-process CPU figures read 0.
func processCPU() time.Duration { return 0 }
