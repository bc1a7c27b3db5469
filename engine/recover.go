package engine

import "fmt"

// PanicError is a panic in a provider or applier, turned into an error so that one bad
// call is reported like any failure and never takes the process down.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

func recovered[T any](call func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return call()
}
