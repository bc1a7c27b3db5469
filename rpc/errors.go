package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/store"
)

// The sidecar's own error codes, next to the standard JSON-RPC ones. docs/protocol.md
// documents each; this is the one place that assigns them.
const (
	CodeUnknownChannel     = -32001
	CodeChannelExists      = -32002
	CodeLimitReached       = -32003
	CodeSourceConflict     = -32004
	CodeRevisionConflict   = -32005
	CodeUnsupportedVersion = -32006
	CodeSyncFailed         = -32007
	CodeShuttingDown       = -32008
	CodeStoreWriteFailed   = -32009
	CodeDeltaRejected      = -32011 // the window's answer to an apply whose patch it did not apply
)

// Error is an error that keeps its JSON-RPC code (and data) all the way to the wire.
type Error struct {
	Code    int64
	Message string
	Data    any
}

func (e *Error) Error() string { return e.Message }

// Is matches by code, so errors.Is(err, &Error{Code: CodeUnknownChannel}) works however
// the error was wrapped.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

func errorf(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidParams(format string, args ...any) *Error {
	return errorf(jsonrpc2.CodeInvalidParams, "invalid params: "+format, args...)
}

// toWire maps any error a handler returns to the JSON-RPC error object. This table is
// the only place where Go errors become codes.
func toWire(err error) *jsonrpc2.Error {
	var (
		rpcErr   *Error
		fieldErr *engine.FieldError
		syncErr  *engine.SyncError
		wireErr  *jsonrpc2.Error
		panicErr *engine.PanicError
		conflict *store.ConflictError
		tooLarge *store.TooLargeError
		fileFull *store.FileTooLargeError
		writeErr *store.WriteError
	)
	switch {
	case errors.As(err, &panicErr):
		return wireError(jsonrpc2.CodeInternalError, "internal error: "+err.Error()+" (the sidecar keeps serving; please report this)", nil)
	case errors.As(err, &conflict):
		return wireError(CodeRevisionConflict, conflict.Error(), map[string]engine.Revision{"currentRevision": conflict.Current})
	case errors.As(err, &tooLarge):
		return wireError(CodeLimitReached, tooLarge.Error(), map[string]int{"limit": tooLarge.Limit, "size": tooLarge.Size})
	case errors.As(err, &fileFull):
		return wireError(CodeLimitReached, fileFull.Error(), map[string]int64{"limit": fileFull.Limit, "size": fileFull.Size})
	case errors.As(err, &writeErr):
		return wireError(CodeStoreWriteFailed, writeErr.Error(), nil)
	case errors.As(err, &syncErr):
		return wireError(CodeSyncFailed, syncErr.Error(), errorContext(syncErr))
	case errors.As(err, &rpcErr):
		return wireError(rpcErr.Code, rpcErr.Message, rpcErr.Data)
	case errors.As(err, &fieldErr):
		return wireError(jsonrpc2.CodeInvalidParams, "invalid params: "+fieldErr.Error(), map[string]string{"field": fieldErr.Field})
	case errors.Is(err, engine.ErrStopped):
		return wireError(CodeUnknownChannel, "the channel was closed before this call finished", nil)
	case errors.As(err, &wireErr):
		return wireErr
	case errors.Is(err, context.DeadlineExceeded):
		return wireError(CodeSyncFailed, err.Error(), nil)
	case errors.Is(err, context.Canceled):
		// Request contexts end only when Serve stops (the input ended, a shutdown, a
		// signal): the request was cut short by that, not by a bug.
		return wireError(CodeShuttingDown, "the sidecar is stopping, so this request was not finished: "+err.Error(), nil)
	default:
		return wireError(jsonrpc2.CodeInternalError, "internal error: "+err.Error(), nil)
	}
}

// maxHostEcho bounds what of a host's error answer the sidecar passes back (its message,
// its data): it is echoed in the answer to the request that failed and again in its
// error notification, so a host answering with a megabyte would make both a megabyte.
const maxHostEcho = 1024

// hostError is the host's error answer to method, its message and data bounded.
func hostError(method string, wireErr *jsonrpc2.Error) *Error {
	message := wireErr.Message
	if len(message) > maxHostEcho {
		n := maxHostEcho
		for n > 0 && !utf8.RuneStart(message[n]) {
			n--
		}
		message = fmt.Sprintf("%s… (%d bytes, cut)", message[:n], len(wireErr.Message))
	}
	hostErr := &Error{Code: wireErr.Code, Message: fmt.Sprintf("the host answered %s with error %d: %s", method, wireErr.Code, message)}
	if wireErr.Data != nil {
		if data := *wireErr.Data; len(data) <= maxHostEcho {
			hostErr.Data = data
		} else {
			hostErr.Message += fmt.Sprintf(" (its error data of %d bytes is left out, over %d)", len(data), maxHostEcho)
		}
	}
	return hostErr
}

func wireError(code int64, message string, data any) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: code, Message: message}
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			raw := json.RawMessage(b)
			e.Data = &raw
		}
	}
	return e
}

// errorObject is the {code?, message, data?} of an error notification.
type errorObject struct {
	Code    *int64          `json:"code,omitempty"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// errorParams is the error notification: the seed's SyncErrorContext on the wire.
type errorParams struct {
	Phase            engine.Phase    `json:"phase"`
	Channel          string          `json:"channel,omitempty"`
	Topic            string          `json:"topic,omitempty"`
	Error            errorObject     `json:"error"`
	SourceEvent      json.RawMessage `json:"sourceEvent,omitempty"`
	LocalRevision    engine.Revision `json:"localRevision,omitempty"`
	EventRevision    engine.Revision `json:"eventRevision,omitempty"`
	SnapshotRevision engine.Revision `json:"snapshotRevision,omitempty"`
	Attempt          int             `json:"attempt,omitempty"`
	WillRetry        *bool           `json:"willRetry,omitempty"`
	NextDelayMs      *int64          `json:"nextDelayMs,omitempty"`
}

func errorContext(e *engine.SyncError) errorParams {
	p := errorParams{
		Phase: e.Phase, Channel: e.Channel, Topic: e.Topic,
		Error:         describe(e.Err),
		SourceEvent:   e.SourceEvent,
		LocalRevision: e.LocalRevision, EventRevision: e.EventRevision, SnapshotRevision: e.SnapshotRevision,
		Attempt: e.Attempt,
	}
	if e.Attempt > 0 {
		willRetry := e.WillRetry
		p.WillRetry = &willRetry
		if e.WillRetry {
			ms := e.NextDelay.Milliseconds()
			p.NextDelayMs = &ms
		}
	}
	return p
}

// describe turns a cause into {code?, message, data?}, keeping the host's own JSON-RPC
// error code and data when the cause was an error answer from the host.
func describe(err error) errorObject {
	var (
		wireErr *jsonrpc2.Error
		rpcErr  *Error
	)
	switch {
	case errors.As(err, &wireErr):
		code := wireErr.Code
		obj := errorObject{Code: &code, Message: err.Error()}
		if wireErr.Data != nil {
			obj.Data = *wireErr.Data
		}
		return obj
	case errors.As(err, &rpcErr):
		code := rpcErr.Code
		obj := errorObject{Code: &code, Message: err.Error()}
		if raw, ok := rpcErr.Data.(json.RawMessage); ok {
			obj.Data = raw // the host's own error data, passed back untouched
		}
		return obj
	default:
		var fieldErr *engine.FieldError
		if errors.As(err, &fieldErr) {
			code := int64(jsonrpc2.CodeInvalidParams)
			return errorObject{Code: &code, Message: err.Error()}
		}
		return errorObject{Message: err.Error()}
	}
}
