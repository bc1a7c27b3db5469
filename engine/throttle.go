package engine

import (
	"errors"
	"fmt"
	"time"
)

// Throttling spaces the refreshes that events ask for, with the options of
// @statesync/core's InvalidationThrottlingOptions (docs/lifecycle.md, "Throttling").
//
// A burst is the events accepted since the last refresh began. With Debounce it is ready
// Debounce after its last event, and, with MaxWait, never later than MaxWait after its
// first; without Debounce it is ready at once. With Throttle, refreshes begin at most once
// per Throttle: a burst ready when none began within Throttle begins at once (unless
// NoLeading, then Throttle later); one ready sooner waits until Throttle after the last
// refresh began (unless NoTrailing, then it is dropped: the next event or refresh serves
// it). Throttling only delays and merges refreshes, so a burst never costs more refreshes
// than without it.
type Throttling struct {
	Debounce time.Duration // quiet time after the last event; 0: none
	MaxWait  time.Duration // bound on Debounce's wait from the first event; 0: none; needs Debounce
	Throttle time.Duration // minimum time between refreshes begun; 0: none
	// NoLeading, NoTrailing turn off an edge of Throttle (@statesync/core's leading and
	// trailing, both true by default). Both set is refused: no event would refresh.
	NoLeading  bool
	NoTrailing bool
}

// check refuses a Throttling that cannot mean what its fields say.
func (t *Throttling) check() error {
	switch {
	case t.Debounce < 0 || t.MaxWait < 0 || t.Throttle < 0:
		return fmt.Errorf("engine: Config.Throttling: durations must not be negative (debounce %v, maxWait %v, throttle %v)", t.Debounce, t.MaxWait, t.Throttle)
	case t.MaxWait > 0 && t.Debounce == 0:
		return fmt.Errorf("engine: Config.Throttling.MaxWait %v bounds a debounce, and Debounce is 0: set Debounce, or use Throttle alone", t.MaxWait)
	case t.MaxWait > 0 && t.MaxWait < t.Debounce:
		return fmt.Errorf("engine: Config.Throttling.MaxWait %v is shorter than Debounce %v: make it at least Debounce", t.MaxWait, t.Debounce)
	case t.Throttle > 0 && t.NoLeading && t.NoTrailing:
		return errors.New("engine: Config.Throttling: NoLeading and NoTrailing together would never refresh on an event: keep one edge")
	}
	return nil
}

// due says when the burst of s may begin its refresh, at now: at (ok, at ≤ now: begin),
// later (ok, at > now: wait until at), or never (!ok: drop the burst, NoTrailing).
func (t *Throttling) due(s *chanState) (at time.Time, ok bool) {
	ready := s.firstEvent
	if t.Debounce > 0 {
		ready = s.lastEvent.Add(t.Debounce)
		if t.MaxWait > 0 {
			if bound := s.firstEvent.Add(t.MaxWait); bound.Before(ready) {
				ready = bound
			}
		}
	}
	if t.Throttle == 0 {
		return ready, true
	}
	windowEnd := s.lastBegin.Add(t.Throttle)
	switch {
	case !ready.Before(windowEnd) && !t.NoLeading: // ready outside any window: leading edge
		return ready, true
	case !ready.Before(windowEnd): // no leading edge: a window of its own, then trailing
		return ready.Add(t.Throttle), true
	case !t.NoTrailing:
		return windowEnd, true
	}
	return time.Time{}, false
}
