//go:build linux || darwin

package store

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// TestFileSizeLimitChild is the child of TestFailedWriteKeepsTheOldFileAndTheStore's
// "file size limit": it runs only with STORE_FSIZE_CHILD set to a store holding t at
// revision 2, caps the size of any file this process writes just above that store's, and
// checks that a write that cannot fit fails cleanly.
func TestFileSizeLimitChild(t *testing.T) {
	path := os.Getenv("STORE_FSIZE_CHILD")
	if path == "" {
		t.Skip("runs as a child process only")
	}
	s, err := OpenFile(path, testMax)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit then fails with EFBIG
	limit := uint64(info.Size() + 16)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Set("t", json.RawMessage(`"`+strings.Repeat("x", 4096)+`"`), nil)
	if err == nil {
		t.Fatal("a write past RLIMIT_FSIZE succeeded")
	}
	if !strings.Contains(err.Error(), "the previous file is intact") || !strings.Contains(err.Error(), path) {
		t.Fatalf("unclear error: %v", err)
	}
	got, _ := s.Get("t")
	if got.Revision != "2" || string(got.Data) != `"two"` {
		t.Fatalf("the store moved: %+v", got)
	}
	fmt.Println("error was:", err)
	fmt.Println("CHILD-OK")
}
