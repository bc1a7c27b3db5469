//go:build with_fmt

package main

// With the tag, the program also links and initialises fmt (cold-start variants).
import (
	_ "fmt"
)
