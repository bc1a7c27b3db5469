// Package natsstore is the sidecar's store on a NATS JetStream key-value bucket, for apps
// that run on several machines and want the same state everywhere. A topic is a key, a
// revision is the entry's revision (the stream sequence, monotonic per bucket), a
// compare-and-set is a publish that expects the key's last sequence, and a watcher on
// the bucket turns every change, made by any sidecar, into invalidations here.
//
// Reads are served from a local copy the watcher keeps, so they cost no round trip and
// keep working while the server is unreachable; writes are acknowledged only once
// JetStream has stored them.
package natsstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/store"
)

// Config says which server and bucket to use. Zero values take the defaults in brackets.
type Config struct {
	URLs      string // comma-separated server URLs, as nats.Connect takes them
	Bucket    string // [statesync]; created when missing
	Replicas  int    // replicas of a bucket this store creates [1]
	CredsFile string // a .creds file (JWT and seed); empty: none
	// TLS, named as the nats CLI names them; any of them set turns TLS on.
	TLSCert, TLSKey, TLSCA string
	ConnectTimeout         time.Duration // to reach the server at startup [5s]
	HealthInterval         time.Duration // between checks of the bucket's epoch and the watcher's progress [5s]
	WriteTimeout           time.Duration // for a write's acknowledgement [5s]
	Logger                 *slog.Logger  // nil: silent
}

// Store is a rpc.Store on a JetStream key-value bucket.
type Store struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	prefix string // the subject of a key is prefix+key
	limit  int    // largest value the server takes

	stopWatch   context.CancelFunc
	reconnected chan struct{} // asks runWatcher for a new watcher (a reconnection, a lost consumer)
	watching    sync.WaitGroup
	closeOnce   sync.Once

	mu      sync.Mutex
	epoch   string                         // the bucket's life: its stream's creation time; under mu
	entries map[string]entry               // by topic: the newest entry seen (watched or acknowledged); under mu
	notify  func(engine.InvalidationEvent) // rpc's watcher callback; under mu, called outside it
	watched uint64                         // the highest revision the watcher delivered; under mu
}

type entry struct {
	rev  uint64
	data json.RawMessage
}

// Open connects, finds or creates the bucket, and returns once the local copy holds the
// bucket's current state, so windows opened right after start at the current revision.
// It fails at once, with the fix in the message, when the server cannot be reached or
// refuses the credentials.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "statesync"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, entries: map[string]entry{}, prefix: "$KV." + cfg.Bucket + ".", reconnected: make(chan struct{}, 1)}
	opts := []nats.Option{
		nats.Name("statesync-sidecar"),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No buffering while disconnected: a write then fails at once instead of being
		// acknowledged to nobody later.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			s.restartWatcher()
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, errors.New("--nats-tlscert and --nats-tlskey go together: give both, or neither")
		}
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		return nil, connectError(cfg, err)
	}
	s.nc = nc
	if err := s.open(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func connectError(cfg Config, err error) error {
	switch {
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") || strings.Contains(strings.ToLower(err.Error()), "authentication"):
		who := "the user in --nats-url"
		if cfg.CredsFile != "" {
			who = fmt.Sprintf("--nats-creds %q", cfg.CredsFile)
		}
		return fmt.Errorf("the NATS server at %s refused the credentials (%s): %v: check the credentials, or ask the server's operator for valid ones", redact(cfg.URLs), who, err)
	case strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("TLS with the NATS server at %s failed: %v: give the CA that signed the server's certificate with --nats-tlsca, and a client certificate with --nats-tlscert and --nats-tlskey if the server asks for one", redact(cfg.URLs), err)
	case cfg.CredsFile != "" && strings.Contains(err.Error(), cfg.CredsFile):
		return fmt.Errorf("--nats-creds %q cannot be used: %v: give a .creds file as nsc or the nats CLI writes it", cfg.CredsFile, err)
	default:
		return fmt.Errorf("cannot reach the NATS server at --nats-url %s within %s: %v: check the URL and that nats-server runs with JetStream (-js)", redact(cfg.URLs), cfg.ConnectTimeout, err)
	}
}

// redact hides the passwords of URLs (nats://user:secret@host), which messages and logs
// must not carry.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// open binds the bucket (creating it when missing), reads its epoch and starts the
// watcher, waiting for the watcher's initial values.
func (s *Store) open(ctx context.Context) error {
	js, err := jetstream.New(s.nc, jetstream.WithPublishAsyncTimeout(s.cfg.WriteTimeout))
	if err != nil {
		return err
	}
	s.js = js
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, s.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		s.log.Info("creating the NATS bucket", "bucket", s.cfg.Bucket, "replicas", s.cfg.Replicas)
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: s.cfg.Bucket, Replicas: s.cfg.Replicas, History: 1})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, s.cfg.Bucket) // another sidecar created it meanwhile
		}
	}
	if err != nil {
		// No responders: nothing serves the JetStream API for this account.
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("JetStream is not enabled for this account on the NATS server at %s: start nats-server with -js (or enable JetStream for the account): %w", redact(s.cfg.URLs), err)
		}
		return fmt.Errorf("cannot open or create the NATS bucket %q (--nats-bucket) at %s: %w", s.cfg.Bucket, redact(s.cfg.URLs), err)
	}
	s.kv = kv
	status, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the NATS bucket %q: %w", s.cfg.Bucket, err)
	}
	if s.epoch, err = s.readEpoch(ctx); err != nil {
		return fmt.Errorf("cannot read the NATS bucket %q: %w", s.cfg.Bucket, err)
	}
	s.limit = int(s.nc.MaxPayload())
	if m := int(status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxMsgSize); m > 0 && m < s.limit {
		s.limit = m
	}
	return s.watch(ctx)
}

