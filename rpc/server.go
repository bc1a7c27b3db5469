// Package rpc is the sidecar's JSON-RPC 2.0 server: framing, method handlers, calls
// back to the host, and the one table that maps engine errors to JSON-RPC codes.
package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
)

// Source says who answers a channel's snapshots.
type Source string

const (
	// SourceStore: the sidecar's embedded store.
	SourceStore Source = "store"
	// SourceHost: the host answers getSnapshot {topic}, shared by every channel of the topic.
	SourceHost Source = "host"
	// SourceChannel: the channel's owner answers getSnapshot {topic, channel}.
	SourceChannel Source = "channel"
)

// ParseSource accepts "store", "host" and "channel".
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case SourceStore, SourceHost, SourceChannel:
		return Source(s), nil
	}
	return "", fmt.Errorf("unknown source %q: want store, host or channel", quoteBounded(s))
}

// Store is the embedded source of truth, as the server uses it.
type Store interface {
	// Get returns the topic's snapshot; an empty Snapshot (revision "0", no data) when
	// the topic was never set. It holds every write begun before the call that did not
	// fail (it may wait for them to be durable).
	Get(topic string) (engine.Snapshot, error)
	// Begin decides a write at once, without I/O: the checks, the compare-and-set
	// (expected, when not nil) and the revision, in call order. wait blocks until the
	// write is durable and returns its revision; Get sees the write only then.
	Begin(topic string, data json.RawMessage, expected *engine.Revision) (wait func() (engine.Revision, error), err error)
	// Has reports whether the topic holds data.
	Has(topic string) bool
	// Epoch names this life of the store's revisions.
	Epoch() string
	// Kind is "memory" or "file", for initialize.
	Kind() string
}

// Config configures a Server. Zero values take the defaults in brackets.
type Config struct {
	Framing         Framing       // [ndjson]
	MaxMessageBytes int           // largest frame accepted [16 MiB]
	MaxChannels     int           // open channels at once [10000]
	MaxInFlight     int           // requests waiting on the host at once (open, refresh, shutdown; close always runs) [4096]
	CallTimeout     time.Duration // bound on each getSnapshot and apply call to the host [10s]
	DefaultSource   Source        // source of channel.open without one [store]
	Store           Store         // nil: source "store" is not available
	Logger          *slog.Logger  // nil: silent
	Trace           io.Writer     // every frame in and out; nil: off
	Version         string        // reported by initialize
	// DeltaHistoryBytes bounds each topic's history for deltas (deltas.go) [4 MiB];
	// negative: none, every apply carries full data.
	DeltaHistoryBytes int
}

func (c Config) withDefaults() Config {
	if c.Framing == "" {
		c.Framing = NDJSON
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 16 << 20
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = 10000
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.DefaultSource == "" {
		c.DefaultSource = SourceStore
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}

// Server runs one sync engine per channel and serves one host connection.
type Server struct {
	cfg Config
	log *slog.Logger

	conn *conn    // set by Serve before its read loop starts
	ops  *bounded // requests that wait on the host or the store; bounded by MaxInFlight

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed when a shutdown request has stopped every engine

	registry // topics and channels, and the only state Server.mu guards

	patched lastPatched // the data state.patch last wrote, per topic (patch.go)
}

// NewServer returns a server; Serve runs it.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		shutdown: make(chan struct{}),
		registry: registry{topics: map[string]*topic{}, channels: map[string]*channel{}},
		ops:      newBounded(cfg.MaxInFlight),
	}
	return s
}

