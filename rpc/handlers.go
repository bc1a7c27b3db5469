package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/strictjson"
)

// ProtocolVersion is the wire protocol this sidecar speaks.
const ProtocolVersion = "1"

// decode reads params into v, naming the field in the error. Absent params read as {};
// unknown members are ignored (forward compatibility).
func decode(params json.RawMessage, v any) error { return decodeParams(params, v, false) }

// decodeStrict is decode for params where a misspelt optional member would silently
// change behaviour (a compare-and-set turned into a blind write, a timeout ignored):
// unknown members are -32602.
func decodeStrict(params json.RawMessage, v any) error { return decodeParams(params, v, true) }

func decodeParams(params json.RawMessage, v any, strict bool) error {
	params = bytes.TrimSpace(params)
	if len(params) == 0 || bytes.Equal(params, []byte("null")) {
		params = []byte("{}")
	}
	if params[0] != '{' {
		return invalidParams("params must be a JSON object")
	}
	// strictjson, not encoding/json: the relay checks a message as JavaScript reads it,
	// so the sidecar must refuse what the two would read differently (a case twin, a
	// repeated member, a lone surrogate) rather than pick its own reading.
	if err := (strictjson.Options{DisallowUnknown: strict}).Decode(params, v); err != nil {
		return paramsError(err)
	}
	return nil
}

// paramsError words a strictjson refusal of params as -32602, naming the member.
func paramsError(err error) error {
	var serr *strictjson.Error
	if errors.As(err, &serr) && serr.Kind != strictjson.Syntax {
		e := invalidParams("%s", serr.Error())
		if serr.Path != "" {
			e.Data = map[string]string{"field": serr.Path}
		}
		return e
	}
	return invalidParams("%v", err)
}

func requireChannel(name string) error {
	if name == "" {
		return invalidParams("channel: is missing: want the channel's name as given to channel.open")
	}
	return engine.ValidateChannel(name)
}

// initialize

