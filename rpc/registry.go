package rpc

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/state-sync/state-sync/engine"
)

// registry is the server's routing table: which channels are open, on which topics, and
// which engines an invalidation reaches. Its fields are the only state Server.mu guards.
//
// Invariants, each kept by the methods of this file and nowhere else:
//   - a channel is in channels iff it is in its topic's channels; a topic is in topics
//     iff it has at least one channel (a channel whose open fails is taken out again);
//   - a topic's sinks are the sinks of its subscribed channels, in subscription order;
//   - every channel of a topic has the topic's source.
type registry struct {
	mu sync.Mutex

	// topics by name. Written under mu by add and detach; read under mu.
	topics map[string]*topic
	// channels by name. Written under mu by add and detach; read under mu.
	channels map[string]*channel
	// shuttingDown is set under mu by stopAll, never cleared; read under mu. Requests
	// other than shutdown are refused from then on.
	shuttingDown bool
}

type topic struct {
	name   string
	source Source // set at creation, never changed: read without mu
	// channels of the topic by name. Written and read under Server.mu.
	channels map[string]*channel
	// shared is the topic's provider for source host (nil otherwise). Set under
	// Server.mu by add when the topic's first channel opens, never changed after.
	shared *engine.SharedProvider
	// fanout holds the subscribed sinks of channels, what an invalidate of the topic
	// reaches. Set at creation; its members change under Server.mu, and it may be used
	// after unlocking: routing an event costs no allocation and no map walk, and a
	// stale event costs the same at 1 channel and at 1,000 (see engine.Fanout).
	fanout *engine.Fanout
	// hist is the data and patches the topic's delta channels share (deltas.go). Set
	// under Server.mu by add with the first such channel, never changed after.
	hist *history
}

type channel struct {
	name   string          // never changed: read without mu
	topic  *topic          // never changed: read without mu
	source Source          // never changed: read without mu
	engine *engine.Channel // set by add before the channel is published, never changed
	// sink is the engine's sink while subscribed, nil otherwise. Written and read under
	// Server.mu.
	sink engine.Sink
	// deltas is the channel's delta state when it opted in (options.deltas or paths),
	// nil otherwise. Set by add before the channel is published, never changed.
	deltas *channelDeltas
}

func (r *registry) isShuttingDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shuttingDown
}

// channel returns the open channel named name, or nil.
func (r *registry) channel(name string) *channel {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.channels[name]
}

// detach removes a channel from the routing tables and returns the shared provider to
// close once the channel's engine has stopped, if it was the topic's last channel.
func (r *registry) detach(ch *channel) *engine.SharedProvider {
	r.mu.Lock()
	defer r.mu.Unlock()
	var closeShared *engine.SharedProvider
	if r.channels[ch.name] == ch {
		delete(r.channels, ch.name)
	}
	t := ch.topic
	delete(t.channels, ch.name)
	if ch.sink != nil {
		t.fanout.Remove(ch.sink)
	}
	if len(t.channels) == 0 && r.topics[t.name] == t {
		delete(r.topics, t.name)
		closeShared = t.shared
	}
	return closeShared
}

// unregister removes a stopped channel; the last channel of a topic takes the topic with it.
func (r *registry) unregister(ch *channel) {
	if shared := r.detach(ch); shared != nil {
		shared.Close()
	}
}

// openTopic returns the topic name is open with, or nil.
func (r *registry) openTopic(name string) *topic {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.topics[name]
}

// topicSinks returns the sinks of the subscribed channels of topic name. The slice must
// not be changed.
func (r *registry) topicSinks(name string) []engine.Sink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.topics[name]; t != nil {
		return t.fanout.Sinks() // replaced, never changed in place: safe to use after unlocking
	}
	return nil
}

// subscription routes a topic's events to a channel's engine from the moment Subscribe
// returns until unsubscribe.
type subscription struct {
	r  *registry
	ch *channel
}

func (sub subscription) Subscribe(_ context.Context, sink engine.Sink) (func(), error) {
	sub.r.mu.Lock()
	sub.ch.sink = sink
	t := sub.ch.topic
	if t.channels[sub.ch.name] == sub.ch { // not closed meanwhile
		t.fanout.Add(sink)
	}
	sub.r.mu.Unlock()
	return func() {
		sub.r.mu.Lock()
		if sub.ch.sink != nil {
			t.fanout.Remove(sub.ch.sink)
		}
		sub.ch.sink = nil
		sub.r.mu.Unlock()
	}, nil
}