// Serve speaks the protocol on r and w until r ends (the host is gone), a shutdown
// request, ctx ends (a signal), or w breaks. It starts every goroutine it uses and
// returns only once each has exited and every engine is stopped; nothing reads r after
// it returns (see openInput: to end a read in progress it closes r when r is an
// io.Closer other than an *os.File). It returns nil for the end of the input, a shutdown
// and ctx's end; else the read or write failure that ended the connection (a write
// failing with EPIPE means the host stopped reading: it is gone). A Server serves once.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	var trace *tracer
	if s.cfg.Trace != nil {
		trace = &tracer{w: s.cfg.Trace}
	}
	in := openInput(r)
	c := newConn(s.cfg.Framing, in, w, s.cfg.MaxMessageBytes, trace)
	c.callTimeout, c.log = s.cfg.CallTimeout, s.log
	s.conn = c
	defer s.watchStore()()
	// Handlers get connCtx, which ends when the connection does.
	connCtx, cancelConn := context.WithCancel(ctx)
	defer cancelConn()
	var reader, writer sync.WaitGroup
	writer.Go(c.out.run)
	reader.Go(func() {
		c.readLoop(func(req *jsonrpc2.Request, params json.RawMessage) { s.handle(connCtx, req, params) })
	})

	reason := "signal"
	select {
	case <-c.done:
		reason = "stdin closed"
		if c.err != nil {
			reason = c.err.Error()
		}
	case <-s.shutdown:
		reason = "shutdown request"
	case <-ctx.Done():
	}
	s.log.Info("stopping", "reason", reason)
	// No frame is dispatched from here on, and the read in progress returns: the read
	// loop may still be finishing a dispatch, which stopAll and cancelConn unblock.
	c.stopDispatch()
	c.end(nil)
	in.interrupt()
	cancelConn()
	s.stopAll()
	reader.Wait()
	s.ops.wait() // after the reader: nothing takes a slot any more
	// Last: every answer and notification sent so far is written (the shutdown answer
	// among them) before Serve returns, and nothing sends any more.
	c.out.close()
	writer.Wait()
	in.release()
	return c.err
}

// stopAll marks the server as shutting down and stops every engine, in parallel.
func (s *Server) stopAll() {
	s.mu.Lock()
	s.shuttingDown = true
	channels := make([]*channel, 0, len(s.channels))
	for _, ch := range s.channels {
		channels = append(channels, ch)
	}
	// Collected under the lock: a channel whose open fails meanwhile removes its topic
	// from the map (found by FuzzNDJSONFraming under -race).
	var shared []*engine.SharedProvider
	for _, t := range s.topics {
		if t.shared != nil {
			shared = append(shared, t.shared)
		}
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, ch := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.engine.Stop()
		}()
	}
	wg.Wait()
	for _, sp := range shared {
		sp.Close() // safe twice: a close may have closed it already
	}
}

// handle runs on the read loop's goroutine, so it answers quick methods at once and
// hands methods that wait on the host to a bounded group of goroutines: a slow host
// answer never blocks other channels. req is read only: a notification's is shared by
// every notification of its method (notifications, in envelope.go).
func (s *Server) handle(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "method", req.Method, "panic", r)
			s.reply(ctx, req, nil, errorf(jsonrpc2.CodeInternalError, "internal error in %s: %v (the sidecar keeps serving; please report this)", req.Method, r))
		}
	}()
	if s.isShuttingDown() && req.Method != "shutdown" {
		s.reply(ctx, req, nil, errorf(CodeShuttingDown, "the sidecar is shutting down: %s was not handled", req.Method))
		return
	}
	if req.Notif && requestOnly[req.Method] {
		s.refuseNotification(req.Method)
		return
	}
	respond := func(result any, err error) { s.reply(ctx, req, result, err) }
	switch req.Method {
	case "initialize":
		respond(s.initialize(params))
	case "channel.open":
		s.handleOpen(ctx, req, params)
	case "channel.close":
		s.handleClose(ctx, req, params)
	case "channel.refresh":
		s.handleRefresh(ctx, req, params)
	case "channel.status":
		respond(s.status(params))
	case "channel.list":
		s.reply(ctx, req, s.list(), nil)
	case "invalidate":
		s.handleInvalidate(ctx, req, params)
	case "state.set":
		s.handleStoreWrite(ctx, req, params, s.beginSet)
	case "state.delete":
		s.handleStoreWrite(ctx, req, params, s.beginDelete)
	case "state.patch":
		s.handleStoreWrite(ctx, req, params, s.beginPatch)
	case "state.get":
		// Off the read goroutine: the store may wait for writes begun before it to be
		// durable. When the group is full it runs here.
		topic, err := s.checkGet(params)
		if err != nil {
			respond(nil, err)
			return
		}
		get := func(context.Context) (any, error) { return s.stateGet(topic) }
		if !s.ops.tryGo(func() { s.answer(ctx, req, get) }) {
			s.answer(ctx, req, get)
		}
	case "shutdown":
		s.async(ctx, req, func(context.Context) (any, error) {
			s.stopAll()
			// Before the answer: a frame the host writes once it has read the answer is
			// never dispatched.
			s.conn.stopDispatch()
			return struct{}{}, nil
		}, func() { s.shutdownOnce.Do(func() { close(s.shutdown) }) })
	default:
		s.reply(ctx, req, nil, errorf(jsonrpc2.CodeMethodNotFound, "method %q not found: see docs/protocol.md for the methods of protocol version 1", quoteBounded(req.Method)))
	}
}

