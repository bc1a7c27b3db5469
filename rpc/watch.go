package rpc

import "github.com/state-sync/state-sync/engine"

// StoreWatcher is a Store whose topics also change outside this sidecar (the NATS store:
// other sidecars write to the same bucket). A Store that implements it gets fn, which
// invalidates the topic's channels, for every change until stop is called; the store
// calls fn outside its own locks.
type StoreWatcher interface {
	Watch(fn func(engine.InvalidationEvent)) (stop func())
}

// watchStore routes the store's outside changes to the channels of their topic, when the
// store has any; the returned stop ends that.
func (s *Server) watchStore() (stop func()) {
	w, ok := s.cfg.Store.(StoreWatcher)
	if !ok {
		return func() {}
	}
	return w.Watch(func(event engine.InvalidationEvent) {
		for _, sink := range s.topicSinks(event.Topic) {
			sink.Invalidate(event)
		}
	})
}
