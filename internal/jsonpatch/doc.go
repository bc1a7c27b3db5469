// Package jsonpatch applies and computes RFC 6902 JSON Patches, parses RFC 6901 JSON
// Pointers, and projects a document on selected paths: the delta machinery of issue 15
// (the wire contract is in the deltas note; the sidecar's use is in docs/protocol.md).
//
// Documents are handled as bytes, decoded only where a patch or a difference walks:
// Apply and Diff on a 1 MiB document with one changed leaf scan a few members and copy
// the rest. Outputs are compact JSON; values keep the bytes they were written with (a
// number is never rounded through float64); inputs are never written to.
//
// A document with a member name given twice (valid JSON, which JSON.parse and
// encoding/json read as the last one) is read the same way here: an operation on the
// name acts on the last member and drops the earlier ones, and Diff and Project see
// the last one.
package jsonpatch
