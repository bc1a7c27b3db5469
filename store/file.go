package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/strictjson"
)

// The file format, one JSON document:
//
//	{"format":"statesync-store","version":1,"epoch":"…","topics":{"app-config":{"revision":"3","data":…}}}
//
// A deleted topic is {"revision":"4","deleted":true}, with no data.
const (
	fileFormat  = "statesync-store"
	fileVersion = 1
)

type fileDoc struct {
	Format  string           `json:"format"`
	Version int              `json:"version"`
	Epoch   string           `json:"epoch"`
	Topics  map[string]entry `json:"topics"`
}

// fileBackend rewrites the whole file on every commit (one write, or every write queued
// behind the one in progress: see Store.commit): temp file in the same folder, fsync,
// rename over the old one, fsync the folder. A crash at any point leaves either
// the old file or the new one, never a mix, so every acknowledged write survives.
type fileBackend struct {
	path string
	lock *fileLock // held from OpenFile to Close: one process per store file
}

// lockWait bounds how long OpenFile waits for another process to release the store: a
// host that respawns the sidecar right after closing the old one must not fail while the
// old one is still exiting.
var lockWait = 2 * time.Second

// OpenFile opens the store at path, creating it (mode 0600) when it does not exist. A file
// that is not a valid store is an error naming the path; it is never replaced. The store
// holds an exclusive lock (path + ".lock") until Close, so a second process opening the
// same file fails instead of overwriting the first one's writes.
func OpenFile(path string, maxBytes int) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store file %s: %w", path, err)
	}
	// A symlinked store file (dotfile managers) stays a symlink: write through to its target.
	abs, err = followLinks(abs)
	if err != nil {
		return nil, fmt.Errorf("store file %s: %w", path, err)
	}
	// Before the lock, whose error would name PATH.lock, a file the user never asked for.
	if _, err := os.Stat(filepath.Dir(abs)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store file %s: its folder %s does not exist: the folder must exist (the sidecar creates the file, not its folder): create it, or fix --store-file (%w)", abs, filepath.Dir(abs), err)
	}
	// Before the lock, which would create PATH.lock next to a device (/dev/zero.lock).
	if info, err := os.Stat(abs); err == nil {
		if err := requireRegular(abs, info); err != nil {
			return nil, err
		}
	}
	lock, err := acquireLock(abs+".lock", lockWait)
	if err != nil {
		return nil, fmt.Errorf("store file %s: %w", abs, err)
	}
	s, err := openLocked(abs, maxBytes)
	if err != nil {
		lock.release()
		return nil, err
	}
	s.file.lock = lock
	return s, nil
}

