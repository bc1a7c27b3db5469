package rpc

import (
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// --max-in-flight counts slots, held with or without a goroutine (channel.open holds one
// until its engine has started), and Serve's wait returns only once every one is back.
func TestBoundedCountsSlotsWithAndWithoutGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBounded(2)
		require.True(t, b.acquire(), "the first slot")
		release := make(chan struct{})
		require.True(t, b.tryGo(func() { <-release }), "the second slot, on a goroutine")
		require.False(t, b.acquire(), "a third slot over the limit of 2")
		require.False(t, b.tryGo(func() { t.Error("ran over the limit") }), "a third slot over the limit of 2")

		waited := make(chan struct{})
		go func() { b.wait(); close(waited) }()
		b.release() // the slot held without a goroutine
		synctest.Wait()
		select {
		case <-waited:
			t.Fatal("wait returned while the goroutine's slot was held")
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case <-waited:
		default:
			t.Fatal("wait did not return once every slot was back")
		}
		require.True(t, b.acquire(), "a slot once all were released")
		b.release()
	})
}
