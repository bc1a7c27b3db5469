package jsonpatch

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The case a user meets: a 1 MiB topic, one leaf changed. Floors in the same run:
// copying the document, and encoding/json checking it (json.Valid).

func benchDocs(b *testing.B) (from, to []byte, patch Patch) {
	from, to = largeDoc(1<<20, 5000, "old"), largeDoc(1<<20, 5000, "new")
	raw, err := Diff(from, to)
	if err != nil {
		b.Fatal(err)
	}
	if patch, err = DecodePatch(raw); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(from)))
	b.ReportAllocs()
	return from, to, patch
}

func BenchmarkDiff1MiBOneLeaf(b *testing.B) {
	from, to, _ := benchDocs(b)
	for b.Loop() {
		if _, err := Diff(from, to); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply1MiBOneLeaf(b *testing.B) {
	from, _, patch := benchDocs(b)
	for b.Loop() {
		if _, err := Apply(from, patch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorCopy1MiB(b *testing.B) {
	from, _, _ := benchDocs(b)
	for b.Loop() {
		_ = bytes.Clone(from)
	}
}

func BenchmarkFloorJSONValid1MiB(b *testing.B) {
	from, _, _ := benchDocs(b)
	for b.Loop() {
		if !json.Valid(from) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkApplyValid1MiBOneLeaf(b *testing.B) {
	from, _, patch := benchDocs(b)
	for b.Loop() {
		if _, err := ApplyValid(from, patch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyValidUniqueNames1MiBOneLeaf is what state.patch pays on a state whose
// names the sidecar knows unique: the scan stops at the leaf.
func BenchmarkApplyValidUniqueNames1MiBOneLeaf(b *testing.B) {
	from, _, patch := benchDocs(b)
	for b.Loop() {
		if _, err := ApplyValidUniqueNames(from, patch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRepeatedNames1MiB is the check the sidecar runs on each document it diffs.
func BenchmarkRepeatedNames1MiB(b *testing.B) {
	from, _, _ := benchDocs(b)
	b.SetBytes(int64(len(from)))
	for b.Loop() {
		if RepeatedNames(from) {
			b.Fatal("the bench document has no repeated name")
		}
	}
}