// watch starts the goroutine that owns the bucket's watcher, and waits until the
// watcher has delivered the current value of every key.
func (s *Store) watch(ctx context.Context) error {
	watchCtx, stop := context.WithCancel(context.Background())
	w, err := s.kv.WatchAll(watchCtx)
	if err != nil {
		stop()
		return fmt.Errorf("cannot watch the NATS bucket %q: %w", s.cfg.Bucket, err)
	}
	s.stopWatch = stop
	initial := make(chan struct{})
	s.watching.Go(func() { s.runWatcher(watchCtx, w, initial) })
	select {
	case <-initial:
		return nil
	case <-ctx.Done():
		stop()
		s.watching.Wait()
		return fmt.Errorf("the NATS bucket %q did not deliver its current state in time: %w", s.cfg.Bucket, ctx.Err())
	}
}

// runWatcher records every entry the watcher delivers until ctx ends; initial is closed
// once the first watcher has delivered the bucket's current state. After a reconnection
// it starts a new watcher right after the last entry seen: the ordered consumer would
// resume by itself, but only once it has missed heartbeats for several seconds (the
// server that held it may have restarted). A bucket whose epoch changed meanwhile (it
// was deleted and created again) is read again from the start.
func (s *Store) runWatcher(ctx context.Context, w jetstream.KeyWatcher, initial chan struct{}) {
	defer func() { _ = w.Stop() }()
	var seen uint64 // the highest revision delivered: every later change has a higher one
	var lagging uint64
	health := time.NewTicker(s.cfg.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-health.C:
			var restart bool
			if restart, lagging = s.checkHealth(ctx, seen, lagging); restart {
				s.restartWatcher()
			}
		case <-s.reconnected:
			if next, from := s.rewatch(ctx, seen); next != nil {
				_ = w.Stop()
				w, seen = next, from
			}
		case e, ok := <-w.Updates():
			if !ok {
				// Stopped under us (the bucket was deleted): the next reconnection or
				// nothing starts another; reads keep serving the last data meanwhile.
				s.log.Warn("the NATS bucket's watcher stopped", "bucket", s.cfg.Bucket)
				w = stoppedWatcher{}
				continue
			}
			if e == nil { // the marker after the initial values
				if initial != nil {
					close(initial)
					initial = nil
				}
				continue
			}
			seen = max(seen, e.Revision())
			s.mu.Lock()
			s.watched = seen
			s.mu.Unlock()
			s.observe(e)
		}
	}
}

// rewatch starts a watcher after a reconnection: from revision seen+1, or from the start
// with a new epoch (and seen 0, returned) when the bucket was created again. nil: it
// could not, and the old watcher stays.
func (s *Store) rewatch(ctx context.Context, seen uint64) (jetstream.KeyWatcher, uint64) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	epoch, err := s.readEpoch(ctx)
	if err != nil {
		s.log.Warn("cannot read the NATS bucket after reconnecting; the old watcher stays", "bucket", s.cfg.Bucket, "err", err)
		return nil, seen
	}
	s.mu.Lock()
	reset := epoch != s.epoch
	var topics []string
	if reset {
		s.log.Warn("the NATS bucket was created again: a new epoch, every topic is read again", "bucket", s.cfg.Bucket)
		for topic := range s.entries {
			topics = append(topics, topic)
		}
		s.epoch, s.entries, s.watched, seen = epoch, map[string]entry{}, 0, 0
	}
	notify := s.notify
	s.mu.Unlock()
	opts := []jetstream.WatchOpt{}
	if seen > 0 {
		opts = append(opts, jetstream.ResumeFromRevision(seen+1))
	}
	w, err := s.kv.WatchAll(context.WithoutCancel(ctx), opts...)
	if err != nil {
		s.log.Warn("cannot watch the NATS bucket after reconnecting; the old watcher stays", "bucket", s.cfg.Bucket, "err", err)
		return nil, seen
	}
	if notify != nil {
		// The new epoch resets every window of a topic the old bucket had, even one the
		// new bucket lacks (its windows then hold revision 0, no data).
		for _, topic := range topics {
			notify(engine.InvalidationEvent{Topic: topic, Revision: engine.ZeroRevision, Epoch: epoch})
		}
	}
	return w, seen
}

