package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"unicode/utf8"
)

// Options are Decode's choices; the zero value ignores unknown members, as
// json.Unmarshal does.
type Options struct {
	// DisallowUnknown refuses a member the target struct has no field for (Kind Unknown),
	// at every level decoded: for params where a misspelt optional member would change
	// behaviour silently (a compare-and-set turned into a blind write).
	DisallowUnknown bool
}

// Decode is Options{}.Decode.
func Decode(data []byte, v any) error { return Options{}.Decode(data, v) }

// Decode stores the JSON value in data in v, a non-nil pointer, as json.Unmarshal does,
// after checking that it reads the same to any JSON reader. It refuses, with an *Error:
//
//   - bytes that are not UTF-8, anywhere in data, opaque values included (InvalidUTF8);
//   - a member name given twice in one object (Duplicate), in every object it inspects:
//     structs, maps and interface values, at any depth;
//   - a member name that differs only in case from a field of the target struct
//     (CaseVariant), with encoding/json's own folding (so "\u212a" for "k" too);
//   - a lone surrogate escape in a member name, or in a string decoded into a Go string,
//     a []byte's base64, a map key or an interface value (LoneSurrogate);
//   - a member the struct has no field for, with DisallowUnknown (Unknown).
//
// Values that reach an UnmarshalJSON method, json.RawMessage among them (the opaque user
// data), are not inspected inside: only their bytes are checked to be UTF-8. Values of
// unknown members are skipped, not inspected. Syntax and type errors come from
// encoding/json, wrapped in an *Error (Syntax, Type). When data breaks several rules, a
// syntax error wins, then invalid UTF-8, then the first other problem in reading order.
func (o Options) Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return json.Unmarshal(data, v) // its *json.InvalidUnmarshalError: a caller's bug
	}
	if err := o.check(data, rv.Type()); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return wrapUnmarshalError(data, err)
	}
	return nil
}

// check is Decode without the decode: every rule, for a *T.
func (o Options) check(data []byte, t reflect.Type) error {
	if !utf8.Valid(data) {
		if !json.Valid(data) {
			return syntaxError(data, t)
		}
		return utf8Error(data)
	}
	sc := scanner{data: data, opts: o}
	i, err := sc.value(skipSpace(data, 0), infoOf(t.Elem()))
	if err == nil && skipSpace(data, i) != len(data) {
		err = errSyntax
	}
	if err != nil {
		if errors.Is(err, errSyntax) || !json.Valid(data) {
			return syntaxError(data, t)
		}
		return err
	}
	return nil
}

// syntaxError words a syntax error with encoding/json, decoding into a fresh value so v is
// untouched whatever happens.
func syntaxError(data []byte, t reflect.Type) error {
	err := json.Unmarshal(data, reflect.New(t.Elem()).Interface())
	if err == nil {
		// The scanner gave up on JSON that encoding/json reads: a bug here, reported as
		// such rather than accepted unchecked.
		return &Error{Kind: Syntax, Err: errors.New("strictjson could not read this JSON, which encoding/json reads (a bug in internal/strictjson)")}
	}
	return wrapUnmarshalError(data, err)
}

func wrapUnmarshalError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &Error{Kind: Syntax, Offset: int(syn.Offset), Err: err}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		// Field leaves out map keys and array indexes ("topics.revision"); the offset,
		// just after the value, finds them.
		path := typeErr.Field
		if p, _ := pathAt(data, int(typeErr.Offset)-1); p != "" {
			path = p
		}
		return &Error{Kind: Type, Path: path, Offset: int(typeErr.Offset), Err: err}
	}
	return &Error{Kind: Type, Err: err}
}

// scanner walks data along the target type, one pass, before encoding/json decodes it.
type scanner struct {
	data  []byte
	opts  Options
	depth int
}

// fail reports a problem at data[offset]: in the member name member, or in a value when
// member is nil. The walk keeps no path, so that reading costs nothing for it: the path
// is found again from the offset, on error only.
func (s *scanner) fail(kind Kind, offset int, member []byte, known string) *Error {
	path, inName := pathAt(s.data, offset)
	e := &Error{Kind: kind, Path: path, Offset: offset, Known: known, inName: inName}
	if member != nil {
		e.Path = appendPath(path, frame{name: member})
		e.Member = boundName(member)
		e.inName = false
	}
	return e
}

// value checks the value at data[i] as read into a Go value described by info, and
// returns the index after it.
func (s *scanner) value(i int, info *typeInfo) (int, error) {
	if i >= len(s.data) || s.depth >= maxDepth {
		return 0, errSyntax
	}
	s.depth++
	end, err := s.valueAt(i, info)
	s.depth--
	return end, err
}

func (s *scanner) valueAt(i int, info *typeInfo) (int, error) {
	c := s.data[i]
	switch {
	case info.shape == shapeString && c == '"':
		return s.stringValue(i)
	case info.shape == shapeStruct && c == '{':
		return s.object(i, info)
	case info.shape == shapeMap && c == '{':
		return s.mapObject(i, info.elemInfo())
	case info.shape == shapeList && c == '[':
		return s.list(i, info.elemInfo())
	case info.shape == shapeAny:
		return s.anyValueAt(i)
	}
	// opaque, or a JSON type the Go type does not take (encoding/json words that).
	return skipValue(s.data, i)
}

func (s *scanner) stringValue(i int) (int, error) {
	end, err := stringEnd(s.data, i)
	if err != nil {
		return 0, err
	}
	if k := loneSurrogate(s.data[i+1 : end-1]); k >= 0 {
		return 0, s.fail(LoneSurrogate, i+1+k, nil, "")
	}
	return end, nil
}

