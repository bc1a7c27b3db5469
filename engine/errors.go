package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Phase says which step of the protocol failed, as in the seed's SyncErrorContext.
type Phase string

const (
	PhaseSubscribe   Phase = "subscribe"
	PhaseGetSnapshot Phase = "getSnapshot"
	PhaseProtocol    Phase = "protocol"
	PhaseApply       Phase = "apply"
	PhaseRefresh     Phase = "refresh"
)

var (
	// ErrStopped is returned by Start and Refresh on a channel that was stopped.
	ErrStopped = errors.New("channel is stopped")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("channel is already started: call Start once, Stop to end it")
	// ErrNotStarted is returned by Refresh before Start.
	ErrNotStarted = errors.New("channel is not started: call Start first")
)

// SyncError is one failure with the context to debug it: the seed's SyncErrorContext.
// It is both what OnError receives and what Start and Refresh return. Revisions are ""
// when they do not apply; Err keeps the cause (and its JSON-RPC code, if any) for
// errors.Is and errors.As.
type SyncError struct {
	Phase            Phase
	Topic            string
	Channel          string
	Err              error
	SourceEvent      json.RawMessage
	LocalRevision    Revision
	EventRevision    Revision
	SnapshotRevision Revision
	Attempt          int
	WillRetry        bool
	NextDelay        time.Duration
}

func (e *SyncError) Error() string {
	where := e.Topic
	if e.Channel != "" {
		where = e.Channel + " (" + e.Topic + ")"
	}
	return fmt.Sprintf("%s: %s: %v", where, e.Phase, e.Err)
}

func (e *SyncError) Unwrap() error { return e.Err }
