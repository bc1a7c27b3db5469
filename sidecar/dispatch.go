package sidecar

import (
	"context"
	"errors"
	"fmt"

	"github.com/sourcegraph/jsonrpc2"
)

// job is one request from the sidecar, waiting for a worker.
type job struct {
	ctx    context.Context
	id     jsonrpc2.ID
	method string
	params []byte
}

// dispatcher is the jsonrpc2.Handler. jsonrpc2 calls it on its reading goroutine and
// reads nothing else until it returns, so it never waits: it queues a request for the
// worker pool, answers at once with an error when the queue is full, and delivers
// notifications itself, in order. Never waiting matters: a host that never answers
// (the sidecar timed the call out long ago, and the protocol has no cancel) holds its
// workers until the connection ends, and a reader waiting behind them would stop the
// answers to the host's own calls.
type dispatcher struct{ c *Client }

func (d dispatcher) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	c := d.c
	params := c.stream.last.params
	if req.Notif {
		if c.opts.Handler != nil {
			c.opts.Handler.HandleNotification(req.Method, params)
		}
		return
	}
	if c.opts.Handler == nil {
		_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "this host answers no requests (it started the sidecar with no sidecar.Options.Handler): " + req.Method})
		return
	}
	if ctx.Err() != nil {
		return // Close or Kill: the answer could not be sent
	}
	select {
	case c.jobs <- job{ctx: ctx, id: req.ID, method: req.Method, params: params}:
	default:
		_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: CodeHostBusy, Message: fmt.Sprintf(
			"the host is busy: %d HandleRequest calls running and %d waiting: it answered %s with this instead (raise sidecar.Options.MaxHandlers or MaxQueued, or answer faster)",
			c.workerCount, cap(c.jobs), req.Method)})
	}
}

// onRecv sees every message jsonrpc2 decodes; an answer that matches no call and has a
// null id is the sidecar saying it could not parse a frame, which only the raw bytes show
// (jsonrpc2 decodes a null id as ID{}).
func (c *Client) onRecv(req *jsonrpc2.Request, resp *jsonrpc2.Response) {
	if req == nil && resp != nil && c.stream.last.nullID && c.opts.Handler != nil {
		c.opts.Handler.HandleNotification("$error", c.stream.last.raw)
	}
}

// work runs requests until reading has ended and the queue is closed.
func (c *Client) work() {
	defer c.workers.Done()
	for j := range c.jobs {
		if j.ctx.Err() != nil {
			continue // queued when the connection ended: no answer can be sent
		}
		result, err := c.opts.Handler.HandleRequest(j.ctx, j.method, j.params)
		// A failed answer means the conn is closed: the sidecar is gone and wants none.
		_ = c.reply(j, result, err)
	}
}

func (c *Client) reply(j job, result any, err error) error {
	if err == nil {
		return c.conn.Reply(j.ctx, j.id, result)
	}
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) {
		rpcErr = &RPCError{Code: -32000, Message: err.Error()}
	}
	wire := &jsonrpc2.Error{Code: rpcErr.Code, Message: rpcErr.Message}
	if len(rpcErr.Data) > 0 {
		data := rpcErr.Data
		wire.Data = &data
	}
	return c.conn.ReplyWithError(j.ctx, j.id, wire)
}
