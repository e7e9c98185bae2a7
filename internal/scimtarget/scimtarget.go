// Package scimtarget runs a SaaS application's SCIM 2.0 service provider
// for tests and benchmarks: jmlgate's own SCIM server (package scim) on its
// own SQLite file, behind a bearer token, with knobs a real SaaS API has
// (latency, outages, rate limiting). Outbound connectors are tested against
// it, so they meet the real protocol, not a mock of it.
package scimtarget

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/scim"
)

// Options configure a Server.
type Options struct {
	// Token is the bearer token the target accepts (required).
	Token string
	// Latency is added to every request, as a remote API would.
	Latency time.Duration
	// OnOp, when set, is called with every state-changing request the
	// target applied (see Op), after the change and before the response
	// is sent. It runs on the request's goroutine: a test can stop the
	// client at an exact point of a delivery.
	OnOp func(Op)
	// FastMembership answers a PATCH of a group made only of member adds
	// and removes (the shapes the scim connector sends) directly against
	// the store, in one transaction, with 204 No Content, as many SaaS
	// APIs do. jmlgate's SCIM server re-resolves every member of a group
	// on each PATCH (a query or two per member), which makes a group of
	// thousands the bottleneck of a benchmark that is meant to measure the
	// gateway. Semantics are the SCIM server's: adding an unknown member
	// is 400 invalidValue, removing an absent one succeeds, an unknown
	// group is 404.
	FastMembership bool
}

// Server is one running target.
type Server struct {
	URL   string // base URL of the SCIM API (…/scim/v2)
	Store store.Store

	opts     Options
	ts       *httptest.Server
	down     atomic.Int32 // > 0: answer 503 with Retry-After
	requests atomic.Int64

	mu     sync.Mutex
	fails  []int          // statuses for the next requests
	paused chan struct{}  // non-nil while paused; closed on resume
	ops    []Op           // every state-changing request applied, in order
	counts map[string]int // applied ops by kind
}

// Start runs a target whose database lives in dir.
func Start(ctx context.Context, dir string, opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, fmt.Errorf("scimtarget: a token is required")
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "target.db"))
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{Store: st, opts: opts}
	h := scim.NewServer(scim.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	s.ts = httptest.NewServer(s.wrap(h))
	s.URL = s.ts.URL + scim.Prefix
	return s, nil
}

// Close stops the server and closes its store.
func (s *Server) Close() error {
	s.ts.Close()
	return s.Store.Close()
}

// Requests is how many requests the target has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// SetDown makes the target answer every request with 503 and Retry-After:
// 1 (true) or serve normally again (false).
func (s *Server) SetDown(down bool) {
	if down {
		s.down.Store(1)
	} else {
		s.down.Store(0)
	}
}

// FailNext answers the next len(statuses) requests with those statuses.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	s.fails = append(s.fails, statuses...)
	s.mu.Unlock()
}

// Pause makes requests that arrive from now on wait, before anything else
// is done with them, until Resume (or until their client gives up). It
// holds deliveries in flight at a known point.
func (s *Server) Pause() {
	s.mu.Lock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
	s.mu.Unlock()
}

// Resume lets paused and later requests through.
func (s *Server) Resume() {
	s.mu.Lock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
	s.mu.Unlock()
}

func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		// Reading the body first lets net/http notice a client that hangs
		// up while the request waits below (it watches the connection
		// only once the body is consumed).
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		paused := s.paused
		s.mu.Unlock()
		if paused != nil {
			select {
			case <-paused:
			case <-r.Context().Done():
				return
			}
		}
		if s.opts.Latency > 0 {
			select {
			case <-time.After(s.opts.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if s.down.Load() > 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		var fail int
		if len(s.fails) > 0 {
			fail, s.fails = s.fails[0], s.fails[1:]
		}
		s.mu.Unlock()
		if fail != 0 {
			http.Error(w, "injected", fail)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
			http.Error(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401"}`, http.StatusUnauthorized)
			return
		}
		ctx := reqctx.WithActor(r.Context(), "token:jmlgate")
		s.serveRecorded(h, w, r.WithContext(ctx))
	})
}

// Account is a user as the target holds it.
type Account struct {
	ID         string
	UserName   string
	ExternalID string
	Active     bool
	Groups     []string // display names, sorted
}

// Account returns the target's user with that userName, or ok false.
func (s *Server) Account(ctx context.Context, userName string) (a Account, ok bool, err error) {
	err = s.Store.View(ctx, func(tx store.ReadTx) error {
		rs, _, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: userName, Limit: -1})
		if err != nil || len(rs) == 0 {
			return err
		}
		var doc struct {
			Active bool `json:"active"`
		}
		if err := json.Unmarshal(rs[0].Data, &doc); err != nil {
			return err
		}
		gs, err := tx.GroupsOf(ctx, rs[0].ID)
		if err != nil {
			return err
		}
		a = Account{ID: rs[0].ID, UserName: rs[0].Name, ExternalID: rs[0].ExternalID, Active: doc.Active}
		for _, g := range gs {
			a.Groups = append(a.Groups, g.Display)
		}
		slices.Sort(a.Groups)
		ok = true
		return nil
	})
	return a, ok, err
}
