package natsstore

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// encodedPrefix starts every key that is not the topic itself. A plain topic never
// starts with it (such a topic is encoded too), so decoding is never ambiguous.
const encodedPrefix = "="

// EncodeKey maps a topic to a NATS key, reversibly. A topic made of letters, digits,
// '-', '_', '/' and '.' (dots only between non-empty parts, as NATS tokens need) and not
// starting with '=' is its own key, so buckets stay readable with the nats CLI; any
// other topic is '=' followed by its unpadded base64url encoding (whose alphabet is
// valid in keys).
func EncodeKey(topic string) string {
	if plainKey(topic) {
		return topic
	}
	return encodedPrefix + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// DecodeKey is EncodeKey's inverse.
func DecodeKey(key string) (string, error) {
	rest, encoded := strings.CutPrefix(key, encodedPrefix)
	if !encoded {
		if !plainKey(key) {
			return "", fmt.Errorf("key %q is neither a plain topic nor '=' and base64url", key)
		}
		return key, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("key %q: %w", key, err)
	}
	return string(b), nil
}

func plainKey(topic string) bool {
	if topic == "" || strings.HasPrefix(topic, encodedPrefix) {
		return false
	}
	for _, token := range strings.Split(topic, ".") {
		if token == "" {
			return false
		}
		for i := 0; i < len(token); i++ {
			c := token[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/') {
				return false
			}
		}
	}
	return true
}