// name reads the member name at data[i] and the colon after it: the decoded name, the
// index of its value.
func (s *scanner) name(i int) ([]byte, int, error) {
	if i >= len(s.data) || s.data[i] != '"' {
		return nil, 0, errSyntax
	}
	end, err := stringEnd(s.data, i)
	if err != nil {
		return nil, 0, err
	}
	name, lone, ok := unquote(s.data[i+1 : end-1])
	if !ok {
		return nil, 0, errSyntax
	}
	if lone >= 0 {
		return nil, 0, s.fail(LoneSurrogate, i+1+lone, nil, "")
	}
	j := skipSpace(s.data, end)
	if j >= len(s.data) || s.data[j] != ':' {
		return nil, 0, errSyntax
	}
	return name, skipSpace(s.data, j+1), nil
}

// nextMember moves past the value that ended at data[i]: the index of the next member's
// name, or done at the end of the object.
func (s *scanner) nextMember(i int) (next int, done bool, err error) {
	i = skipSpace(s.data, i)
	if i >= len(s.data) {
		return 0, false, errSyntax
	}
	switch s.data[i] {
	case ',':
		return skipSpace(s.data, i+1), false, nil
	case '}':
		return i + 1, true, nil
	}
	return 0, false, errSyntax
}

// nameSet finds repeated names among those added; small objects (nearly all) compare in
// a slice, large ones switch to a map.
type nameSet struct {
	list [8][]byte
	n    int
	big  map[string]struct{}
}

// add reports false when name was already added.
func (ns *nameSet) add(name []byte) bool {
	if ns.big != nil {
		if _, dup := ns.big[string(name)]; dup {
			return false
		}
		ns.big[string(name)] = struct{}{}
		return true
	}
	for _, seen := range ns.list[:ns.n] {
		if bytes.Equal(seen, name) {
			return false
		}
	}
	if ns.n < len(ns.list) {
		ns.list[ns.n] = name
		ns.n++
		return true
	}
	ns.big = make(map[string]struct{}, 2*len(ns.list))
	for _, seen := range ns.list {
		ns.big[string(seen)] = struct{}{}
	}
	ns.big[string(name)] = struct{}{}
	return true
}

func (s *scanner) object(i int, info *typeInfo) (int, error) {
	var (
		seenLow  uint64 // fields 0–63 seen
		seenHigh map[int]bool
		unknown  nameSet
	)
	i = skipSpace(s.data, i+1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1, nil
	}
	for {
		at := i
		name, v, err := s.name(i)
		if err != nil {
			return 0, err
		}
		k, ok := info.byName[string(name)]
		switch {
		case !ok:
			for _, f := range info.fields {
				if bytes.EqualFold(name, f.nameBytes) {
					return 0, s.fail(CaseVariant, at, name, f.name)
				}
			}
			if s.opts.DisallowUnknown {
				return 0, s.fail(Unknown, at, name, info.known)
			}
			if !unknown.add(name) {
				return 0, s.fail(Duplicate, at, name, "")
			}
			i, err = skipValue(s.data, v)
		case k < 64 && seenLow&(1<<k) != 0, k >= 64 && seenHigh[k]:
			return 0, s.fail(Duplicate, at, name, "")
		default:
			if k < 64 {
				seenLow |= 1 << k
			} else {
				if seenHigh == nil {
					seenHigh = map[int]bool{}
				}
				seenHigh[k] = true
			}
			f := &info.fields[k]
			if f.quoted {
				i, err = skipValue(s.data, v)
				break
			}
			i, err = s.value(v, f.info())
		}
		if err != nil {
			return 0, err
		}
		var done bool
		if i, done, err = s.nextMember(i); err != nil || done {
			return i, err
		}
	}
}

// mapObject checks a JSON object read into a map, or into an interface value (elem nil):
// no repeated key, and each value as an elem.
func (s *scanner) mapObject(i int, elem *typeInfo) (int, error) {
	var keys nameSet
	i = skipSpace(s.data, i+1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1, nil
	}
	for {
		at := i
		name, v, err := s.name(i)
		if err != nil {
			return 0, err
		}
		if !keys.add(name) {
			return 0, s.fail(Duplicate, at, name, "")
		}
		if elem == nil {
			i, err = s.anyValue(v)
		} else {
			i, err = s.value(v, elem)
		}
		if err != nil {
			return 0, err
		}
		var done bool
		if i, done, err = s.nextMember(i); err != nil || done {
			return i, err
		}
	}
}

func (s *scanner) list(i int, elem *typeInfo) (int, error) {
	i = skipSpace(s.data, i+1)
	if i < len(s.data) && s.data[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		var err error
		if elem == nil {
			i, err = s.anyValue(i)
		} else {
			i, err = s.value(i, elem)
		}
		if err != nil {
			return 0, err
		}
		i = skipSpace(s.data, i)
		if i >= len(s.data) {
			return 0, errSyntax
		}
		switch s.data[i] {
		case ',':
			i = skipSpace(s.data, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// anyValue checks a value read into an interface: encoding/json makes maps of objects
// (the last of repeated keys wins) and strings of strings (lone surrogates become U+FFFD).
func (s *scanner) anyValue(i int) (int, error) {
	if i >= len(s.data) || s.depth >= maxDepth {
		return 0, errSyntax
	}
	s.depth++
	end, err := s.anyValueAt(i)
	s.depth--
	return end, err
}

func (s *scanner) anyValueAt(i int) (int, error) {
	switch s.data[i] {
	case '"':
		return s.stringValue(i)
	case '{':
		return s.mapObject(i, nil)
	case '[':
		return s.list(i, nil)
	}
	return skipValue(s.data, i)
}
