// Package webhook holds what every chat platform's inbound endpoint does
// the same way: read a bounded body and put it back for the form or JSON
// parser that comes after the signature check (ReadBody), refuse an
// authentic request seen before (ReplayCache), and run the work an
// acknowledged request started within a bound (Workers).
package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrTooLarge: the body exceeds the endpoint's limit (answer 413).
var ErrTooLarge = errors.New("request body too large")

// ReadBody reads at most max bytes of r's body (one more to detect an
// overflow), closes it, and replaces it with a reader over the bytes read,
// so r.ParseForm still works after the signature was checked.
func ReadBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
