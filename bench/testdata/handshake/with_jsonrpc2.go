//go:build with_jsonrpc2

package main

// With the tag, the program also links and initialises sourcegraph/jsonrpc2 (cold-start variants).
import (
	_ "github.com/sourcegraph/jsonrpc2"
)
