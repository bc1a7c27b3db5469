package strictjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
)

// shape is how the scanner reads a value of one Go type.
type shape int

const (
	// opaque: not inspected inside (json.RawMessage, a custom UnmarshalJSON, a number, a
	// bool, a ",string" field); only skipped over.
	opaque shape = iota
	shapeString
	shapeStruct
	shapeMap
	shapeList // slice or array
	shapeAny  // interface: encoding/json builds maps and strings, so the same checks apply
)

type typeInfo struct {
	shape  shape
	elem   reflect.Type // shapeMap, shapeList: the element type
	elemP  atomic.Pointer[typeInfo]
	fields []field // shapeStruct, in declaration order
	byName map[string]int
	known  string // the field names, comma-separated, for Unknown errors
}

type field struct {
	name      string
	nameBytes []byte
	typ       reflect.Type
	quoted    bool // the ",string" option: the value is a string holding JSON, read by encoding/json
	typInfo   *atomic.Pointer[typeInfo]
}

// info is infoOf(f.typ), remembered: looked up on first use, not when the struct's info
// is built, so that a recursive type does not build itself forever.
func (f *field) info() *typeInfo {
	if ti := f.typInfo.Load(); ti != nil {
		return ti
	}
	ti := infoOf(f.typ)
	f.typInfo.Store(ti)
	return ti
}

// elemInfo is infoOf(t.elem), remembered as field.info is.
func (t *typeInfo) elemInfo() *typeInfo {
	if ti := t.elemP.Load(); ti != nil {
		return ti
	}
	ti := infoOf(t.elem)
	t.elemP.Store(ti)
	return ti
}

// types caches typeInfo per reflect.Type, as encoding/json caches its field lists: types
// are few and fixed, and building one costs a reflective walk. It is the only package-level
// state, and holds nothing but facts about types.
var types sync.Map // reflect.Type → *typeInfo

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func infoOf(t reflect.Type) *typeInfo {
	if v, ok := types.Load(t); ok {
		return v.(*typeInfo)
	}
	v, _ := types.LoadOrStore(t, buildInfo(t))
	return v.(*typeInfo)
}

func buildInfo(t reflect.Type) *typeInfo {
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return &typeInfo{shape: opaque}
		}
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if t.Implements(unmarshalerType) || pt.Implements(unmarshalerType) {
		return &typeInfo{shape: opaque} // json.RawMessage among them: opaque user data
	}
	if t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		// encoding/json unquotes a string (lone surrogates become U+FFFD) and hands it
		// over; any other JSON value is an error it reports itself.
		return &typeInfo{shape: shapeString}
	}
	switch t.Kind() {
	case reflect.String:
		return &typeInfo{shape: shapeString}
	case reflect.Interface:
		if t.NumMethod() == 0 {
			return &typeInfo{shape: shapeAny}
		}
		return &typeInfo{shape: opaque} // encoding/json refuses to decode into it
	case reflect.Map:
		return &typeInfo{shape: shapeMap, elem: t.Elem()}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(unmarshalerType) && !reflect.PointerTo(t.Elem()).Implements(textUnmarshalerType) {
			return &typeInfo{shape: shapeString} // []byte: a base64 string
		}
		return &typeInfo{shape: shapeList, elem: t.Elem()}
	case reflect.Struct:
		return structInfo(t)
	}
	return &typeInfo{shape: opaque}
}

// structInfo lists the members a struct decodes, with encoding/json's rules: the json tag's
// name or the field's, "-" skipped, unexported fields skipped, the fields of an embedded
// struct without a tag name promoted, the shallowest of equal names winning and a tie
// between untagged or between tagged ones dropping the name.
func structInfo(t reflect.Type) *typeInfo {
	type candidate struct {
		field
		depth  int
		tagged bool
	}
	var all []candidate
	var walk func(t reflect.Type, depth int, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			sf := t.Field(i)
			ft := sf.Type
			if sf.Anonymous {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !sf.IsExported() && ft.Kind() != reflect.Struct {
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if !validTag(name) {
				name = ""
			}
			if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
				walk(ft, depth+1, seen)
				continue
			}
			tagged := name != ""
			if name == "" {
				name = sf.Name
			}
			quoted := false
			for _, o := range strings.Split(opts, ",") {
				quoted = quoted || o == "string"
			}
			f := field{name: name, nameBytes: []byte(name), typ: sf.Type, quoted: quoted, typInfo: new(atomic.Pointer[typeInfo])}
			all = append(all, candidate{field: f, depth: depth, tagged: tagged})
		}
	}
	walk(t, 0, map[reflect.Type]bool{})

	info := &typeInfo{shape: shapeStruct, byName: map[string]int{}}
	byName := map[string][]candidate{}
	var order []string
	for _, c := range all {
		if _, ok := byName[c.name]; !ok {
			order = append(order, c.name)
		}
		byName[c.name] = append(byName[c.name], c)
	}
	for _, name := range order {
		cs := byName[name]
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].depth < cs[j].depth })
		top := cs[:1]
		for _, c := range cs[1:] {
			if c.depth == cs[0].depth {
				top = append(top, c)
			}
		}
		winner := -1
		if len(top) == 1 {
			winner = 0
		} else {
			for i, c := range top {
				if c.tagged {
					if winner >= 0 {
						winner = -1
						break
					}
					winner = i
				}
			}
		}
		if winner < 0 {
			continue
		}
		info.byName[name] = len(info.fields)
		info.fields = append(info.fields, top[winner].field)
	}
	names := make([]string, len(info.fields))
	for i, f := range info.fields {
		names[i] = f.name
	}
	info.known = strings.Join(names, ", ")
	return info
}

// validTag is encoding/json's rule for a usable tag name.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !isLetterOrDigit(c):
			return false
		}
	}
	return true
}

func isLetterOrDigit(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }
