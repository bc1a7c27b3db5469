package jsonpatch

import (
	"errors"
	"testing"
)

func TestProjectBasics(t *testing.T) {
	doc := `{"a":{"x":1,"y":[1,{"z":2}],"w":"s"},"b":true,"c":{"d":{}}}`
	cases := []struct {
		pointers []string
		want     string
	}{
		{[]string{"/a/x"}, `{"a":{"x":1}}`},
		{[]string{"/b", "/a/x"}, `{"a":{"x":1},"b":true}`},
		{[]string{"/a/y/1/z"}, `{"a":{"y":[1,{"z":2}]}}`},
		{[]string{"/a/missing", "/nope"}, `{}`},
		{[]string{"/a/w/deeper"}, `{}`},
		{[]string{"/a", "/a/x"}, `{"a":{"x":1,"y":[1,{"z":2}],"w":"s"}}`},
		{[]string{"/c/d"}, `{"c":{"d":{}}}`},
		{[]string{""}, doc},
	}
	for _, c := range cases {
		got, err := Project([]byte(doc), c.pointers)
		if err != nil {
			t.Fatalf("Project(%q): %v", c.pointers, err)
		}
		if string(got) != c.want {
			t.Errorf("Project(%q) = %s, want %s", c.pointers, got, c.want)
		}
	}
	got, err := Project([]byte(`[1, 2]`), []string{"/0"})
	if err != nil || string(got) != `[1,2]` {
		t.Errorf("Project of an array = %s, %v; want the whole document [1,2]", got, err)
	}
	_, err = Project([]byte(doc), []string{"a"})
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != Malformed || pe.Path != "a" {
		t.Errorf("Project with pointer \"a\": got %v, want a Malformed *Error with Path \"a\"", err)
	}
}
