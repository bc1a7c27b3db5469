// Package sidecar is a Go host for statesync-sidecar: it spawns the binary and speaks the
// protocol over its stdin/stdout, as a Tauri core or an Electron main process does. The
// e2e tests, the benchmark harness and the demo use it; a Go or Wails host can too.
package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Handler answers what the sidecar sends the host. HandleRequest runs on its own
// goroutine per request, so a slow answer for one channel never blocks the others.
type Handler interface {
	// HandleRequest answers getSnapshot and apply. A non-nil error is sent as an error
	// answer; use *RPCError to choose the code.
	HandleRequest(ctx context.Context, method string, params json.RawMessage) (result any, err error)
	// HandleNotification receives notifications (error).
	HandleNotification(method string, params json.RawMessage)
}

// Options says how to run the sidecar.
type Options struct {
	Path    string   // the statesync-sidecar binary
	Args    []string // its flags
	Handler Handler  // nil: requests are answered with -32601, notifications dropped
	Stderr  io.Writer
	// Framing is "ndjson" (default) or "lsp"; it must match the --framing flag in Args.
	Framing string
	// Record, when set, receives every frame: "<- " for sidecar → host, "-> " for
	// host → sidecar, one per line.
	Record io.Writer
}

// RPCError is an error answer, with its JSON-RPC code and raw data.
type RPCError struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// Client is one running sidecar.
type Client struct {
	opts   Options
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	nextID atomic.Int64

	wmu sync.Mutex
	rmu sync.Mutex // Record

	mu      sync.Mutex
	pending map[string]chan response
	closed  bool

	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup
	readDone chan struct{}
	exited   chan struct{}
	waitErr  error
}

type response struct {
	result json.RawMessage
	err    *RPCError
}

// Start spawns the sidecar. It runs until Close, Kill, or ctx ends.
func Start(ctx context.Context, opts Options) (*Client, error) {
	cmd := exec.CommandContext(ctx, opts.Path, opts.Args...)
	cmd.Stderr = opts.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", opts.Path, err)
	}
	c := &Client{
		opts: opts, cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<16),
		pending: map[string]chan response{}, readDone: make(chan struct{}), exited: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.read()
	go func() {
		<-c.readDone
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Pid is the sidecar's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the sidecar process has exited.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// ExitCode is the exit code once Exited is closed (-1 if killed by a signal).
func (c *Client) ExitCode() int { return c.cmd.ProcessState.ExitCode() }

// Call sends a request and decodes the result into result (nil: ignore; *json.RawMessage:
// raw). params may be any value, or json.RawMessage to send bytes as they are.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("sidecar connection is closed")
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.send(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "method": method, "params": params}); err != nil {
		c.forget(id)
		return err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return errors.New("sidecar exited before answering " + method)
		}
		if r.err != nil {
			return r.err
		}
		if result == nil {
			return nil
		}
		if raw, ok := result.(*json.RawMessage); ok {
			*raw = r.result
			return nil
		}
		return json.Unmarshal(r.result, result)
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	return c.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// WriteRaw writes bytes to the sidecar's stdin as they are (for malformed-input tests).
func (c *Client) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.stdin.Write(b)
	return err
}

func (c *Client) send(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return c.writeFrame(b)
}

func (c *Client) writeFrame(b []byte) error {
	c.record("-> ", b)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.opts.Framing == "lsp" {
		if _, err := fmt.Fprintf(c.stdin, "Content-Length: %d\r\n\r\n", len(b)); err != nil {
			return err
		}
		_, err := c.stdin.Write(b)
		return err
	}
	_, err := c.stdin.Write(append(b, '\n'))
	return err
}

func (c *Client) record(dir string, b []byte) {
	if c.opts.Record == nil {
		return
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	fmt.Fprintf(c.opts.Record, "%s%s\n", dir, b)
}

type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *RPCError       `json:"error"`
}

func (c *Client) read() {
	defer func() {
		c.mu.Lock()
		c.closed = true
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		c.cancel()
		close(c.readDone)
	}()
	for {
		frame, err := c.readFrame()
		if err != nil {
			return
		}
		c.record("<- ", frame)
		var env envelope
		if err := json.Unmarshal(frame, &env); err != nil {
			continue
		}
		switch {
		case env.Method != "" && len(env.ID) > 0:
			c.handlers.Add(1)
			go c.answer(env)
		case env.Method != "":
			if c.opts.Handler != nil {
				c.opts.Handler.HandleNotification(env.Method, env.Params)
			}
		default:
			c.mu.Lock()
			ch := c.pending[string(env.ID)]
			delete(c.pending, string(env.ID))
			c.mu.Unlock()
			if ch != nil {
				ch <- response{result: env.Result, err: env.Error}
			} else if string(env.ID) == "null" && c.opts.Handler != nil {
				// An answer to a frame the sidecar could not parse.
				c.opts.Handler.HandleNotification("$error", frame)
			}
		}
	}
}

func (c *Client) readFrame() ([]byte, error) {
	if c.opts.Framing != "lsp" {
		for {
			line, err := c.out.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) > 0 {
				return line, nil
			}
		}
	}
	length := -1
	for {
		header, err := c.out.ReadString('\n')
		if err != nil {
			return nil, err
		}
		header = strings.TrimRight(header, "\r\n")
		if header == "" {
			break
		}
		if name, value, ok := strings.Cut(header, ":"); ok && strings.EqualFold(name, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		}
	}
	if length < 0 {
		return nil, errors.New("LSP frame without Content-Length")
	}
	frame := make([]byte, length)
	_, err := io.ReadFull(c.out, frame)
	return frame, err
}

func (c *Client) answer(env envelope) {
	defer c.handlers.Done()
	var (
		result any
		err    error
	)
	if c.opts.Handler == nil {
		err = &RPCError{Code: -32601, Message: "this host answers no requests"}
	} else {
		result, err = c.opts.Handler.HandleRequest(c.ctx, env.Method, env.Params)
	}
	msg := map[string]any{"jsonrpc": "2.0", "id": env.ID}
	if err != nil {
		var rpcErr *RPCError
		if !errors.As(err, &rpcErr) {
			rpcErr = &RPCError{Code: -32000, Message: err.Error()}
		}
		msg["error"] = rpcErr
	} else {
		if result == nil {
			result = json.RawMessage("null")
		}
		msg["result"] = result
	}
	_ = c.send(msg)
}

// Close closes the sidecar's stdin, as a host that goes away does, and waits for the
// process to exit (at most timeout; then it is killed).
func (c *Client) Close(timeout time.Duration) error {
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		c.handlers.Wait()
		return fmt.Errorf("sidecar did not exit within %s of stdin closing; killed", timeout)
	}
	c.handlers.Wait()
	return c.waitErr
}

// Kill ends the sidecar at once (SIGKILL) and waits for it.
func (c *Client) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
	c.handlers.Wait()
}
