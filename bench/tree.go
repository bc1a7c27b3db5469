package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"strconv"

	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// The windows of the deltas cell "freezeData" hold what a webview holds with the SDK's
// freezeData: the parsed state (JSON.parse; here encoding/json with numbers kept as
// written), never changed in place, so a patch copies only the containers on its path
// and shares the rest, as sdk-ts's applyPatch does. These are that model: decodeTree for
// full data, applyTree for a patch.

// decodeTree parses a JSON document into maps, slices and json.Number.
func decodeTree(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// applyTree returns doc with the patch applied; doc is never changed.
func applyTree(doc any, p jsonpatch.Patch) (any, error) {
	for i := range p {
		op := &p[i]
		var err error
		switch op.Op {
		case "add", "replace", "test":
			var v any
			if v, err = decodeTree(op.Value); err != nil {
				break
			}
			switch op.Op {
			case "add":
				doc, err = treeSet(doc, op.Path, v, true)
			case "replace":
				doc, err = treeSet(doc, op.Path, v, false)
			default:
				var got any
				if got, err = treeGet(doc, op.Path); err == nil && !treeEqual(got, v) {
					err = errors.New("test failed")
				}
			}
		case "remove":
			doc, _, err = treeRemove(doc, op.Path)
		case "copy", "move":
			var v any
			if v, err = treeGet(doc, op.From); err != nil {
				break
			}
			if op.Op == "move" {
				if len(op.From) <= len(op.Path) && reflect.DeepEqual(op.From, op.Path[:len(op.From)]) {
					if len(op.From) == len(op.Path) {
						continue // onto itself
					}
					err = errors.New("move into its own child")
					break
				}
				if doc, _, err = treeRemove(doc, op.From); err != nil {
					break
				}
			}
			doc, err = treeSet(doc, op.Path, v, true)
		default:
			err = fmt.Errorf("unknown op %q", op.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("operation %d (%s %s): %w", i, op.Op, op.Path.String(), err)
		}
	}
	return doc, nil
}

func treeGet(doc any, path jsonpatch.Pointer) (any, error) {
	for _, tok := range path {
		switch c := doc.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			doc = v
		case []any:
			i, err := arrayIndex(tok, len(c)-1)
			if err != nil {
				return nil, err
			}
			doc = c[i]
		default:
			return nil, fmt.Errorf("%q of a scalar", tok)
		}
	}
	return doc, nil
}

// treeSet sets path to v in a copy of the containers on path: add (insert in an array,
// set in an object) or replace (the target must exist).
func treeSet(doc any, path jsonpatch.Pointer, v any, add bool) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	tok, rest := path[0], path[1:]
	switch c := doc.(type) {
	case map[string]any:
		old, ok := c[tok]
		if !ok && (len(rest) > 0 || !add) {
			return nil, fmt.Errorf("no member %q", tok)
		}
		if len(rest) > 0 {
			var err error
			if v, err = treeSet(old, rest, v, add); err != nil {
				return nil, err
			}
		}
		out := make(map[string]any, len(c)+1)
		for k, x := range c {
			out[k] = x
		}
		out[tok] = v
		return out, nil
	case []any:
		last := len(c) - 1
		if add && len(rest) == 0 {
			last = len(c) // insert at len: append
		}
		i := len(c)
		if !(add && len(rest) == 0 && tok == "-") {
			var err error
			if i, err = arrayIndex(tok, last); err != nil {
				return nil, err
			}
		}
		if len(rest) > 0 {
			var err error
			if v, err = treeSet(c[i], rest, v, add); err != nil {
				return nil, err
			}
		}
		if add && len(rest) == 0 {
			out := make([]any, 0, len(c)+1)
			out = append(append(append(out, c[:i]...), v), c[i:]...)
			return out, nil
		}
		out := append([]any(nil), c...)
		out[i] = v
		return out, nil
	}
	return nil, fmt.Errorf("%q of a scalar", tok)
}

// treeRemove removes path in a copy of the containers on it, and returns what it removed.
func treeRemove(doc any, path jsonpatch.Pointer) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, errors.New("remove of the whole document")
	}
	tok, rest := path[0], path[1:]
	switch c := doc.(type) {
	case map[string]any:
		old, ok := c[tok]
		if !ok {
			return nil, nil, fmt.Errorf("no member %q", tok)
		}
		out := make(map[string]any, len(c))
		for k, x := range c {
			out[k] = x
		}
		if len(rest) == 0 {
			delete(out, tok)
			return out, old, nil
		}
		child, removed, err := treeRemove(old, rest)
		out[tok] = child
		return out, removed, err
	case []any:
		i, err := arrayIndex(tok, len(c)-1)
		if err != nil {
			return nil, nil, err
		}
		if len(rest) == 0 {
			out := make([]any, 0, len(c)-1)
			return append(append(out, c[:i]...), c[i+1:]...), c[i], nil
		}
		child, removed, err := treeRemove(c[i], rest)
		out := append([]any(nil), c...)
		out[i] = child
		return out, removed, err
	}
	return nil, nil, fmt.Errorf("%q of a scalar", tok)
}

// arrayIndex reads an RFC 6901 array index no greater than last.
func arrayIndex(tok string, last int) (int, error) {
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, fmt.Errorf("%q is not an array index", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || tok[0] == '+' {
		return 0, fmt.Errorf("%q is not an array index", tok)
	}
	if i > last {
		return 0, fmt.Errorf("index %d is past the end", i)
	}
	return i, nil
}

// treeEqual is JSON equality (RFC 6902 test): numbers by value, members in any order.
func treeEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, _, errx := big.ParseFloat(string(x), 10, 256, big.ToNearestEven)
		fy, _, erry := big.ParseFloat(string(y), 10, 256, big.ToNearestEven)
		return errx == nil && erry == nil && fx.Cmp(fy) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !treeEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !treeEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
