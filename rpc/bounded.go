package rpc

import "sync"

// bounded counts the requests that wait on the host or the store (open, refresh, close,
// shutdown, the store's methods), at most limit at once (--max-in-flight), and lets Serve
// wait for them all. It replaces an errgroup.Group because a slot must be holdable
// without a goroutine: channel.open takes one and gives it back when the engine's start
// completes (engine.Channel.StartAsync), so 1,000 opens in flight are 1,000 counted
// slots, not 1,000 parked goroutines (≈ 4 MiB of stacks at that scale).
type bounded struct {
	mu    sync.Mutex
	limit int        // set by NewServer, never changed
	n     int        // slots taken, under mu
	idle  *sync.Cond // signalled under mu when n drops to 0
}

func newBounded(limit int) *bounded {
	b := &bounded{limit: limit}
	b.idle = sync.NewCond(&b.mu)
	return b
}

// acquire takes a slot unless all are taken; the holder must release it.
func (b *bounded) acquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= b.limit {
		return false
	}
	b.n++
	return true
}

// release gives a slot back.
func (b *bounded) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n--
	if b.n == 0 {
		b.idle.Broadcast()
	}
}

// tryGo runs f on a new goroutine holding a slot, unless all are taken (false).
func (b *bounded) tryGo(f func()) bool {
	if !b.acquire() {
		return false
	}
	go func() {
		defer b.release()
		f()
	}()
	return true
}

// wait returns once every slot is released. Call it when nothing takes slots any more.
func (b *bounded) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n > 0 {
		b.idle.Wait()
	}
}