// checkHealth asks the server for the bucket's epoch and last revision. It reports a
// restart when the bucket was created again (a new epoch), or when the watcher is still
// short of a revision that was already the bucket's last at the previous check (its
// consumer was lost: a bucket deleted under it, a node gone). lagging is that revision,
// carried from check to check (0: none).
func (s *Store) checkHealth(ctx context.Context, seen, lagging uint64) (restart bool, nextLagging uint64) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	status, err := s.kv.Status(ctx)
	if err != nil {
		return false, lagging // unreachable: the reconnection restarts the watcher
	}
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if "nats-"+strconv.FormatInt(info.Created.UnixNano(), 36) != s.Epoch() {
		return true, 0
	}
	if lagging != 0 && seen < lagging {
		s.log.Info("the NATS watcher is behind the bucket: starting it again", "seen", seen, "bucket last", lagging)
		return true, 0
	}
	if info.State.LastSeq > seen {
		return false, info.State.LastSeq
	}
	return false, 0
}

// stoppedWatcher stands in for a watcher that ended: it delivers nothing.
type stoppedWatcher struct{}

func (stoppedWatcher) Updates() <-chan jetstream.KeyValueEntry { return nil }
func (stoppedWatcher) Stop() error                             { return nil }

func (s *Store) readEpoch(ctx context.Context) (string, error) {
	status, err := s.kv.Status(ctx)
	if err != nil {
		return "", err
	}
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	return "nats-" + strconv.FormatInt(info.Created.UnixNano(), 36), nil
}

// observe records a watched entry and invalidates the topic when it is newer.
func (s *Store) observe(e jetstream.KeyValueEntry) {
	topic, err := DecodeKey(e.Key())
	if err != nil {
		s.log.Warn("ignoring a key that no sidecar wrote", "bucket", s.cfg.Bucket, "key", e.Key(), "err", err)
		return
	}
	data := json.RawMessage(e.Value())
	if e.Operation() != jetstream.KeyValuePut || !json.Valid(data) {
		// Deleted or purged by hand, or not JSON: the topic's state is null from this
		// revision on, so windows learn the value is gone rather than keep a stale one.
		data = json.RawMessage("null")
	}
	s.record(topic, entry{rev: e.Revision(), data: data})
}

// record keeps ent when it is newer than what the store holds, and then invalidates.
func (s *Store) record(topic string, ent entry) {
	s.mu.Lock()
	if cur, ok := s.entries[topic]; ok && cur.rev >= ent.rev {
		s.mu.Unlock()
		return
	}
	s.entries[topic] = ent
	notify, epoch := s.notify, s.epoch
	s.mu.Unlock()
	if notify != nil {
		notify(engine.InvalidationEvent{Topic: topic, Revision: engine.Revision(strconv.FormatUint(ent.rev, 10)), Epoch: epoch})
	}
}

// Watch implements rpc's optional store watcher: fn gets an invalidation for every
// change of the bucket, by this sidecar or any other, until stop is called.
func (s *Store) Watch(fn func(engine.InvalidationEvent)) (stop func()) {
	s.mu.Lock()
	s.notify = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.notify = nil
		s.mu.Unlock()
	}
}

// Get returns the newest entry this sidecar knows: every write it acknowledged, and
// every change the watcher delivered. It needs no server, so reads keep working offline.
func (s *Store) Get(topic string) (engine.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[topic]
	if !ok {
		return engine.Snapshot{Revision: engine.ZeroRevision, Epoch: s.epoch}, nil
	}
	return engine.Snapshot{Revision: engine.Revision(strconv.FormatUint(e.rev, 10)), Epoch: s.epoch, Data: e.data}, nil
}

// Has reports whether the topic holds data.
func (s *Store) Has(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[topic]
	return ok
}

// Epoch names the bucket's life: a bucket deleted and created again is a new epoch.
func (s *Store) Epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Kind is "nats".
func (s *Store) Kind() string { return "nats" }

