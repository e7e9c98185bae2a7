// Package scim is jmlgate's SCIM 2.0 service provider (RFC 7643, RFC 7644):
// Users and Groups with the enterprise and lifecycle extensions, filtering,
// sorting, paging, projection, PATCH, ETags, Bulk and the discovery
// endpoints, with the quirks of Microsoft Entra ID and Okta tolerated.
//
// It is a plain net/http handler: the HTTP framework in front of it
// authenticates the caller and puts the actor and request id in the context
// (internal/reqctx). Every write is one store transaction that also appends
// the audit record; if either fails, nothing is written.
package scim

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// Prefix is where the service provider is mounted.
const Prefix = "/scim/v2"

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	Store    store.Store
	Registry *schema.Registry // default schema.New()
	// BaseURL is the externally visible origin ("https://jml.example.com")
	// used in meta.location; empty means derive it from the request Host.
	BaseURL string
	// MaxResults caps count on list requests (default 1000).
	MaxResults int
	// MaxBodyBytes caps request bodies other than Bulk (default 1 MiB).
	MaxBodyBytes int64
	// BulkMaxOperations and BulkMaxPayload are advertised in
	// ServiceProviderConfig and enforced (defaults 1000 and 1 MiB).
	BulkMaxOperations int
	BulkMaxPayload    int64
	Now               func() time.Time
	Logger            *slog.Logger
	// Lifecycle, when set, is told inside each write's transaction about
	// every user whose lifecycle the write may change: the user written or
	// deleted, and users who joined or left a group or whose group was
	// renamed. Its error aborts the write.
	Lifecycle Lifecycle
}

// Lifecycle is the hook the lifecycle engine implements.
type Lifecycle interface {
	// UserChanged re-reads the user (or its absence) through tx.
	UserChanged(ctx context.Context, tx store.Tx, userID string) error
	// UserCreated is told about a user created in tx, with its stored
	// document, so nothing needs re-reading.
	UserCreated(ctx context.Context, tx store.Tx, userID string, doc map[string]any) error
	// UserUpdated is told about a user replaced or patched in tx, with
	// its new stored document, so the user need not be re-read.
	UserUpdated(ctx context.Context, tx store.Tx, userID string, doc map[string]any) error
}

// Server serves /scim/v2. Safe for concurrent use.
type Server struct {
	cfg Config
	reg *schema.Registry
	mux *http.ServeMux
	now func() time.Time
	log *slog.Logger
}

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	if cfg.Registry == nil {
		cfg.Registry = schema.New()
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = 1000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.BulkMaxOperations <= 0 {
		cfg.BulkMaxOperations = 1000
	}
	if cfg.BulkMaxPayload <= 0 {
		cfg.BulkMaxPayload = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, reg: cfg.Registry, mux: http.NewServeMux(), now: cfg.Now, log: cfg.Logger}
	for _, rt := range []*schema.ResourceType{s.reg.User, s.reg.Group} {
		rt := rt
		s.mux.HandleFunc(Prefix+rt.Endpoint, func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet:
				s.handleList(w, r, rt)
			case http.MethodPost:
				s.handleCreate(w, r, rt)
			default:
				methodNotAllowed(w, "GET, POST")
			}
		})
		s.mux.HandleFunc(Prefix+rt.Endpoint+"/.search", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				methodNotAllowed(w, "POST")
				return
			}
			s.handleSearch(w, r, rt)
		})
		s.mux.HandleFunc(Prefix+rt.Endpoint+"/{id}", func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			switch r.Method {
			case http.MethodGet:
				s.handleGet(w, r, rt, id)
			case http.MethodPut:
				s.handleReplace(w, r, rt, id)
			case http.MethodPatch:
				s.handlePatch(w, r, rt, id)
			case http.MethodDelete:
				s.handleDelete(w, r, rt, id)
			default:
				methodNotAllowed(w, "GET, PUT, PATCH, DELETE")
			}
		})
	}
	s.mux.HandleFunc(Prefix+"/Bulk", s.only(http.MethodPost, s.handleBulk))
	s.mux.HandleFunc(Prefix+"/.search", s.only(http.MethodPost, s.handleRootSearch))
	s.mux.HandleFunc(Prefix+"/ServiceProviderConfig", s.only(http.MethodGet, s.handleServiceProviderConfig))
	s.mux.HandleFunc(Prefix+"/ResourceTypes", s.only(http.MethodGet, s.handleResourceTypes))
	s.mux.HandleFunc(Prefix+"/ResourceTypes/{name}", s.only(http.MethodGet, s.handleResourceType))
	s.mux.HandleFunc(Prefix+"/Schemas", s.only(http.MethodGet, s.handleSchemas))
	s.mux.HandleFunc(Prefix+"/Schemas/{id}", s.only(http.MethodGet, s.handleSchema))
	s.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, errorf(http.StatusNotFound, "", "no SCIM endpoint at %s", r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// No panic reaches a client as a dropped connection: it is logged and
		// answered with a SCIM 500. Store transactions roll back on panic.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "scim: panic", "panic", v, "request_id", reqctx.RequestID(r.Context()))
			WriteError(w, errInternal)
		}
	}()
	s.mux.ServeHTTP(w, r)
}

func (s *Server) only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			methodNotAllowed(w, method)
			return
		}
		h(w, r)
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	WriteError(w, errorf(http.StatusMethodNotAllowed, "", "method not allowed; use %s", allow))
}

// fail writes err to the client. Non-SCIM errors are logged in full and
// answered with a generic 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if se := asSCIM(err); se != nil {
		WriteError(w, se)
		return
	}
	s.log.ErrorContext(r.Context(), "scim: request failed", "error", err, "method", r.Method, "path", r.URL.Path,
		"request_id", reqctx.RequestID(r.Context()))
	WriteError(w, errInternal)
}

// detach keeps request-scoped values but not the client's cancellation, so
// a client hanging up cannot abort a write between its store change and its
// audit record (STYLE.md habit 9). Writes still end with the server's
// request timeout through the store's own deadline.
func detach(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// respond writes a resource representation with its ETag (and Location
// for a creation).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, res *result, q projection) {
	base := s.baseURL(r)
	body, err := res.view.encode(nil, rt, base, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(res.view.res.Version))
	if res.status == http.StatusCreated {
		w.Header().Set("Location", base+rt.Endpoint+"/"+res.view.res.ID)
	}
	writeRaw(w, res.status, body)
}

// isJSONContentType accepts SCIM's media type, plain JSON (Okta) and a
// missing header.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == ContentType || mt == "application/json"
}
