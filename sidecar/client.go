// Package sidecar is a Go host for statesync-sidecar: it spawns the binary and speaks the
// protocol over its stdin/stdout, as a Tauri core or an Electron main process does. The
// e2e tests, the benchmark harness and the demo use it; a Go or Wails host can too.
//
// The connection is a sourcegraph/jsonrpc2 Conn over the child's stdio (stream.go); the
// sidecar's requests to the host run on a fixed pool of workers behind a bounded queue
// (dispatch.go).
package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// DefaultMaxHandlers is the number of HandleRequest calls that run at once when
// Options.MaxHandlers is 0.
const DefaultMaxHandlers = 64

// DefaultMaxQueued is the number of the sidecar's requests that wait for a worker when
// Options.MaxQueued is 0: a fan-out to 1,000 channels fits.
const DefaultMaxQueued = 4096

// CodeHostBusy is the error code the client answers a request with when MaxHandlers
// calls are running and MaxQueued requests are waiting.
const CodeHostBusy = -32099

// Handler answers what the sidecar sends the host.
type Handler interface {
	// HandleRequest answers getSnapshot and apply. Up to Options.MaxHandlers calls run at
	// once, each on a worker of the client's, so a slow answer for one channel does not
	// block the others; more wait in a queue. ctx ends when the sidecar's output ends (it exited, or was
	// killed); a call must return by then. A non-nil error is sent as an error answer;
	// use *RPCError to choose the code.
	HandleRequest(ctx context.Context, method string, params json.RawMessage) (result any, err error)
	// HandleNotification receives notifications (error) one at a time, in the order the
	// sidecar sent them, on the goroutine that reads the sidecar's output: it must not
	// wait on a Call. An error answer with a null id (the sidecar could not parse a frame
	// the host sent) arrives as method "$error" with the whole answer as params.
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
	// MaxHandlers bounds the HandleRequest calls that run at once (0: DefaultMaxHandlers),
	// and MaxQueued the requests that wait for one of them (0: DefaultMaxQueued). A
	// request beyond both is answered at once with CodeHostBusy; the client never stops
	// reading the sidecar's output to wait for a worker.
	MaxHandlers int
	MaxQueued   int
	// Record, when set, receives every frame: "<- " for sidecar → host, "-> " for
	// host → sidecar, one per line and one Write each.
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
	stream *stream
	conn   *jsonrpc2.Conn
	// nextID starts request ids at 1: an answer with a null id decodes as jsonrpc2.ID{}
	// (Num 0), which must never match a pending call.
	nextID atomic.Uint64
	rmu    sync.Mutex // Record

	jobs        chan job // buffered MaxQueued; closed once reading has ended: no Handle call follows
	workers     sync.WaitGroup
	workerCount int

	exited  chan struct{}
	waitErr error // written before exited is closed
}

