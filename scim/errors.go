package scim

import (
	"errors"
	"fmt"
	"net/http"

	serr "github.com/elimity-com/scim/errors"
)

// Error is a SCIM protocol error (RFC 7644 section 3.12). It is elimity's
// type so every package in scim/ shares one representation.
type Error = serr.ScimError

// errorf builds a SCIM error with a precise detail.
func errorf(status int, scimType serr.ScimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

func notFound(rt, id string) *Error {
	return errorf(http.StatusNotFound, "", "%s %q not found", rt, id)
}

func badRequest(t serr.ScimType, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, t, format, args...)
}

// errInternal is what clients see for failures they cannot act on; the
// cause is logged with the request id.
var errInternal = &Error{Status: http.StatusInternalServerError, Detail: "internal error; the request was not applied (see server log for the request id)"}

// asSCIM returns err as a SCIM error, or nil when it is not one.
func asSCIM(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	var sv Error
	if errors.As(err, &sv) {
		return &sv
	}
	return nil
}
