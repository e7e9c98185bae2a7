// Package apijson is the plumbing shared by jmlgate's JSON APIs (other than
// SCIM): the error type clients see, its codes, how a response is written,
// and the adapter from a func(*http.Request) (any, error) to a handler that
// checks the method and maps errors to statuses in one place.
//
// Every response, success or error, is JSON followed by a newline, with
// Content-Type application/json and Cache-Control no-store. Errors are
// {"error": code, "message": text}. An *Error is shown to the client as it
// is; any other error is logged in full and answered 500 {"error":
// "internal", "message": "internal error"}, so store failures never leak.
// Nothing here maps store.ErrNotFound: handlers turn it into an *Error
// (usually 404) where "not found" is the client's fault.
package apijson

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jmlgate/jmlgate/internal/reqctx"
)

// Error codes of the {"error": code} body used by more than one API. An API
// may add its own.
const (
	CodeInvalidRequest   = "invalid_request"    // 400: bad path, query or body
	CodeForbidden        = "forbidden"          // 403: e.g. separation of duties
	CodeNotFound         = "not_found"          // 404: unknown resource or path
	CodeMethodNotAllowed = "method_not_allowed" // 405, with Allow
	CodeConflict         = "conflict"           // 409: the resource's state forbids it
	CodeInternal         = "internal"           // 500: logged, answered generically
)

// Error is an error the client sees as is: Status is the HTTP status, Code
// and Message the {"error", "message"} body. Its message must hold nothing
// secret.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// NoSuchPath is the 404 for a path no route serves.
func NoSuchPath(r *http.Request) *Error {
	return Errorf(http.StatusNotFound, CodeNotFound, "no such path %q", r.URL.Path)
}

// errorBody is the JSON of an *Error; its fields are in the order
// json.Marshal gives a map's sorted keys, so the bytes are the same.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// internalBody is what a response that cannot be encoded becomes.
const internalBody = `{"error":"internal","message":"internal error"}`

// DefaultMethodMessage is the 405 message of a Server without its own: a
// format taking the request's method and the one allowed.
const DefaultMethodMessage = "method %s is not allowed; use %s"

// Server is what the handlers of one API share. The zero value serves,
// discarding logs. A Server is safe for concurrent use once built.
type Server struct {
	// Name starts log messages: "<Name>: request failed".
	Name string
	// Log receives internal errors in full; nil discards.
	Log *slog.Logger
	// MethodMessage is the 405 message, a format taking the request's
	// method and the one allowed; "" means DefaultMethodMessage.
	MethodMessage string
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Func handles one request: the body to encode with the success status,
// or an error (an *Error for the client, anything else a 500).
type Func func(r *http.Request) (any, error)

// Serve adapts fn to method, answering 200 on success; see ServeStatus.
func (s *Server) Serve(method string, fn Func) http.HandlerFunc {
	return s.ServeStatus(method, http.StatusOK, fn)
}

// ServeStatus adapts fn to method (GET also answers HEAD), answering
// okStatus with fn's body on success. Another method gets 405
// method_not_allowed with Allow ("GET, HEAD" for GET) and fn is not
// called. An error of fn that is an *Error (errors.As) is answered with its
// status and body; any other is logged with the method, path and request
// id, and answered 500 internal.
func (s *Server) ServeStatus(method string, okStatus int, fn Func) http.HandlerFunc {
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	msg := s.MethodMessage
	if msg == "" {
		msg = DefaultMethodMessage
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", allow)
			s.WriteError(w, r, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, msg, r.Method, method))
			return
		}
		body, err := fn(r)
		if err != nil {
			ae, ok := errors.AsType[*Error](err)
			if !ok {
				s.log().ErrorContext(r.Context(), s.Name+": request failed",
					"method", r.Method, "path", r.URL.Path, "request_id", reqctx.RequestID(r.Context()), "err", err)
				ae = Errorf(http.StatusInternalServerError, CodeInternal, "internal error")
			}
			s.WriteError(w, r, ae)
			return
		}
		s.WriteJSON(w, r, okStatus, body)
	}
}

// NotFound answers any request, whatever its method, with NoSuchPath.
func (s *Server) NotFound(w http.ResponseWriter, r *http.Request) {
	s.WriteError(w, r, NoSuchPath(r))
}

// WriteError writes e's status and {"error": code, "message": text}.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	s.WriteJSON(w, r, e.Status, errorBody{Error: e.Code, Message: e.Message})
}

// WriteJSON writes status and body encoded as JSON and a newline, with
// Content-Type application/json and Cache-Control no-store. A body that
// cannot be encoded is logged and answered 500 internal instead.
func (s *Server) WriteJSON(w http.ResponseWriter, r *http.Request, status int, body any) {
	enc, err := json.Marshal(body)
	if err != nil {
		s.log().ErrorContext(r.Context(), s.Name+": encoding the response failed",
			"method", r.Method, "path", r.URL.Path, "request_id", reqctx.RequestID(r.Context()), "err", err)
		status, enc = http.StatusInternalServerError, []byte(internalBody)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(enc, '\n'))
}
