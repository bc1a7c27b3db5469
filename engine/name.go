package engine

// MaxNameBytes bounds a topic or channel name, in bytes of UTF-8. Every apply, error
// notification and status repeats the names, and each topic keeps its own state: names
// without a bound let one host make the sidecar hold and write megabytes per message.
// Real names ("settings-window/app-config") are a few dozen bytes.
const MaxNameBytes = 1024

// ValidateTopic checks a topic: at most MaxNameBytes bytes, and at least one character
// that is not whitespace as JavaScript's String.prototype.trim defines it, so that the
// sidecar and the TypeScript SDK accept the same topics (testdata/names.json). It returns
// the topic unchanged: topics are identifiers, compared byte for byte (never trimmed,
// case-folded or normalized).
func ValidateTopic(topic string) (string, error) {
	if err := checkLength("topic", topic); err != nil {
		return "", err
	}
	if isBlank(topic) {
		return "", fieldErrorf("topic", "is empty: want a stable name such as \"app-config\"")
	}
	return topic, nil
}

// ValidateChannel checks a channel's name: not empty, at most MaxNameBytes bytes.
// Channel names are the host's own identifiers, compared byte for byte like topics.
func ValidateChannel(name string) error {
	if name == "" {
		return fieldErrorf("channel", "is missing: want the channel's name, such as \"settings-window/app-config\"")
	}
	return checkLength("channel", name)
}

func checkLength(field, name string) error {
	if len(name) > MaxNameBytes {
		return fieldErrorf(field, "is %d bytes long, over the limit of %d bytes (engine.MaxNameBytes): use a short stable name such as \"app-config\"", len(name), MaxNameBytes)
	}
	return nil
}

// isBlank reports whether s is empty or only whitespace as JavaScript's trim() sees it
// (ECMAScript WhiteSpace and LineTerminator). Go's unicode.IsSpace differs on two
// characters: it counts U+0085 (next line) and not U+FEFF (byte order mark).
func isBlank(s string) bool {
	for _, r := range s {
		if !isJSSpace(r) {
			return false
		}
	}
	return true
}

func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', // ASCII whitespace and line terminators
		0x00A0, 0x1680, 0x202F, 0x205F, 0x3000, // space separators (Zs)
		0x2028, 0x2029, // line and paragraph separators
		0xFEFF: // zero width no-break space (byte order mark)
		return true
	}
	return r >= 0x2000 && r <= 0x200A // the remaining Zs: en quad … hair space
}