type initializeParams struct {
	ProtocolVersion string `json:"protocolVersion"`
	Client          *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"client"`
}

type initializeResult struct {
	ProtocolVersion string       `json:"protocolVersion"`
	Server          serverInfo   `json:"server"`
	Capabilities    capabilities `json:"capabilities"`
}

type serverInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type capabilities struct {
	Sources         []Source         `json:"sources"`
	Framing         Framing          `json:"framing"`
	Store           string           `json:"store,omitempty"`
	DefaultSource   Source           `json:"defaultSource"`
	MaxMessageBytes int              `json:"maxMessageBytes"`
	MaxChannels     int              `json:"maxChannels"`
	CallTimeoutMs   int64            `json:"callTimeoutMs"`
	Deltas          *deltaCapability `json:"deltas"`
}

func (s *Server) initialize(params json.RawMessage) (any, error) {
	var p initializeParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if p.ProtocolVersion == "" {
		return nil, invalidParams("protocolVersion: is missing: send \"1\"")
	}
	if p.ProtocolVersion != ProtocolVersion {
		return nil, errorf(CodeUnsupportedVersion, "protocol version %q is not supported by this sidecar (speaks %q): update the sdk-ts package or the sidecar binary so that they match", quoteBounded(p.ProtocolVersion), ProtocolVersion)
	}
	if p.Client != nil {
		s.log.Info("host connected", "client", p.Client.Name, "clientVersion", p.Client.Version)
	}
	sources := []Source{SourceHost, SourceChannel}
	store := ""
	if s.cfg.Store != nil {
		sources = append([]Source{SourceStore}, sources...)
		store = s.cfg.Store.Kind()
	}
	return initializeResult{
		ProtocolVersion: ProtocolVersion,
		Server:          serverInfo{Name: "statesync-sidecar", Version: s.cfg.Version},
		Capabilities: capabilities{
			Sources: sources, Framing: s.cfg.Framing, Store: store, DefaultSource: s.cfg.DefaultSource,
			MaxMessageBytes: s.cfg.MaxMessageBytes, MaxChannels: s.cfg.MaxChannels,
			CallTimeoutMs: s.cfg.CallTimeout.Milliseconds(), Deltas: s.deltaCapability(),
		},
	}, nil
}

// channel.open

type openParams struct {
	Channel string       `json:"channel"`
	Topic   string       `json:"topic"`
	Source  string       `json:"source"`
	Options *openOptions `json:"options"`
}

// MinResyncIntervalMs is the floor of options.resyncIntervalMs: each resync is a
// getSnapshot to the host, and 1 ms would ask it thousands of times a second.
const MinResyncIntervalMs = 100

type openOptions struct {
	CallTimeoutMs    *int64            `json:"callTimeoutMs"`
	ResyncIntervalMs *int64            `json:"resyncIntervalMs"`
	Retry            *retryOption      `json:"retry"`
	Throttling       *throttlingOption `json:"throttling"`
	Deltas           *bool             `json:"deltas"` // see deltas.go
	Paths            *[]string         `json:"paths"`
}

// throttlingOption is @statesync/core's InvalidationThrottlingOptions, plus maxWaitMs.
type throttlingOption struct {
	DebounceMs int64 `json:"debounceMs"`
	ThrottleMs int64 `json:"throttleMs"`
	MaxWaitMs  int64 `json:"maxWaitMs"`
	Leading    *bool `json:"leading"`  // absent: true
	Trailing   *bool `json:"trailing"` // absent: true
}

type retryOption struct {
	MaxAttempts    int     `json:"maxAttempts"`
	InitialDelayMs int64   `json:"initialDelayMs"`
	Multiplier     float64 `json:"multiplier"`
	MaxDelayMs     int64   `json:"maxDelayMs"`
	Jitter         float64 `json:"jitter"`
}

type openResult struct {
	Channel       string          `json:"channel"`
	Topic         string          `json:"topic"`
	Source        Source          `json:"source"`
	LocalRevision engine.Revision `json:"localRevision"`
}

func (s *Server) handleOpen(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	ch, err := s.register(params)
	if err != nil {
		s.reply(ctx, req, nil, err)
		return
	}
	// The open holds one of the --max-in-flight slots until its engine's first refresh
	// completes, but no goroutine: the engine answers through done, on its worker.
	if !s.ops.acquire() {
		s.unregister(ch) // refused (-32003): leave nothing behind
		s.reply(ctx, req, nil, s.errInFlightLimit())
		return
	}
	ch.engine.StartAsync(ctx, func(err error) {
		s.answer(ctx, req, func(context.Context) (any, error) {
			if err != nil {
				s.unregister(ch)
				if errors.Is(err, engine.ErrStopped) {
					return nil, errorf(CodeUnknownChannel, "channel %q was closed before it finished opening", quoteBounded(ch.name))
				}
				return nil, err
			}
			return openResult{Channel: ch.name, Topic: ch.topic.name, Source: ch.source, LocalRevision: ch.engine.LocalRevision()}, nil
		}, s.ops.release)
	})
}

// register checks an open request and adds the channel, synchronously, so that a close
// that follows on the wire finds it.
func (s *Server) register(params json.RawMessage) (*channel, error) {
	var p openParams
	if err := decodeStrict(params, &p); err != nil {
		return nil, err
	}
	if err := requireChannel(p.Channel); err != nil {
		return nil, err
	}
	if p.Topic == "" {
		return nil, invalidParams("topic: is missing: want the name of the state to sync, e.g. \"app-config\"")
	}
	if _, err := engine.ValidateTopic(p.Topic); err != nil {
		return nil, err
	}
	source := s.cfg.DefaultSource
	if p.Source != "" {
		var err error
		if source, err = ParseSource(p.Source); err != nil {
			return nil, invalidParams("source: %v", err)
		}
	}
	if source == SourceStore && s.cfg.Store == nil {
		return nil, errorf(CodeSourceConflict, "source \"store\" is not available in this sidecar: open the channel with source \"host\" or \"channel\"")
	}
	cfg, err := s.engineConfig(p)
	if err != nil {
		return nil, err
	}

	return s.add(p, source, cfg)
}

func (s *Server) engineConfig(p openParams) (engine.Config, error) {
	cfg := engine.Config{CallTimeout: s.cfg.CallTimeout, Logger: s.log}
	o := p.Options
	if o == nil {
		return cfg, nil
	}
	if o.CallTimeoutMs != nil {
		if *o.CallTimeoutMs <= 0 {
			return cfg, invalidParams("options.callTimeoutMs: want a positive number of milliseconds")
		}
		cfg.CallTimeout = time.Duration(*o.CallTimeoutMs) * time.Millisecond
	}
	if o.ResyncIntervalMs != nil {
		if ms := *o.ResyncIntervalMs; ms < 0 || (ms > 0 && ms < MinResyncIntervalMs) {
			return cfg, invalidParams("options.resyncIntervalMs: %d is not allowed: want 0 (off) or at least the minimum of %d milliseconds", ms, MinResyncIntervalMs)
		}
		cfg.ResyncInterval = time.Duration(*o.ResyncIntervalMs) * time.Millisecond
	}
	if r := o.Retry; r != nil {
		if r.MaxAttempts < 0 || r.InitialDelayMs < 0 || r.MaxDelayMs < 0 || r.Jitter < 0 || r.Jitter > 1 || r.Multiplier < 0 {
			return cfg, invalidParams("options.retry: maxAttempts, initialDelayMs, maxDelayMs and multiplier must not be negative, jitter is 0..1")
		}
		cfg.Retry = &engine.RetryPolicy{
			MaxAttempts:  r.MaxAttempts,
			InitialDelay: time.Duration(r.InitialDelayMs) * time.Millisecond,
			Multiplier:   r.Multiplier,
			MaxDelay:     time.Duration(r.MaxDelayMs) * time.Millisecond,
			Jitter:       r.Jitter,
		}
	}
	if th := o.Throttling; th != nil {
		t, err := th.engine()
		if err != nil {
			return cfg, err
		}
		cfg.Throttling = t
	}
	return cfg, nil
}

// engine checks the option field by field, so that the error names the field to fix.
func (th *throttlingOption) engine() (*engine.Throttling, error) {
	for _, f := range []struct {
		name string
		ms   int64
	}{{"debounceMs", th.DebounceMs}, {"throttleMs", th.ThrottleMs}, {"maxWaitMs", th.MaxWaitMs}} {
		if f.ms < 0 {
			return nil, invalidParams("options.throttling.%s: got %d, want 0 (off) or a positive number of milliseconds", f.name, f.ms)
		}
	}
	if th.MaxWaitMs > 0 && th.MaxWaitMs < th.DebounceMs {
		return nil, invalidParams("options.throttling.maxWaitMs: got %d, shorter than debounceMs %d: it bounds the debounce's wait, so make it at least debounceMs, or leave it out", th.MaxWaitMs, th.DebounceMs)
	}
	if th.MaxWaitMs > 0 && th.DebounceMs == 0 {
		return nil, invalidParams("options.throttling.maxWaitMs: got %d with no debounceMs: it bounds a debounce; set debounceMs, or use throttleMs alone", th.MaxWaitMs)
	}
	leading := th.Leading == nil || *th.Leading
	trailing := th.Trailing == nil || *th.Trailing
	if th.ThrottleMs > 0 && !leading && !trailing {
		return nil, invalidParams("options.throttling: leading and trailing are both false, so no event would ever refresh the channel: set one of them true")
	}
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	return &engine.Throttling{
		Debounce: ms(th.DebounceMs), MaxWait: ms(th.MaxWaitMs), Throttle: ms(th.ThrottleMs),
		NoLeading: !leading, NoTrailing: !trailing,
	}, nil
}

// channel.close

type channelParams struct {
	Channel string `json:"channel"`
}

type closeResult struct {
	Channel       string          `json:"channel"`
	LocalRevision engine.Revision `json:"localRevision"`
}

func (s *Server) lookup(params json.RawMessage) (*channel, error) {
	var p channelParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if err := requireChannel(p.Channel); err != nil {
		return nil, err
	}
	ch := s.channel(p.Channel)
	if ch == nil {
		return nil, errorf(CodeUnknownChannel, "channel %q is not open: open it with channel.open first", quoteBounded(p.Channel))
	}
	return ch, nil
}

func (s *Server) handleClose(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	ch, err := s.lookup(params)
	if err != nil {
		s.reply(ctx, req, nil, err)
		return
	}
	// Out of the routing table at once, so no event reaches it after this request.
	shared := s.detach(ch)
	stop := func(context.Context) (any, error) {
		ch.engine.Stop() // waits for any apply in flight: none is sent after the answer
		if shared != nil {
			shared.Close()
		}
		return closeResult{Channel: ch.name, LocalRevision: ch.engine.LocalRevision()}, nil
	}
	// A close is never refused: the channel is already out of the tables, and its engine
	// must stop. When the group is full it stops here; Stop cancels the engine's calls to
	// the host, so it does not wait on an answer this goroutine would have to read.
	if !s.ops.tryGo(func() { s.answer(ctx, req, stop) }) {
		s.answer(ctx, req, stop)
	}
}

func (s *Server) handleRefresh(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	ch, err := s.lookup(params)
	if err != nil {
		s.reply(ctx, req, nil, err)
		return
	}
	s.async(ctx, req, func(ctx context.Context) (any, error) {
		if err := ch.engine.Refresh(ctx); err != nil {
			return nil, err
		}
		return closeResult{Channel: ch.name, LocalRevision: ch.engine.LocalRevision()}, nil
	})
}

// channel.status, channel.list

type channelStatus struct {
	Channel       string          `json:"channel"`
	Topic         string          `json:"topic"`
	Source        Source          `json:"source"`
	State         engine.State    `json:"state"`
	LocalRevision engine.Revision `json:"localRevision"`
	Epoch         string          `json:"epoch,omitempty"`
	Counters      counters        `json:"counters"`
}

func statusOf(ch *channel) channelStatus {
	st := ch.engine.Status()
	return channelStatus{Channel: ch.name, Topic: ch.topic.name, Source: ch.source, State: st.State, LocalRevision: st.LocalRevision, Epoch: st.Epoch, Counters: countersOf(ch, st.Counters)}
}

func (s *Server) status(params json.RawMessage) (any, error) {
	ch, err := s.lookup(params)
	if err != nil {
		return nil, err
	}
	return statusOf(ch), nil
}

type listResult struct {
	Channels []channelStatus `json:"channels"`
}

func (s *Server) list() listResult {
	channels := s.openChannels()
	out := listResult{Channels: make([]channelStatus, 0, len(channels))}
	for _, ch := range channels {
		out.Channels = append(out.Channels, statusOf(ch))
	}
	return out
}

// invalidate

type invalidateParams struct {
	Channel *string `json:"channel"`
}

type invalidateResult struct {
	Delivered int `json:"delivered"`
}

func (s *Server) handleInvalidate(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	delivered, err := s.invalidate(params)
	if err != nil && req.Notif {
		// Nobody to answer: the host learns of it through an error notification.
		serr := &engine.SyncError{Phase: engine.PhaseProtocol, Err: err, SourceEvent: boundedRaw(params)}
		var p invalidateParams
		if strictjson.Decode(params, &p) == nil && p.Channel != nil {
			serr.Channel = *p.Channel
		}
		var ev struct {
			Topic string `json:"topic"`
		}
		if strictjson.Decode(params, &ev) == nil {
			serr.Topic = ev.Topic
		}
		s.notifyError(serr)
		return
	}
	if req.Notif {
		return // nothing to answer: not even the result boxed for reply
	}
	s.reply(ctx, req, invalidateResult{Delivered: delivered}, err)
}

func (s *Server) invalidate(params json.RawMessage) (int, error) {
	event, err := engine.ParseEvent(params)
	if err != nil {
		return 0, err
	}
	var channel *string
	// Most invalidations name no channel: skip a second decode of the params then (and
	// its allocation: p escapes through decode). A key spelt with escapes ("\u0063hannel")
	// or in another case ("Channel", which the decode refuses) still takes it.
	if hasNameFold(params, "channel") || bytes.Contains(params, []byte(`\u`)) {
		var p invalidateParams
		if err := decode(params, &p); err != nil {
			return 0, err
		}
		channel = p.Channel
	}
	if channel != nil && *channel == "" {
		return 0, invalidParams("channel: is empty: leave it out to reach every channel of the topic, or name one channel")
	}
	to, err := s.route(event.Topic, channel)
	if err != nil {
		return 0, err
	}
	return to.invalidate(event), nil
}

// hasNameFold reports whether b holds the string "name" in any ASCII case, as a member
// name would be spelt ("channel" holds no letter that folds outside ASCII, like s or k).
func hasNameFold(b []byte, name string) bool {
	for i := bytes.IndexByte(b, '"'); i >= 0 && i+len(name)+1 < len(b); {
		if b[i+len(name)+1] == '"' && bytes.EqualFold(b[i+1:i+1+len(name)], []byte(name)) {
			return true
		}
		next := bytes.IndexByte(b[i+1:], '"')
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}

func boundedRaw(params json.RawMessage) json.RawMessage {
	if len(params) <= 1024 && json.Valid(params) {
		return params
	}
	b, _ := json.Marshal(quoteBounded(string(params)))
	return b
}

// state.set, state.get

type setParams struct {
	Topic            string          `json:"topic"`
	Data             json.RawMessage `json:"data"`
	ExpectedRevision *string         `json:"expectedRevision"`
	SourceID         string          `json:"sourceId"`
}

type setResult struct {
	Topic    string          `json:"topic"`
	Revision engine.Revision `json:"revision"`
}

// handleStoreWrite answers state.set and state.delete. begin decides the write on the read
// goroutine, so that revisions follow the order of the requests on the wire; finish waits
// for it to be durable (a file rewrite and fsync) on the bounded group, holding no lock:
// other messages are not held up meanwhile. When the group is full it waits here, slowing
// the reader down rather than refusing a write whose revision is already taken.
func (s *Server) handleStoreWrite(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage, begin func(json.RawMessage) (finish func(context.Context) (any, error), err error)) {
	finish, err := begin(params)
	if err != nil {
		s.reply(ctx, req, nil, err)
		return
	}
	if !s.ops.tryGo(func() { s.answer(ctx, req, finish) }) {
		s.answer(ctx, req, finish)
	}
}

// storeWriteTarget checks what state.set and state.delete share: the topic, the
// expectedRevision of a compare-and-set, and that no channel has the topic open with
// another source. No channel.open can slip in between this check and the store's Begin:
// both run on the read goroutine, and a topic's source is decided only there (in add).
func (s *Server) storeWriteTarget(method, topic string, expectedRevision *string) (*engine.Revision, error) {
	if topic == "" {
		return nil, invalidParams("topic: is missing")
	}
	if _, err := engine.ValidateTopic(topic); err != nil {
		return nil, err
	}
	var expected *engine.Revision
	if expectedRevision != nil {
		rev, err := engine.ParseRevision(*expectedRevision)
		if err != nil {
			return nil, &engine.FieldError{Field: "expectedRevision", Err: err}
		}
		expected = &rev
	}
	if t := s.openTopic(topic); t != nil && t.source != SourceStore {
		return nil, errorf(CodeSourceConflict, "topic %q is open with source %q, so the host owns its state: %s works only on store topics", quoteBounded(topic), t.source, method)
	}
	return expected, nil
}

// finishStoreWrite waits for a store write to be durable, then invalidates the topic's
// channels (unless the write changed nothing) and answers {topic, revision}.
func (s *Server) finishStoreWrite(topic, sourceID string, wait func() (engine.Revision, error), changed bool) func(context.Context) (any, error) {
	return func(context.Context) (any, error) {
		rev, err := wait()
		if err != nil {
			return nil, err
		}
		if changed {
			event := engine.InvalidationEvent{Topic: topic, Revision: rev, Epoch: s.cfg.Store.Epoch(), SourceID: sourceID}
			for _, sink := range s.topicSinks(topic) {
				sink.Invalidate(event)
			}
		}
		return setResult{Topic: topic, Revision: rev}, nil
	}
}

// beginSet checks a state.set and begins the write; finish waits for it to be durable,
// then invalidates the topic's channels.
func (s *Server) beginSet(params json.RawMessage) (finish func(context.Context) (any, error), err error) {
	if s.cfg.Store == nil {
		return nil, errorf(CodeSourceConflict, "the embedded store is not available in this sidecar")
	}
	var p setParams
	if err := decodeStrict(params, &p); err != nil {
		return nil, err
	}
	expected, err := s.storeWriteTarget("state.set", p.Topic, p.ExpectedRevision)
	if err != nil {
		return nil, err
	}
	if len(p.Data) == 0 {
		return nil, invalidParams("data: is missing: send the topic's new state (any JSON value)")
	}
	wait, err := s.cfg.Store.Begin(p.Topic, p.Data, expected)
	if err != nil {
		return nil, err
	}
	s.patched.forget(p.Topic)
	return s.finishStoreWrite(p.Topic, p.SourceID, wait, true), nil
}

type getParams struct {
	Topic string `json:"topic"`
}

type getResult struct {
	Topic    string          `json:"topic"`
	Revision engine.Revision `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Deleted  bool            `json:"deleted,omitempty"` // state.delete: no data, at the tombstone's revision
}

// checkGet checks a state.get on the read goroutine, so that a refusal is answered in
// wire order (before the answer to anything sent after it), and returns its topic.
func (s *Server) checkGet(params json.RawMessage) (string, error) {
	if s.cfg.Store == nil {
		return "", errorf(CodeSourceConflict, "the embedded store is not available in this sidecar")
	}
	var p getParams
	if err := decode(params, &p); err != nil {
		return "", err
	}
	if p.Topic == "" {
		return "", invalidParams("topic: is missing")
	}
	if _, err := engine.ValidateTopic(p.Topic); err != nil {
		return "", err
	}
	return p.Topic, nil
}

// stateGet answers a state.get checked by checkGet.
func (s *Server) stateGet(topic string) (any, error) {
	p := getParams{Topic: topic}
	snapshot, err := s.cfg.Store.Get(p.Topic)
	if err != nil {
		return nil, err
	}
	return getResult{Topic: p.Topic, Revision: snapshot.Revision, Epoch: snapshot.Epoch, Data: snapshot.Data, Deleted: snapshot.Deleted}, nil
}
