//go:build with_slog

package main

// With the tag, the program also links and initialises log/slog (cold-start variants).
import (
	_ "log/slog"
)
