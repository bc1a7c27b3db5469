package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Kind says what rule a message broke. The rpc layer maps kinds to JSON-RPC codes
// (-32600 in the envelope, -32602 in params); the store calls every kind corruption.
type Kind int

const (
	// Syntax: the text is not JSON at all. Err is encoding/json's *json.SyntaxError.
	Syntax Kind = iota + 1
	// InvalidUTF8: bytes that are not UTF-8 (RFC 8259 §8.1: JSON text is UTF-8).
	InvalidUTF8
	// LoneSurrogate: a \uD800–\uDFFF escape that is not half of a pair. It names no
	// character; encoding/json would read it as U+FFFD, so two different names, "c\ud800"
	// and "c\udbff", would become the same one.
	LoneSurrogate
	// Duplicate: a member name given twice in one object (encoding/json keeps the last,
	// JavaScript's JSON.parse too, other readers the first).
	Duplicate
	// CaseVariant: a member name that differs only in case from one the target knows
	// (encoding/json would take "Channel" for "channel"; JavaScript would not).
	CaseVariant
	// Unknown: a member the target has no field for, with Options.DisallowUnknown.
	Unknown
	// Type: a value of the wrong JSON type for its field ("want a number, got a JSON
	// string"), or refused by the field's own UnmarshalJSON. Err is the cause.
	Type
)

// Error is a message that was refused, with where and why. Its text names the member and
// the fix, ready to be put in a JSON-RPC error message as it is.
type Error struct {
	Kind Kind
	// Path is where in the document the problem is: member names joined by dots, array
	// indexes and names that are not plain identifiers in brackets
	// (`options.callTimeoutMs`, `topics["app-config"].data`, `items[2]`). Empty: the
	// document itself (or, for a member name that cannot be read, its object). Names in
	// it are cut to 64 bytes.
	Path string
	// Member is the offending member name as sent, cut to 64 bytes (Duplicate,
	// CaseVariant, Unknown).
	Member string
	// Known is, for CaseVariant, the member name the target knows; for Unknown, every
	// member name it knows, comma-separated.
	Known string
	// Offset is the byte offset in the input where the problem starts.
	Offset int
	// Err is the cause, for Syntax and Type.
	Err error

	inName bool // LoneSurrogate, InvalidUTF8: in a member name, not a value
}

func (e *Error) Error() string {
	at := ""
	if e.Path != "" {
		at = e.Path + ": "
	}
	switch e.Kind {
	case Syntax:
		return fmt.Sprintf("not valid JSON: %v (at byte %d)", e.Err, e.Offset)
	case InvalidUTF8:
		if e.inName {
			return fmt.Sprintf("%sa member name has byte %d, which is not valid UTF-8: JSON text must be UTF-8 (RFC 8259 §8.1)", at, e.Offset)
		}
		return fmt.Sprintf("%sbyte %d is not valid UTF-8: JSON text must be UTF-8 (RFC 8259 §8.1); send text as UTF-8, binary data as base64", at, e.Offset)
	case LoneSurrogate:
		if !e.inName {
			return fmt.Sprintf("%sthe string has a lone surrogate escape at byte %d, which is no character: escape a whole pair (\\ud83d\\ude00) or send the character as UTF-8", at, e.Offset)
		}
		return fmt.Sprintf("%sa member name has a lone surrogate escape at byte %d, which is no character: escape a whole pair (\\ud83d\\ude00) or send the character as UTF-8", at, e.Offset)
	case Duplicate:
		return fmt.Sprintf("%sthe member appears twice in one object: send it once (readers disagree on which copy counts)", at)
	case CaseVariant:
		return fmt.Sprintf("%sunknown member, differs only in case from %s: member names are case-sensitive, spell it %s", at, strconv.Quote(e.Known), strconv.Quote(e.Known))
	case Unknown:
		return fmt.Sprintf("%sunknown member (known: %s): check its spelling", at, e.Known)
	case Type:
		var typeErr *json.UnmarshalTypeError
		if errors.As(e.Err, &typeErr) {
			return fmt.Sprintf("%swant %s, got a JSON %s", at, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("%s%v", at, e.Err)
	}
	return fmt.Sprintf("%sinvalid JSON (kind %d)", at, e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// jsonKind names the JSON type a Go kind takes, as rpc's messages always have.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "interface":
		return "a JSON value"
	default:
		return "a number"
	}
}

// frame is one step of the path to the value being read: a member name (decoded, maybe
// aliasing the input) or, when name is nil, an array index.
type frame struct {
	name  []byte
	index int
}

const maxNameInError = 64

// formatPath renders frames as Error.Path.
func formatPath(frames []frame) string {
	path := ""
	for _, f := range frames {
		path = appendPath(path, f)
	}
	return path
}

// appendPath returns path with one more step.
func appendPath(path string, f frame) string {
	if f.name == nil {
		return path + "[" + strconv.Itoa(f.index) + "]"
	}
	name := boundName(f.name)
	if !isIdentifier(name) {
		return path + "[" + strconv.Quote(name) + "]"
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// boundName cuts a name to maxNameInError bytes on a character boundary, marking the cut:
// names have no length limit of their own here, and an error must not echo a megabyte.
func boundName(name []byte) string {
	if len(name) <= maxNameInError {
		return string(name)
	}
	n := maxNameInError
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return string(name[:n]) + "…"
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && c != '$' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