// followLinks resolves path while it is a symlink, even to a file that does not exist
// yet, so that the rename that saves the store replaces the target, not the link.
func followLinks(path string) (string, error) {
	for range 40 {
		info, err := os.Lstat(path)
		if err != nil || info.Mode().Type() != fs.ModeSymlink {
			return path, nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return "", errors.New("too many levels of symbolic links")
}

// fileSizeFactor bounds the store file read at start: at most fileSizeFactor times
// --max-store-bytes (the largest data of one topic), and never less than minFileLimit.
// A file over it is refused unread, so a wrong --store-file (a disk image, a sparse file of
// gigabytes) costs no memory. The file holds every topic, so this allows 16 topics at the
// per-topic limit; docs/store.md says how to raise it.
const fileSizeFactor = 16

// minFileLimit keeps a small --max-store-bytes from refusing a store of a few small topics.
const minFileLimit = 1 << 20

// fileLimit is the largest store file OpenFile reads, in bytes, for a --max-store-bytes of
// maxBytes.
func fileLimit(maxBytes int) int64 {
	return max(int64(maxBytes)*fileSizeFactor, minFileLimit)
}

// requireRegular refuses anything at the store path but a regular file (after symlinks):
// a FIFO would block start-up until some writer came, a device (/dev/zero) never ends,
// and no rename could ever replace either with the saved store.
func requireRegular(abs string, info fs.FileInfo) error {
	if info.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch t := info.Mode().Type(); {
	case t&fs.ModeDir != 0:
		what = "a folder"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		what = "a socket"
	case t&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("store file %s is %s, not a regular file: give --store-file the path of a store file, or of one to create", abs, what)
}

// readStore reads the store file, refusing what is not a regular file or is over limit
// bytes before reading it; raw is nil when the file does not exist.
func readStore(abs string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|openReadFlag, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Again on the open file: the path may have been replaced since OpenFile looked.
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := requireRegular(abs, info); err != nil {
		return nil, err
	}
	tooLarge := func(size int64) error {
		return fmt.Errorf("store file %s is %d bytes or more, over the limit of %d bytes (%d × --max-store-bytes, at least 1 MiB): it was left untouched; if it is your store, start with --max-store-bytes %d or more", abs, size, limit, fileSizeFactor, (size+fileSizeFactor-1)/fileSizeFactor)
	}
	if info.Size() > limit {
		return nil, tooLarge(info.Size())
	}
	// The size was read before the bytes: a file still growing is cut at limit+1.
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, tooLarge(int64(len(raw)))
	}
	return raw, nil
}

func openLocked(abs string, maxBytes int) (*Store, error) {
	b := &fileBackend{path: abs}
	s := &Store{maxBytes: maxBytes, file: b, topics: map[string]entry{}}
	raw, err := readStore(abs, fileLimit(maxBytes))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.epoch = newEpoch()
		if err := b.write(fileDoc{Format: fileFormat, Version: fileVersion, Epoch: s.epoch, Topics: s.topics}); err != nil {
			return nil, err
		}
		return s, nil
	case err != nil:
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return nil, fmt.Errorf("store file %s: %w", abs, err)
		}
		return nil, err
	}
	doc, err := parseFile(raw)
	if err != nil {
		return nil, fmt.Errorf("store file %s is not a valid state-sync store (%v): it was left untouched; move it away to start empty, or restore a backup", abs, err)
	}
	// Fail now, not at the first state.set, when the folder does not take new files.
	if err := b.probe(); err != nil {
		return nil, err
	}
	b.removeStaleTemps()
	s.epoch, s.topics = doc.Epoch, doc.Topics
	return s, nil
}

// tempPattern names the temporary files next to the store; a process killed mid-write
// leaves one behind, which the next OpenFile removes (it holds the lock, so no write of
// another process is in flight).
func (b *fileBackend) tempPattern() string { return "." + filepath.Base(b.path) + ".tmp-*" }

func (b *fileBackend) probe() error {
	tmp, err := os.CreateTemp(filepath.Dir(b.path), b.tempPattern())
	if err != nil {
		return fmt.Errorf("store file %s: the folder does not take new files, so no write could be saved: %w", b.path, err)
	}
	_ = tmp.Close()
	return os.Remove(tmp.Name())
}

func (b *fileBackend) removeStaleTemps() {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(b.path), b.tempPattern()))
	for _, name := range stale {
		_ = os.Remove(name)
	}
}

func (b *fileBackend) close() error {
	if b.lock == nil {
		return nil
	}
	err := b.lock.release()
	b.lock = nil
	return err
}

// parseFile reads a store document, refusing as damage anything another reader could
// read differently or that the next write would silently drop: member names repeated or
// differing only in case ("FORMAT", a topic twice, where one copy would be lost at the
// next write), members it does not know, bytes that are not UTF-8, lone surrogate
// escapes in names, a missing or null "topics", an empty topic name.
func parseFile(raw []byte) (fileDoc, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return fileDoc{}, errors.New("the file is empty (truncated?)")
	}
	if bytes.HasPrefix(raw, byteOrderMark) {
		return fileDoc{}, errors.New("the file starts with a byte order mark (bytes EF BB BF), which JSON does not allow (RFC 8259 §8.1): save it as UTF-8 without a byte order mark")
	}
	var doc fileDoc
	if err := (strictjson.Options{DisallowUnknown: true}).Decode(raw, &doc); err != nil {
		var serr *strictjson.Error
		if errors.As(err, &serr) && serr.Kind == strictjson.Syntax {
			// encoding/json says "invalid character"; say what a person can act on.
			dec := json.NewDecoder(bytes.NewReader(raw))
			var v json.RawMessage
			if dec.Decode(&v) == nil && dec.More() {
				return fileDoc{}, errors.New("trailing data after the JSON document")
			}
			return fileDoc{}, fmt.Errorf("not valid JSON: %v", serr.Err)
		}
		if errors.As(err, &serr) && serr.Kind == strictjson.Unknown {
			// Another program's JSON, or a newer store: say that rather than name a member.
			var head struct {
				Format  string `json:"format"`
				Version int    `json:"version"`
			}
			if strictjson.Decode(raw, &head) == nil {
				if err := checkHead(head.Format, head.Version); err != nil {
					return fileDoc{}, err
				}
			}
		}
		return fileDoc{}, err
	}
	if err := checkHead(doc.Format, doc.Version); err != nil {
		return fileDoc{}, err
	}
	if doc.Topics == nil {
		return fileDoc{}, errors.New(`"topics" is missing or null: a store always has "topics", {} when it holds none`)
	}
	if doc.Epoch == "" {
		return fileDoc{}, errors.New("epoch is missing")
	}
	for topic, e := range doc.Topics {
		if _, err := engine.ValidateTopic(topic); err != nil {
			return fileDoc{}, fmt.Errorf("topic %s: the name %v", quoteName(topic), err.(*engine.FieldError).Err)
		}
		if _, err := engine.ParseRevision(string(e.Revision)); err != nil {
			return fileDoc{}, fmt.Errorf("topic %q: %v", topic, err)
		}
		if e.Revision == engine.ZeroRevision {
			return fileDoc{}, fmt.Errorf("topic %q: revision 0 is never written (the first write is revision 1)", topic)
		}
		if e.Deleted && len(e.Data) != 0 {
			return fileDoc{}, fmt.Errorf("topic %q is deleted and has data: a deleted topic has none", topic)
		}
		if len(e.Data) == 0 && !e.Deleted {
			return fileDoc{}, fmt.Errorf("topic %q has no data", topic)
		}
	}
	return doc, nil
}

