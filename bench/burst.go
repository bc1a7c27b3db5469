package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// burstResult is one burst: K invalidations on one topic with N channels.
type burstResult struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	Channels  int    `json:"channels"`
	Events    int    `json:"events"`
	Advancing bool   `json:"hostStateAdvancing"`
	// Publications is how many states the host published during the burst.
	Publications int   `json:"publications"`
	GetSnapshots int64 `json:"getSnapshots"`
	// Bound is what the engine guarantees for this burst (see boundOf), BoundRule how.
	Bound     int64  `json:"bound"`
	BoundRule string `json:"boundRule"`
	// Repeats counts getSnapshot requests that got the same state as the same provider's
	// previous one: a fetch the engine's contract says never happens.
	Repeats     int      `json:"repeats"`
	AppliesMin  uint32   `json:"appliesPerChannelMin"`
	AppliesMax  uint32   `json:"appliesPerChannelMax"`
	AppliesMean float64  `json:"appliesPerChannelMean"`
	ReadMs      float64  `json:"everyEventReadMs"`
	ConvergeMs  float64  `json:"convergeMs"`
	ErrorNotifs int64    `json:"errorNotifications"`
	FirstErrors []string `json:"firstErrors,omitempty"`
}

// burstPublishEvery is how many events an advancing host sends per state it publishes.
const burstPublishEvery = 100

// burst sends K invalidations for revisions base+1 … base+K as fast as the pipe takes
// them and measures until every event was read and every channel applied base+K.
//
// Quiet (advancing false): the host's state is at base+K before the first event is sent,
// DESIGN §4's burst: the host changed its state K times and announces each change.
// Advancing: the host publishes base+100, base+200, … as it writes the events, each state
// right before the events that announce it, like a host streaming changes as they happen;
// a getSnapshot answered mid-burst returns an intermediate state, so more are needed.
//
// "Converged" is the later of two moments: the last channel's apply of base+K read, and
// the answer to a channel.status request written after the last event (the sidecar reads
// its input in order, so that answer means it has read the whole burst). getSnapshot and
// apply counts are taken once the sidecar has exited, so a late fetch counts too.
func burst(bin, name, source string, channels, events int, advancing bool) (res burstResult, err error) {
	res = burstResult{Name: name, Source: source, Channels: channels, Events: events, Advancing: advancing}
	data := payload(1 << 10)
	h, err := startSidecar(bin, nil, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	const base = 1000
	h.setSnapshot(base, data)
	if err := h.openChannels(channels, topicName, source, setupTimeout); err != nil {
		return res, err
	}
	final := uint64(base + events)
	per := chunkEvents
	if advancing {
		per = burstPublishEvery
	}
	type chunk struct {
		b    []byte
		last uint64
	}
	var chunks []chunk
	var cur []byte
	for i := 1; i <= events; i++ {
		cur = invalidateLine(cur, base+uint64(i))
		if i%per == 0 || i == events {
			chunks = append(chunks, chunk{cur, base + uint64(i)})
			cur = nil
		}
	}
	fetchesBefore := h.getSnapshots.Load()
	appliesBefore := h.appliesOf(channels)
	publishedBefore := h.published.Load()
	h.recordAnswers(true)
	if !advancing {
		h.setSnapshot(final, data)
	}
	t := h.expectAll(channels, final)
	t0 := time.Now()
	for _, c := range chunks {
		var before func()
		if advancing {
			before = func() { h.setSnapshot(c.last, data) }
		}
		h.w.sendBulk(before, c.b)
	}
	status := h.request("channel.status", fmt.Appendf(nil, `{"channel":%q}`, channelName(0)), true)
	if _, err := h.await(status, roundTimeout, "burst "+name+": channel.status after the last event"); err != nil {
		return res, err
	}
	readAt := time.Now()
	at, err := h.wait(t, roundTimeout, "burst "+name)
	if err != nil {
		return res, err
	}
	res.ReadMs = ms(readAt.Sub(t0))
	res.ConvergeMs = ms(max(at.Sub(t0), readAt.Sub(t0)))
	if err := h.close(10 * time.Second); err != nil {
		return res, err
	}
	res.Publications = int(h.published.Load() - publishedBefore)
	res.GetSnapshots = h.getSnapshots.Load() - fetchesBefore
	providers := 1
	if source == "channel" {
		providers = channels
	}
	res.Bound, res.BoundRule, res.Repeats = boundOf(h.answers(), h.published.Load(), providers, advancing)
	after := h.appliesOf(channels)
	applies := make([]uint32, channels)
	var sum float64
	for i := range applies {
		applies[i] = after[i] - appliesBefore[i]
		sum += float64(applies[i])
	}
	res.AppliesMin, res.AppliesMax = slices.Min(applies), slices.Max(applies)
	res.AppliesMean = sum / float64(channels)
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, nil
}

// boundOf is the most getSnapshot requests the engine may send in a burst (DESIGN §4 and
// docs/performance.md, "What a burst may cost"). answers holds, per provider (the topic's
// shared fetch, or each channel's own), the seq of the state each of its getSnapshot got;
// last is the seq of the final state.
//
// A provider fetches again only for an event newer than its last answer, and the host
// publishes a state before announcing it, so every fetch after a provider's first gets a
// state published after the previous answer: at most 1 + (states published after its
// first answer). Quiet, the host published nothing after the first answer and the bound
// is DESIGN §4's: 2 per provider (the second for a fetch already in flight when the final
// state was published). repeats counts answers that broke the rule.
func boundOf(answers map[string][]uint64, last uint64, providers int, advancing bool) (bound int64, rule string, repeats int) {
	for _, seqs := range answers {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				repeats++
			}
		}
	}
	if !advancing {
		return 2 * int64(providers), fmt.Sprintf("2 per provider × %d", providers), repeats
	}
	for _, seqs := range answers {
		bound += 1 + int64(last-seqs[0])
	}
	return bound, fmt.Sprintf("Σ 1 + states published after the provider's first answer, %d providers", providers), repeats
}

// chunkEvents is how many notifications one write carries in quiet bursts and ingest.
const chunkEvents = 512

func invalidateLine(b []byte, rev uint64) []byte {
	b = append(b, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"`+topicName+`","revision":"`...)
	b = strconv.AppendUint(b, rev, 10)
	return append(b, "\"}}\n"...)
}

// closeHost closes h and reports a bad exit through err when nothing else failed.
func closeHost(h *host, err *error) {
	if cerr := h.close(10 * time.Second); cerr != nil && *err == nil {
		*err = cerr
	}
}
