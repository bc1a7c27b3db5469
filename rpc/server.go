// Package rpc is the sidecar's JSON-RPC 2.0 server: framing, method handlers, calls
// back to the host, and the one table that maps engine errors to JSON-RPC codes.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"golang.org/x/sync/errgroup"

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
	// the topic was never set.
	Get(topic string) (engine.Snapshot, error)
	// Set writes data and returns the new revision. expected, when not nil, makes it a
	// compare-and-set.
	Set(topic string, data json.RawMessage, expected *engine.Revision) (engine.Revision, error)
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

	stream *stream
	conn   *jsonrpc2.Conn // set by Serve before the stream starts reading
	ops    errgroup.Group // handlers that wait on the host; bounded by MaxInFlight
	callID atomic.Uint64

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed when a shutdown request has stopped every engine

	mu           sync.Mutex
	topics       map[string]*topic
	channels     map[string]*channel
	shuttingDown bool
}

type topic struct {
	name     string
	source   Source
	channels map[string]*channel
	shared   *engine.SharedProvider // source host only
	// sinks are the subscribed sinks of channels, what an invalidate of the topic reaches.
	// Guarded by Server.mu and replaced, never changed in place, so that a reader can use
	// it after unlocking: routing an event costs no allocation and no map walk.
	sinks []engine.Sink
}

// withoutSink returns sinks without sink, as a new slice.
func withoutSink(sinks []engine.Sink, sink engine.Sink) []engine.Sink {
	out := make([]engine.Sink, 0, len(sinks))
	for _, s := range sinks {
		if s != sink {
			out = append(out, s)
		}
	}
	return out
}

type channel struct {
	name   string
	topic  *topic
	source Source
	engine *engine.Channel
	sink   engine.Sink // set while subscribed; guarded by Server.mu
}

// NewServer returns a server; Serve runs it.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		shutdown: make(chan struct{}),
		topics:   map[string]*topic{},
		channels: map[string]*channel{},
	}
	s.ops.SetLimit(cfg.MaxInFlight)
	return s
}

// Serve speaks the protocol on r and w until r ends (the host is gone), a shutdown
// request, or ctx ends (a signal). Before it returns every engine is stopped and every
// goroutine it started has exited. A Server serves once.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	var trace *tracer
	if s.cfg.Trace != nil {
		trace = &tracer{w: s.cfg.Trace}
	}
	s.stream = newStream(s.cfg.Framing, r, w, s.cfg.MaxMessageBytes, trace)
	connLog := log.New(slogWriter{s.log}, "", 0)
	// Handlers get connCtx, which ends when the connection does (as jsonrpc2's own context
	// would): the stream hands requests straight to Handle, not through jsonrpc2.
	connCtx, cancelConn := context.WithCancel(ctx)
	defer cancelConn()
	conn := jsonrpc2.NewConn(connCtx, s.stream, noIncoming{}, jsonrpc2.SetLogger(connLog))
	s.conn = conn
	s.stream.start(func(req *jsonrpc2.Request, params json.RawMessage) { s.handle(connCtx, req, params) })

	reason := "signal"
	select {
	case <-conn.DisconnectNotify():
		reason = "stdin closed"
		cancelConn()
	case <-s.shutdown:
		reason = "shutdown request"
	case <-ctx.Done():
	}
	s.log.Info("stopping", "reason", reason)
	s.stopAll()
	_ = conn.Close()
	cancelConn()
	_ = s.ops.Wait()
	return nil
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

// noIncoming is the jsonrpc2.Handler of a connection whose stream dispatches every
// request itself (see stream): jsonrpc2 never reads a message, it only writes replies.
type noIncoming struct{}

func (noIncoming) Handle(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) {}

// handle runs on the stream's read goroutine, so it answers quick methods at once and
// hands methods that wait on the host to a bounded group of goroutines: a slow host
// answer never blocks other channels.
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
		respond(s.stateSet(params))
	case "state.get":
		respond(s.stateGet(params))
	case "shutdown":
		s.async(ctx, req, func(context.Context) (any, error) {
			s.stopAll()
			return struct{}{}, nil
		}, func() { s.shutdownOnce.Do(func() { close(s.shutdown) }) })
	default:
		s.reply(ctx, req, nil, errorf(jsonrpc2.CodeMethodNotFound, "method %q not found: see docs/protocol.md for the methods of protocol version 1", quoteBounded(req.Method)))
	}
}

func (s *Server) isShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shuttingDown
}

// async runs fn on the bounded group and answers with its result; after runs once the
// answer is sent. When the group is full it answers -32003 instead and reports false.
func (s *Server) async(ctx context.Context, req *jsonrpc2.Request, fn func(context.Context) (any, error), after ...func()) bool {
	started := s.ops.TryGo(func() error {
		s.answer(ctx, req, fn, after...)
		return nil
	})
	if !started {
		s.reply(ctx, req, nil, errorf(CodeLimitReached, "%d requests are already in flight (--max-in-flight): retry when some have been answered", s.cfg.MaxInFlight))
	}
	return started
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
func (s *Server) reply(ctx context.Context, req *jsonrpc2.Request, result any, err error) {
	if req.Notif {
		if err != nil {
			s.log.Warn("notification failed", "method", req.Method, "err", err)
		}
		return
	}
	if err != nil {
		if sendErr := s.conn.ReplyWithError(ctx, req.ID, toWire(err)); sendErr != nil {
			s.log.Debug("reply not sent", "method", req.Method, "err", sendErr)
		}
		return
	}
	if sendErr := s.conn.Reply(ctx, req.ID, result); sendErr != nil {
		s.log.Debug("reply not sent", "method", req.Method, "err", sendErr)
	}
}

// call sends a request to the host and returns its raw result. Calls bypass jsonrpc2:
// the stream encodes them (writeCall) and hands their answers back (expect), so neither
// params nor results are ever re-encoded or decoded; a host error answer keeps its code
// and data.
func (s *Server) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := s.callID.Add(1)
	key := strconv.FormatUint(id, 10)
	answer := s.stream.expect(key)
	select {
	case <-s.stream.gone:
		s.stream.forget(key)
		return nil, fmt.Errorf("%s: %w", method, jsonrpc2.ErrClosed)
	default:
	}
	if err := s.stream.writeCall(key, method, params); err != nil {
		s.stream.forget(key)
		return nil, fmt.Errorf("sending %s to the host: %w", method, err)
	}
	var (
		a   callAnswer
		err error
	)
	select {
	case a = <-answer:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.stream.gone:
		err = jsonrpc2.ErrClosed
	}
	if err != nil {
		s.stream.forget(key)
		select {
		case a = <-answer: // the answer came in at the same moment: take it
			err = nil
		default:
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("the host did not answer %s within the call timeout (%s): %w", method, s.cfg.CallTimeout, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if wireErr := a.err; wireErr != nil {
		hostErr := &Error{Code: wireErr.Code, Message: fmt.Sprintf("the host answered %s with error %d: %s", method, wireErr.Code, wireErr.Message)}
		if wireErr.Data != nil {
			hostErr.Data = *wireErr.Data
		}
		return nil, hostErr
	}
	return a.result, nil
}

// notifyError sends an error notification with the full context.
func (s *Server) notifyError(serr *engine.SyncError) {
	if err := s.conn.Notify(context.Background(), "error", errorContext(serr)); err != nil {
		s.log.Debug("error notification not sent", "err", err)
	}
}

// slogWriter routes jsonrpc2's own log lines to the sidecar's logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("jsonrpc2", "msg", string(p))
	return len(p), nil
}