// byteOrderMark is U+FEFF in UTF-8, which some editors put at the start of a file.
var byteOrderMark = []byte("\xef\xbb\xbf")

func checkHead(format string, version int) error {
	if format != fileFormat {
		return fmt.Errorf("format is %q, want %q", format, fileFormat)
	}
	if version != fileVersion {
		return fmt.Errorf("version %d, this sidecar reads version %d", version, fileVersion)
	}
	return nil
}

func (b *fileBackend) write(doc fileDoc) error {
	var buf bytes.Buffer
	buf.WriteString(`{"format":`)
	writeJSON(&buf, doc.Format)
	fmt.Fprintf(&buf, `,"version":%d,"epoch":`, doc.Version)
	writeJSON(&buf, doc.Epoch)
	buf.WriteString(`,"topics":{`)
	names := make([]string, 0, len(doc.Topics))
	for name := range doc.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n")
		writeJSON(&buf, name)
		buf.WriteString(`:{"revision":`)
		writeJSON(&buf, doc.Topics[name].Revision)
		if doc.Topics[name].Deleted {
			buf.WriteString(`,"deleted":true}`) // a tombstone: see Store.BeginDelete
			continue
		}
		buf.WriteString(`,"data":`)
		buf.Write(doc.Topics[name].Data) // raw: data is never decoded
		buf.WriteByte('}')
	}
	buf.WriteString("\n}}\n")

	dir := filepath.Dir(b.path)
	tmp, err := os.CreateTemp(dir, b.tempPattern()) // mode 0600
	if err != nil {
		return fmt.Errorf("store file %s: cannot create a temporary file next to it: %w (the previous file is intact)", b.path, err)
	}
	tmpName := tmp.Name()
	fail := func(step string, err error) error {
		_ = tmp.Close()
		_ = os.Remove(tmpName)
		return fmt.Errorf("store file %s: %s: %w (the previous file is intact)", b.path, step, err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := tmp.Close(); err != nil {
		return fail("close", err)
	}
	if beforeRename != nil {
		beforeRename(tmpName)
	}
	if err := os.Rename(tmpName, b.path); err != nil {
		_ = os.Remove(tmpName)
		return fmt.Errorf("store file %s: rename: %w (the previous file is intact)", b.path, err)
	}
	return syncDir(dir)
}

// beforeRename, set by tests only, sees each synced temporary file before it replaces the
// store file.
var beforeRename func(tmpName string)

func writeJSON(buf *bytes.Buffer, v any) {
	b, _ := json.Marshal(v)
	buf.Write(b)
}

// quoteName quotes a topic name for an error, at most 64 bytes of it: a name refused for
// its length may be a megabyte, and the error is one line of stderr.
func quoteName(name string) string {
	if len(name) <= 64 {
		return strconv.Quote(name)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(name[:64]), len(name))
}
