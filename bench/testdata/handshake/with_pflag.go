//go:build with_pflag

package main

// With the tag, the program also links and initialises spf13/pflag (cold-start variants).
import (
	_ "github.com/spf13/pflag"
)