// requestOnly are the methods whose caller needs the answer (a result, or an error that
// says the action did not happen), so they are never run as notifications: a relay
// checks requests, and a notification it let through unchecked must not act either.
var requestOnly = map[string]bool{
	"initialize": true, "channel.open": true, "channel.close": true, "channel.refresh": true,
	"channel.status": true, "channel.list": true, "state.set": true, "state.get": true, "state.patch": true, "state.delete": true,
	"shutdown": true,
}

// refuseNotification reports a request-only method sent without an id: it cannot be
// answered, so the host learns of it through an error notification, and the stderr log.
func (s *Server) refuseNotification(method string) {
	err := errorf(jsonrpc2.CodeInvalidRequest, "%s was sent as a notification (no id), so it was not run: %s is a request, send it with an id", method, method)
	s.log.Warn("notification refused", "method", method, "err", err)
	s.notifyError(&engine.SyncError{Phase: engine.PhaseProtocol, Err: err})
}

// async runs fn on the bounded group and answers with its result; after runs once the
// answer is sent. When the group is full it answers -32003 instead and reports false.
func (s *Server) async(ctx context.Context, req *jsonrpc2.Request, fn func(context.Context) (any, error), after ...func()) bool {
	started := s.ops.tryGo(func() { s.answer(ctx, req, fn, after...) })
	if !started {
		s.reply(ctx, req, nil, s.errInFlightLimit())
	}
	return started
}

// errInFlightLimit answers a request refused because --max-in-flight are waiting.
func (s *Server) errInFlightLimit() error {
	return errorf(CodeLimitReached, "%d requests are already in flight (--max-in-flight): retry when some have been answered", s.cfg.MaxInFlight)
}

// answer runs fn and answers with its result, a panic as -32603; after runs once the
// answer is sent.
func (s *Server) answer(ctx context.Context, req *jsonrpc2.Request, fn func(context.Context) (any, error), after ...func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "method", req.Method, "panic", r)
			s.reply(ctx, req, nil, errorf(jsonrpc2.CodeInternalError, "internal error in %s: %v (the sidecar keeps serving; please report this)", req.Method, r))
		}
		for _, f := range after {
			f()
		}
	}()
	result, err := fn(ctx)
	s.reply(ctx, req, result, err)
}

// reply answers a request; a notification gets no answer, but its error is logged.
func (s *Server) reply(_ context.Context, req *jsonrpc2.Request, result any, err error) {
	s.conn.reply(req, result, err)
}

// call sends a request to the host and returns its raw result.
// timeout names the call timeout that applies ("" for --call-timeout).
func (s *Server) call(ctx context.Context, method string, params any, timeout string) (json.RawMessage, error) {
	return s.conn.call(ctx, method, params, timeout)
}

// notifyError sends an error notification with the full context.
func (s *Server) notifyError(serr *engine.SyncError) {
	if err := s.conn.notify("error", errorContext(serr)); err != nil {
		s.log.Debug("error notification not sent", "err", err)
	}
}
