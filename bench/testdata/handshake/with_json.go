//go:build with_json

package main

// With the tag, the program also links and initialises encoding/json (cold-start variants).
import (
	_ "encoding/json"
)
