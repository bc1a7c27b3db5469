package main

import "github.com/state-sync/state-sync/store"

// openStore opens the embedded store: a file when path is set, memory otherwise.
func openStore(path string, maxBytes int) (*store.Store, error) {
	if path == "" {
		return store.NewMemory(maxBytes), nil
	}
	return store.OpenFile(path, maxBytes)
}
