package natsstore

import (
	"testing"
	"unicode/utf8"
)

func TestKeyEncodingIsReversibleAndValid(t *testing.T) {
	cases := []struct{ topic, key string }{
		{"app-config", "app-config"},
		{"a/b_c.D-9", "a/b_c.D-9"},
		{"has space", "=aGFzIHNwYWNl"},
		{"=starts-with-eq", "=PXN0YXJ0cy13aXRoLWVx"},
		{"trailing.", "=dHJhaWxpbmcu"},
		{"a..b", "=YS4uYg"},
		{"wild*card>", "=d2lsZCpjYXJkPg"},
		{"ünïcode", "=w7xuw69jb2Rl"},
	}
	for _, c := range cases {
		got := EncodeKey(c.topic)
		if got != c.key {
			t.Errorf("EncodeKey(%q): got %q, want %q", c.topic, got, c.key)
		}
		back, err := DecodeKey(got)
		if err != nil || back != c.topic {
			t.Errorf("DecodeKey(%q): got %q, %v, want %q", got, back, err, c.topic)
		}
	}
}

func FuzzKeyEncoding(f *testing.F) {
	f.Add("app-config")
	f.Add("=x")
	f.Add("a b.c")
	f.Fuzz(func(t *testing.T, topic string) {
		if topic == "" || !utf8.ValidString(topic) {
			return
		}
		key := EncodeKey(topic)
		// NATS key rules: ^[-/_=.a-zA-Z0-9]+$, no empty token.
		if !validNATSKey(key) {
			t.Fatalf("EncodeKey(%q) = %q: not a valid NATS key", topic, key)
		}
		back, err := DecodeKey(key)
		if err != nil || back != topic {
			t.Fatalf("round trip of %q via %q: got %q, %v", topic, key, back, err)
		}
	})
}

func validNATSKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == '=' || c == '.') {
			return false
		}
		if c == '.' && i > 0 && key[i-1] == '.' {
			return false
		}
	}
	return true
}
