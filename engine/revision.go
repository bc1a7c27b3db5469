package engine

import (
	"fmt"
)

// Revision is a canonical decimal u64 string: "0", "1", "42", never "007", "-1" or
// "1e3", at most "18446744073709551615". Canonical strings order by (length,
// lexicographic), which is why no big-integer arithmetic is ever needed.
type Revision string

// ZeroRevision is the revision of a channel that has applied nothing yet.
const ZeroRevision Revision = "0"

// MaxRevision is the largest revision, the largest u64.
const MaxRevision Revision = "18446744073709551615"

// ParseRevision checks that s is a canonical revision. The error says what is wrong, so
// that a protocol error reported to the host tells it how to fix its revisions.
func ParseRevision(s string) (Revision, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("revision is empty: want a decimal u64 string such as \"42\"")
	case len(s) > len(MaxRevision):
		return "", fmt.Errorf("revision %s is longer than 20 digits: it does not fit in a u64", quotePrefix(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", fmt.Errorf("revision %s is not canonical: only the digits 0-9 are allowed", quotePrefix(s))
		}
	}
	if s[0] == '0' && len(s) > 1 {
		return "", fmt.Errorf("revision %s is not canonical: leading zeros", quotePrefix(s))
	}
	if len(s) == len(MaxRevision) && s > string(MaxRevision) {
		return "", fmt.Errorf("revision %s is larger than %s, the largest u64", quotePrefix(s), MaxRevision)
	}
	return Revision(s), nil
}

// Compare returns -1, 0 or 1 as r is older than, equal to or newer than other. Both must
// be canonical.
func (r Revision) Compare(other Revision) int {
	if len(r) != len(other) {
		if len(r) < len(other) {
			return -1
		}
		return 1
	}
	switch {
	case r == other:
		return 0
	case r < other:
		return -1
	default:
		return 1
	}
}

// Next returns r+1. It fails only at MaxRevision.
func (r Revision) Next() (Revision, error) {
	if r == MaxRevision {
		return "", fmt.Errorf("revision %s is the largest u64: it cannot be bumped", r)
	}
	if r == "" {
		return "1", nil
	}
	b := []byte(r)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return Revision(b), nil
		}
		b[i] = '0'
	}
	return Revision("1" + string(b)), nil
}

// quotePrefix quotes at most the first 64 bytes of s, so that an error message never
// echoes an attacker-sized input back.
func quotePrefix(s string) string {
	const limit = 64
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:limit], len(s))
}
