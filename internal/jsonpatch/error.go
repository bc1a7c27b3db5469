package jsonpatch

import "fmt"

// Kind says why a patch or a document was refused; the sidecar maps it to a JSON-RPC
// code (Malformed and NotApplicable: -32602 invalid params; TestFailed: the revision
// conflict, with Path).
type Kind int

const (
	// Malformed: the patch is not an RFC 6902 patch (not an array, an unknown op, a
	// missing or null member, a bad JSON Pointer, a value that is not JSON), or a
	// document is not JSON.
	Malformed Kind = iota + 1
	// TestFailed: a "test" operation found a different value (or none) at its path.
	TestFailed
	// NotApplicable: a well-formed operation that this document cannot take: its path
	// or from does not exist, an array index out of range, a move into its own child.
	NotApplicable
)

func (k Kind) String() string {
	switch k {
	case Malformed:
		return "malformed"
	case TestFailed:
		return "test failed"
	case NotApplicable:
		return "not applicable"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a refused patch or document. Its text names the operation and the fix, ready
// for a JSON-RPC error message.
type Error struct {
	Kind Kind
	// Index is the operation's index in the patch, -1 when the error is not about one
	// operation (the patch is not an array, a document is not JSON).
	Index int
	// Path is the operation's "path" as sent (for TestFailed: the path whose value
	// differed), "" when Index is -1.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return "json patch: " + e.Msg
	}
	return fmt.Sprintf("json patch operation %d (path %q): %s", e.Index, e.Path, e.Msg)
}

func opError(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Index: -1, Msg: fmt.Sprintf(format, args...)}
}
