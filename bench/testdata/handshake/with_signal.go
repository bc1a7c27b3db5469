//go:build with_signal

package main

// With the tag, the program also links and initialises os/signal (cold-start variants).
import (
	_ "os/signal"
)
