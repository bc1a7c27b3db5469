//go:build with_cryptorand

package main

// With the tag, the program also links and initialises crypto/rand, which store uses for epochs (cold-start variants).
import (
	_ "crypto/rand"
)