// Limit is the largest value the server takes, in bytes.
func (s *Store) Limit() int { return s.limit }

// Begin sends the write at once, so writes leave in call order on the one connection;
// wait returns its revision once JetStream acknowledged it (stored, on a quorum of
// replicas). With expected set it is a compare-and-set: "0" creates the key, any other
// revision must be the key's last. Nothing is acknowledged that was not stored: while
// the server is unreachable Begin fails, and a write whose acknowledgement times out is
// reported as of unknown outcome.
func (s *Store) Begin(topic string, data json.RawMessage, expected *engine.Revision) (wait func() (engine.Revision, error), err error) {
	if len(data) > s.limit {
		return nil, &store.TooLargeError{Topic: topic, Size: len(data), Limit: s.limit, LimitName: "the NATS server's max_payload or the bucket's max value size"}
	}
	var opts []jetstream.PublishOpt
	if expected != nil {
		want, err := strconv.ParseUint(string(*expected), 10, 64)
		if err != nil {
			return nil, &engine.FieldError{Field: "expectedRevision", Err: err}
		}
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(want))
	}
	if !s.nc.IsConnected() {
		return nil, &store.WriteError{Topic: topic, Err: fmt.Errorf("not connected to the NATS server (%s); reconnecting: retry once it is reachable", s.nc.Status())}
	}
	value := append(json.RawMessage(nil), data...)
	msg := &nats.Msg{Subject: s.prefix + EncodeKey(topic), Data: value}
	future, err := s.js.PublishMsgAsync(msg, opts...)
	if errors.Is(err, nats.ErrMaxPayload) {
		// Under the limit alone, but not with the compare-and-set header.
		return nil, &store.TooLargeError{Topic: topic, Size: len(data), Limit: s.limit, LimitName: "the NATS server's max_payload, headers included"}
	}
	if err != nil {
		return nil, &store.WriteError{Topic: topic, Err: err}
	}
	return func() (engine.Revision, error) {
		select {
		case ack := <-future.Ok():
			s.record(topic, entry{rev: ack.Sequence, data: value})
			s.expectWatched(ack.Sequence)
			return engine.Revision(strconv.FormatUint(ack.Sequence, 10)), nil
		case err := <-future.Err():
			return "", s.writeError(topic, expected, err)
		}
	}, nil
}

// watcherGrace is how long the watcher may take to deliver a write this sidecar saw
// acknowledged before the watcher is taken for lost and started again.
const watcherGrace = 2 * time.Second

// expectWatched checks, after watcherGrace, that the watcher delivered revision rev. The
// ordered consumer behind it lives on one server: when that server dies while this
// sidecar stays connected to another, the consumer notices only after missing several
// heartbeats (5 s apart), so the other sidecars' changes would wait that long.
func (s *Store) expectWatched(rev uint64) {
	time.AfterFunc(watcherGrace, func() {
		s.mu.Lock()
		behind := s.watched < rev
		s.mu.Unlock()
		if behind {
			s.log.Info("the NATS watcher is behind this sidecar's own write: starting it again", "revision", rev)
			s.restartWatcher()
		}
	})
}

// restartWatcher asks runWatcher for a new watcher; one pending request covers any number.
func (s *Store) restartWatcher() {
	select {
	case s.reconnected <- struct{}{}:
	default:
	}
}

// writeError turns a failed publish into the store's errors: a lost compare-and-set, a
// write of unknown outcome (no acknowledgement), or one that was not stored.
func (s *Store) writeError(topic string, expected *engine.Revision, err error) error {
	var apiErr *jetstream.APIError
	if expected != nil && errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "wrong last sequence") {
		return &store.ConflictError{Topic: topic, Expected: *expected, Current: s.currentRevision(topic, apiErr.Description)}
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return &store.WriteError{Topic: topic, Err: err, Unknown: true}
	}
	return &store.WriteError{Topic: topic, Err: err}
}

// currentRevision reads the key's revision after a lost compare-and-set: from the
// server's answer ("wrong last sequence: 7") when it says, else from the server.
func (s *Store) currentRevision(topic, description string) engine.Revision {
	if _, n, ok := strings.Cut(description, ": "); ok {
		if _, err := strconv.ParseUint(n, 10, 64); err == nil {
			return engine.Revision(n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, EncodeKey(topic))
	if err != nil {
		return engine.ZeroRevision
	}
	return engine.Revision(strconv.FormatUint(e.Revision(), 10))
}

// Close stops the watcher and closes the connection; safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopWatch()
		s.watching.Wait()
		s.nc.Close()
	})
	return nil
}