// add opens a channel in the tables, checked against what is open: its name is free,
// the channel limit, and its topic's source.
func (s *Server) add(p openParams, source Source, cfg engine.Config) (*channel, error) {
	deltaOpts, err := parseDeltaOptions(p.Options)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.channels[p.Channel]; exists {
		return nil, errorf(CodeChannelExists, "channel %q is already open: close it first or pick another name", quoteBounded(p.Channel))
	}
	if len(s.channels) >= s.cfg.MaxChannels {
		return nil, errorf(CodeLimitReached, "%d channels are open, the limit (--max-channels): close unused channels first", len(s.channels))
	}
	t := s.topics[p.Topic]
	if t == nil {
		if source != SourceStore && s.cfg.Store != nil && s.cfg.Store.Has(p.Topic) {
			return nil, errorf(CodeSourceConflict, "topic %q holds data in the embedded store, so its source is \"store\", not %q", quoteBounded(p.Topic), source)
		}
		t = &topic{name: p.Topic, source: source, channels: map[string]*channel{}, fanout: engine.NewFanout()}
	} else if t.source != source {
		return nil, errorf(CodeSourceConflict, "topic %q is open with source %q: a topic has one source at a time, so open this channel with source %q too", quoteBounded(p.Topic), t.source, t.source)
	}

	ch := &channel{name: p.Channel, topic: t, source: source}
	cfg.Topic, cfg.Channel = p.Topic, p.Channel
	cfg.Subscriber = subscription{r: &s.registry, ch: ch}
	timeout := ""
	if p.Options != nil && p.Options.CallTimeoutMs != nil {
		timeout = fmt.Sprintf("%s, the channel's options.callTimeoutMs", cfg.CallTimeout)
	}
	if deltaOpts.active() {
		ch.deltas = &channelDeltas{opts: deltaOpts, hist: s.historyFor(t, source)}
	}
	cfg.Applier = applier{s: s, ch: ch, timeout: timeout, d: ch.deltas}
	cfg.OnError = s.notifyError
	switch source {
	case SourceStore:
		cfg.Provider = storeProvider{store: s.cfg.Store, topic: p.Topic}
	case SourceHost:
		if t.shared == nil {
			t.shared = engine.NewSharedProvider(hostProvider{s: s, topic: p.Topic, timeout: timeout}, cfg.CallTimeout)
		}
		cfg.Provider = t.shared
	case SourceChannel:
		cfg.Provider = channelProvider{s: s, topic: p.Topic, channel: p.Channel, timeout: timeout}
	}
	eng, err := engine.NewChannel(cfg)
	if err != nil {
		return nil, err
	}
	ch.engine = eng
	t.channels[ch.name] = ch
	s.topics[t.name] = t
	s.channels[ch.name] = ch
	return ch, nil
}

// target is what an invalidate reaches: one channel's sink, or a topic's fanout.
type target struct {
	sink   engine.Sink
	fanout *engine.Fanout
}

// invalidate hands event to the target and returns how many sinks it reached.
func (t target) invalidate(event engine.InvalidationEvent) int {
	switch {
	case t.sink != nil:
		t.sink.Invalidate(event)
		return 1
	case t.fanout != nil:
		return t.fanout.Invalidate(event)
	}
	return 0
}

// route returns what an invalidate of topicName reaches: one channel's sink when channel
// is set, else every subscribed channel of the topic.
func (s *Server) route(topicName string, channel *string) (target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if channel != nil {
		ch := s.channels[*channel]
		switch {
		case ch == nil:
			return target{}, errorf(CodeUnknownChannel, "invalidate for channel %q, which is not open", quoteBounded(*channel))
		case ch.topic.name != topicName:
			return target{}, invalidParams("topic: channel %q syncs topic %q, not %q", quoteBounded(*channel), quoteBounded(ch.topic.name), quoteBounded(topicName))
		case ch.sink == nil:
			return target{}, nil
		}
		return target{sink: ch.sink}, nil
	}
	t := s.topics[topicName]
	if (t != nil && t.source == SourceStore) || (t == nil && s.cfg.Store != nil && s.cfg.Store.Has(topicName)) {
		return target{}, errorf(CodeSourceConflict, "topic %q is served by the embedded store, which invalidates its channels itself: write with state.set instead", quoteBounded(topicName))
	}
	if t == nil {
		return target{}, nil
	}
	return target{fanout: t.fanout}, nil
}

// openChannels returns the open channels, by name.
func (r *registry) openChannels() []*channel {
	r.mu.Lock()
	channels := make([]*channel, 0, len(r.channels))
	for _, ch := range r.channels {
		channels = append(channels, ch)
	}
	r.mu.Unlock()
	sort.Slice(channels, func(i, j int) bool { return channels[i].name < channels[j].name })
	return channels
}
