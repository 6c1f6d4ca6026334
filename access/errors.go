package access

import "errors"

// Sentinel errors. Callers wrap them with context
// (fmt.Errorf("role %q: %w", name, ErrNotFound)) and test with errors.Is;
// CodeOf maps them to the stable codes of the HTTP API.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object changed or is in a state that refuses the
	// operation (a review on a finished request, a duplicate review).
	ErrConflict     = errors.New("conflict")
	ErrInvalid      = errors.New("invalid")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrExpired      = errors.New("expired")
	ErrPolicy       = errors.New("policy error")
	// ErrUnavailable: the store cannot be reached; the call changed nothing
	// and may be retried.
	ErrUnavailable = errors.New("unavailable")
)

// Code is a stable error code of the HTTP API.
type Code string

// Error codes.
const (
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"
	CodeInvalid      Code = "invalid"
	CodeUnauthorized Code = "unauthorized"
	CodeForbidden    Code = "forbidden"
	CodeExpired      Code = "expired"
	CodePolicyError  Code = "policy_error"
	CodeUnavailable  Code = "unavailable"
	CodeInternal     Code = "internal"
)

// CodeOf returns the API code for err.
func CodeOf(err error) Code {
	switch {
	case errors.Is(err, ErrRateLimited): // loginlimit.go
		return CodeRateLimited
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrConflict):
		return CodeConflict
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrUnauthorized):
		return CodeUnauthorized
	case errors.Is(err, ErrForbidden):
		return CodeForbidden
	case errors.Is(err, ErrExpired):
		return CodeExpired
	case errors.Is(err, ErrPolicy):
		return CodePolicyError
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	}
	return CodeInternal
}