// Start spawns the sidecar. It runs until Close, Kill, or ctx ends.
func Start(ctx context.Context, opts Options) (*Client, error) {
	var lsp bool
	switch opts.Framing {
	case "", "ndjson":
	case "lsp":
		lsp = true
	default:
		return nil, fmt.Errorf("sidecar.Options.Framing is %q: use \"ndjson\" or \"lsp\", the same as the sidecar's --framing flag", opts.Framing)
	}
	workers := opts.MaxHandlers
	if workers == 0 {
		workers = DefaultMaxHandlers
	}
	if workers < 0 {
		return nil, fmt.Errorf("sidecar.Options.MaxHandlers is %d: use a positive bound, or 0 for %d", workers, DefaultMaxHandlers)
	}
	queued := opts.MaxQueued
	if queued == 0 {
		queued = DefaultMaxQueued
	}
	if queued < 0 {
		return nil, fmt.Errorf("sidecar.Options.MaxQueued is %d: use a positive bound, or 0 for %d", queued, DefaultMaxQueued)
	}
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
	c := &Client{opts: opts, cmd: cmd, jobs: make(chan job, queued), workerCount: workers, exited: make(chan struct{})}
	c.stream = newStream(lsp, stdin, stdout, c.record)
	for range workers {
		c.workers.Add(1)
		go c.work()
	}
	c.conn = jsonrpc2.NewConn(context.Background(), c.stream, dispatcher{c},
		// jsonrpc2 logs late answers (to a Call whose ctx ended) and decode errors to
		// os.Stderr by default, which belongs to the host; the decode error is returned
		// by Close instead.
		jsonrpc2.SetLogger(log.New(io.Discard, "", 0)),
		jsonrpc2.OnRecv(c.onRecv))
	go func() {
		<-c.stream.readDone
		close(c.jobs)
		// Only now: Wait closes stdout, so it must not run while it is still being read.
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Pid is the sidecar's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the sidecar process has exited and its output has been read.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// ExitCode is the exit code once Exited is closed (-1 if killed by a signal).
func (c *Client) ExitCode() int { return c.cmd.ProcessState.ExitCode() }

// Call sends a request and decodes the result into result (nil: ignore; *json.RawMessage:
// raw). params may be any value, or json.RawMessage to send bytes as they are. An error
// answer is an *RPCError.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = json.RawMessage("null")
	}
	err := c.conn.Call(ctx, method, params, result, jsonrpc2.PickID(jsonrpc2.ID{Num: c.nextID.Add(1)}))
	var wireErr *jsonrpc2.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wireErr):
		rpcErr := &RPCError{Code: wireErr.Code, Message: wireErr.Message}
		if wireErr.Data != nil {
			rpcErr.Data = *wireErr.Data
		}
		return rpcErr
	case errors.Is(err, jsonrpc2.ErrClosed):
		return fmt.Errorf("%s: the sidecar's output ended (it exited, or Close/Kill was called) before it answered: %w", method, err)
	default:
		return fmt.Errorf("%s: %w", method, err)
	}
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	if params == nil {
		params = json.RawMessage("null")
	}
	return c.conn.Notify(context.Background(), method, params)
}

// WriteRaw writes bytes to the sidecar's stdin as they are (for malformed-input tests),
// never inside a frame the client is writing.
func (c *Client) WriteRaw(b []byte) error { return c.stream.writeRaw(b) }

func (c *Client) record(dir string, frame []byte) {
	if c.opts.Record == nil {
		return
	}
	line := make([]byte, 0, len(dir)+len(frame)+1)
	line = append(append(append(line, dir...), frame...), '\n')
	c.rmu.Lock()
	defer c.rmu.Unlock()
	_, _ = c.opts.Record.Write(line)
}

// Close closes the sidecar's stdin, as a host that goes away does, and waits for the
// process to exit (at most timeout; then it is killed), for its output to be read and for
// every handler call to return. It returns the process's exit error, or why reading its
// output failed. Safe to call twice and after Kill.
func (c *Client) Close(timeout time.Duration) error {
	_ = c.stream.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		c.Kill()
		return fmt.Errorf("sidecar did not exit within %s of stdin closing; killed", timeout)
	}
	c.join()
	return errors.Join(c.protocolErr(), c.waitErr)
}

// Kill ends the sidecar at once (SIGKILL) and waits as Close does.
func (c *Client) Kill() {
	_ = c.cmd.Process.Kill()
	// Closing the conn ends the handlers' ctx now rather than at the end of the dead
	// process's output.
	_ = c.conn.Close()
	<-c.exited
	c.join()
}

// join waits for what Start started once reading has ended. jsonrpc2.Conn has no way to
// wait for its two goroutines: by now its reader has returned its last read and the conn
// is closed (so its ctx watcher is released), and neither does anything but return.
func (c *Client) join() {
	_ = c.conn.Close()
	c.workers.Wait()
}

// protocolErr is why reading the sidecar's output stopped, if not its normal end.
func (c *Client) protocolErr() error {
	err := c.stream.readErr
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return fmt.Errorf("reading the sidecar's output: %w", err)
}
