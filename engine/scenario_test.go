package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Engine scenarios: testdata/scenarios/*.json, each file a list of
// {description, topic?, hostIgnoresCancel?, steps}. The step language is documented in
// docs/lifecycle.md ("Contract scenarios"); the same files are meant to run through the
// JSON-RPC layer, where start is channel.open, stop is channel.close, expectFetch is a
// getSnapshot request, expectApply an apply request and expectError an error
// notification.

type scenario struct {
	Description string `json:"description"`
	Topic       string `json:"topic"`
	// HostIgnoresCancel makes the fake provider and applier wait for the scenario's
	// answer even after the engine cancelled the call.
	HostIgnoresCancel bool              `json:"hostIgnoresCancel"`
	Steps             []json.RawMessage `json:"steps"`
}

type scenarioStep struct {
	Op      string `json:"op"`
	Comment string `json:"comment"`

	Revision Revision        `json:"revision"`
	Epoch    *string         `json:"epoch"`
	Topic    string          `json:"topic"`
	Data     json.RawMessage `json:"data"`
	Payload  json.RawMessage `json:"payload"`
	Message  string          `json:"message"`

	Phase            Phase      `json:"phase"`
	Error            string     `json:"error"`
	Field            string     `json:"field"`
	EventRevision    Revision   `json:"eventRevision"`
	SnapshotRevision Revision   `json:"snapshotRevision"`
	Count            *int       `json:"count"`
	State            State      `json:"state"`
	Revisions        []Revision `json:"revisions"`
	Subscribed       *bool      `json:"subscribed"`
	Async            bool       `json:"async"`
	SubscribeError   string     `json:"subscribeError"`
}

// asyncCall is a blocking engine call running on its own goroutine.
type asyncCall struct {
	done chan struct{}
	err  error
}

func goCall(f func() error) *asyncCall {
	a := &asyncCall{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.err = f()
	}()
	return a
}

func (a *asyncCall) returned() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *asyncCall) wait(t testing.TB, what string) error {
	t.Helper()
	receive(t, a.done, what+" to return")
	return a.err
}

type scenarioRunner struct {
	t     *testing.T
	sc    scenario
	env   *fakeEnv
	c     *Channel
	start *asyncCall
	stop  *asyncCall
	// refreshes in the order they were called; expectRefreshed takes the oldest.
	refreshes []*asyncCall
	fetch     *fetchCall
	apply     *applyCall
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "scenarios", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no scenario files in testdata/scenarios")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			var scenarios []scenario
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&scenarios), "decoding %s", file)
			require.NotEmpty(t, scenarios, "%s has no scenarios", file)
			for _, sc := range scenarios {
				t.Run(sc.Description, func(t *testing.T) {
					runScenario(t, sc)
				})
			}
		})
	}
}

func runScenario(t *testing.T, sc scenario) {
	if sc.Topic == "" {
		sc.Topic = testTopic
	}
	env := newFakeEnv(t)
	env.ignoreCancel = sc.HostIgnoresCancel
	r := &scenarioRunner{t: t, sc: sc, env: env}
	r.c = env.channel(func(cfg *Config) { cfg.Topic = sc.Topic })
	require.NotEmpty(t, sc.Steps, "scenario has no steps")
	for i, raw := range sc.Steps {
		var st scenarioStep
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&st), "step %d: %s", i+1, raw)
		t.Logf("step %d: %s", i+1, raw)
		r.run(st, fmt.Sprintf("step %d (%s)", i+1, st.Op))
	}
	// Every error the engine reported must have been expected by the scenario.
	env.expectNoError(r.c)
}

func (r *scenarioRunner) run(st scenarioStep, where string) {
	t, env, c := r.t, r.env, r.c
	switch st.Op {
	case "start":
		env.mu.Lock()
		env.subscribeErr = nil
		if st.SubscribeError != "" {
			env.subscribeErr = errors.New(st.SubscribeError)
		}
		env.mu.Unlock()
		r.start = goCall(func() error { return c.Start(context.Background()) })
		// Wait until Start subscribed and asked for its first snapshot, or returned, so
		// that the next step happens after it.
		eventually(t, where+": Start to subscribe and ask for its first snapshot", func() bool {
			if r.start.returned() {
				return true
			}
			ok := false
			c.view(func(s *chanState) { ok = s.phase == StateRunning || s.phase == StateStarting && len(s.waiters) > 0 })
			return ok
		})
	case "expectStarted":
		require.NotNil(t, r.start, "%s: no start step before", where)
		err := r.start.wait(t, where+": Start")
		require.NoError(t, err, "%s: Start: got error, want success", where)
	case "expectStartFailed":
		require.NotNil(t, r.start, "%s: no start step before", where)
		r.expectFailure(r.start.wait(t, where+": Start"), st, where)
	case "invalidate":
		topic := st.Topic
		if topic == "" {
			topic = r.sc.Topic
		}
		ev := map[string]any{"topic": topic, "revision": st.Revision}
		if st.Epoch != nil {
			ev["epoch"] = *st.Epoch
		}
		payload, err := json.Marshal(ev)
		require.NoError(t, err)
		c.InvalidateRaw(payload)
	case "invalidateRaw":
		require.NotNil(t, st.Payload, "%s: payload is required", where)
		c.InvalidateRaw(st.Payload)
	case "expectFetch":
		r.fetch = env.expectFetch()
	case "answerSnapshot", "failSnapshot":
		if r.fetch == nil {
			r.fetch = env.expectFetch()
		}
		if st.Op == "failSnapshot" {
			env.fail(r.fetch, errors.New(st.Message))
		} else {
			s := Snapshot{Revision: st.Revision, Data: st.Data}
			if st.Epoch != nil {
				s.Epoch = *st.Epoch
			}
			env.answer(r.fetch, s)
		}
		r.fetch = nil
	case "expectApply":
		r.apply = r.expectApply(st, where)
	case "answerApply", "failApply":
		if r.apply == nil {
			require.NotEmpty(t, st.Revision, "%s: with no expectApply before, revision is required", where)
			r.apply = r.expectApply(st, where)
		} else if st.Revision != "" {
			require.Equal(t, st.Revision, r.apply.snapshot.Revision, "%s: apply revision", where)
		}
		var err error
		if st.Op == "failApply" {
			err = errors.New(st.Message)
		}
		env.ack(r.apply, err)
		r.apply = nil
	case "expectNoFetch":
		env.expectNoFetch(c)
	case "expectNoApply":
		env.expectNoApply(c)
	case "expectIdle":
		env.expectNoFetch(c)
		env.expectNoApply(c)
	case "refresh":
		r.refreshes = append(r.refreshes, goRefresh(t, c))
	case "expectRefreshed":
		require.NotEmpty(t, r.refreshes, "%s: no refresh step waiting", where)
		call := r.refreshes[0]
		r.refreshes = r.refreshes[1:]
		err := call.wait(t, where+": Refresh")
		if st.Phase == "" && st.Error == "" {
			require.NoError(t, err, "%s: Refresh: got error, want success", where)
			return
		}
		r.expectFailure(err, st, where)
	case "stop":
		r.stop = goCall(func() error { c.Stop(); return nil })
		if !st.Async {
			require.NoError(t, r.stop.wait(t, where+": Stop"))
			return
		}
		// Stop has begun once the channel says stopped; what follows happens after.
		eventually(t, where+": Stop to begin", func() bool {
			return r.stop.returned() || c.Status().State == StateStopped
		})
	case "expectStopped":
		require.NotNil(t, r.stop, "%s: no stop step before", where)
		require.NoError(t, r.stop.wait(t, where+": Stop"))
	case "expectLocalRevision":
		env.settle(c)
		got := c.LocalRevision()
		require.Equal(t, st.Revision, got, "%s: local revision: got %s, want %s", where, got, st.Revision)
	case "expectState":
		env.settle(c)
		got := c.Status().State
		require.Equal(t, st.State, got, "%s: state: got %s, want %s", where, got, st.State)
	case "expectError":
		serr := env.expectError(st.Phase)
		if st.Field != "" {
			var ferr *FieldError
			require.True(t, errors.As(serr, &ferr), "%s: got error %v, want a *FieldError naming %q", where, serr, st.Field)
			require.Equal(t, st.Field, ferr.Field, "%s: field: got %q (%v), want %q", where, ferr.Field, serr, st.Field)
		}
		if st.EventRevision != "" {
			require.Equal(t, st.EventRevision, serr.EventRevision, "%s: eventRevision of %v", where, serr)
		}
		if st.SnapshotRevision != "" {
			require.Equal(t, st.SnapshotRevision, serr.SnapshotRevision, "%s: snapshotRevision of %v", where, serr)
		}
		require.Equal(t, r.sc.Topic, serr.Topic, "%s: topic of %v", where, serr)
	case "expectNoError":
		env.expectNoError(c)
	case "expectFetchCount":
		require.NotNil(t, st.Count, "%s: count is required", where)
		env.settle(c)
		got := env.fetchTotal()
		require.Equal(t, *st.Count, got, "%s: getSnapshot calls so far: got %d, want %d", where, got, *st.Count)
	case "expectApplied":
		env.settle(c)
		got := env.appliedRevisions()
		want := st.Revisions
		if want == nil {
			want = []Revision{}
		}
		if got == nil {
			got = []Revision{}
		}
		require.Equal(t, want, got, "%s: revisions applied so far: got %v, want %v", where, got, want)
	case "expectSubscribed":
		require.NotNil(t, st.Subscribed, "%s: subscribed is required", where)
		env.settle(c)
		require.Equal(t, *st.Subscribed, env.subscribed(), "%s: subscribed", where)
	default:
		t.Fatalf("%s: unknown op %q", where, st.Op)
	}
}

func (r *scenarioRunner) expectApply(st scenarioStep, where string) *applyCall {
	call := r.env.expectApply(st.Revision)
	if st.Epoch != nil {
		require.Equal(r.t, *st.Epoch, call.snapshot.Epoch, "%s: apply epoch", where)
	}
	if st.Data != nil {
		require.JSONEq(r.t, string(st.Data), string(call.snapshot.Data), "%s: apply data", where)
	}
	return call
}

// expectFailure checks err against a step's error (ErrStopped as "stopped",
// ErrNotStarted as "notStarted") or phase.
func (r *scenarioRunner) expectFailure(err error, st scenarioStep, where string) {
	t := r.t
	require.Error(t, err, "%s: got success, want a failure (%s%s)", where, st.Error, st.Phase)
	switch st.Error {
	case "":
	case "stopped":
		require.ErrorIs(t, err, ErrStopped, "%s", where)
	case "notStarted":
		require.ErrorIs(t, err, ErrNotStarted, "%s", where)
	default:
		t.Fatalf("%s: unknown error %q (want stopped or notStarted)", where, st.Error)
	}
	if st.Phase != "" {
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "%s: got %T %v, want a *SyncError of phase %s", where, err, err, st.Phase)
		require.Equal(t, st.Phase, serr.Phase, "%s: phase of %v", where, serr)
	}
}

// goRefresh calls Refresh on its own goroutine and returns once the refresh is
// registered or Refresh returned.
func goRefresh(t testing.TB, c *Channel) *asyncCall {
	t.Helper()
	waiters := func() (n int) {
		c.view(func(s *chanState) { n = len(s.waiters) })
		return n
	}
	before := waiters()
	call := goCall(func() error { return c.Refresh(context.Background()) })
	eventually(t, "Refresh to register", func() bool {
		if call.returned() {
			return true
		}
		return waiters() > before
	})
	return call
}
