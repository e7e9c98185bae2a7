package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim/filter"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// listParams are the query parameters of RFC 7644 §3.4.2, from the URL or a
// POST .search body.
type listParams struct {
	filter     string
	startIndex int // 1-based, already clamped
	count      int // already clamped to [0, MaxResults]
	sortBy     string
	descending bool
	proj       projection
}

func (s *Server) paramsFromQuery(r *http.Request) (listParams, error) {
	q := r.URL.Query()
	p := listParams{filter: q.Get("filter"), sortBy: q.Get("sortBy"), proj: projectionFrom(r)}
	var err error
	if p.startIndex, err = intParam(q.Get("startIndex"), 1); err != nil {
		return p, badRequest(serr.ScimTypeInvalidValue, "startIndex: %v", err)
	}
	if p.count, err = intParam(q.Get("count"), s.cfg.MaxResults); err != nil {
		return p, badRequest(serr.ScimTypeInvalidValue, "count: %v", err)
	}
	if p.descending, err = sortOrder(q.Get("sortOrder")); err != nil {
		return p, err
	}
	s.clamp(&p)
	return p, nil
}

func intParam(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &strconv.NumError{Func: "parse", Num: v, Err: strconv.ErrSyntax}
	}
	return n, nil
}

func sortOrder(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "ascending":
		return false, nil
	case "descending":
		return true, nil
	}
	return false, badRequest(serr.ScimTypeInvalidValue, `sortOrder must be "ascending" or "descending", not %q`, v)
}

// clamp applies RFC 7644 §3.4.2.4: startIndex < 1 means 1, a negative count
// means 0, and count is capped by MaxResults.
func (s *Server) clamp(p *listParams) {
	if p.startIndex < 1 {
		p.startIndex = 1
	}
	if p.count < 0 {
		p.count = 0
	}
	if p.count > s.cfg.MaxResults {
		p.count = s.cfg.MaxResults
	}
}

// searchRequest is the body of POST .search (RFC 7644 §3.4.3).
type searchRequest struct {
	Schemas            []string `json:"schemas"`
	Attributes         []string `json:"attributes"`
	ExcludedAttributes []string `json:"excludedAttributes"`
	Filter             string   `json:"filter"`
	SortBy             string   `json:"sortBy"`
	SortOrder          string   `json:"sortOrder"`
	StartIndex         *int     `json:"startIndex"`
	Count              *int     `json:"count"`
}

func (s *Server) paramsFromSearch(r *http.Request) (listParams, error) {
	b, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return listParams{}, err
	}
	var req searchRequest
	if err := decodeStrict(b, &req); err != nil {
		return listParams{}, err
	}
	if !contains(req.Schemas, schema.SearchRequestURN) {
		return listParams{}, badRequest(serr.ScimTypeInvalidSyntax, "schemas must contain %q", schema.SearchRequestURN)
	}
	p := listParams{filter: req.Filter, sortBy: req.SortBy, startIndex: 1, count: s.cfg.MaxResults,
		proj: projection{attrs: req.Attributes, excluded: req.ExcludedAttributes}}
	if req.StartIndex != nil {
		p.startIndex = *req.StartIndex
	}
	if req.Count != nil {
		p.count = *req.Count
	}
	if p.descending, err = sortOrder(req.SortOrder); err != nil {
		return p, err
	}
	s.clamp(&p)
	return p, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType) {
	p, err := s.paramsFromQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveList(w, r, rt, p)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType) {
	p, err := s.paramsFromSearch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveList(w, r, rt, p)
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, p listParams) {
	base := s.baseURL(r)
	views, total, err := s.list(r.Context(), rt, p, base)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeList(w, r, []typedViews{{rt, views}}, total, p)
}

// typedViews is one resource type's part of a list response.
type typedViews struct {
	rt    *schema.ResourceType
	views []*view
}

// handleRootSearch is POST /.search (RFC 7644 §3.4.3): the query runs over
// Users, then Groups, as one result list. A filter that names attributes one
// type does not have matches nothing of that type; it is an error only when
// it fits neither. sortBy applies within each type.
func (s *Server) handleRootSearch(w http.ResponseWriter, r *http.Request) {
	p, err := s.paramsFromSearch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.baseURL(r)
	var parts []typedViews
	var total int
	var firstErr error
	fits := 0
	// The window [startIndex, startIndex+count) over the concatenation is
	// cut from each type in turn: the types before it shift startIndex by
	// their totals and consume count by what they returned.
	q := p
	for _, rt := range []*schema.ResourceType{s.reg.User, s.reg.Group} {
		views, n, err := s.list(r.Context(), rt, q, base)
		if se := asSCIM(err); se != nil && se.Status == http.StatusBadRequest {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		fits++
		parts = append(parts, typedViews{rt, views})
		total += n
		q.startIndex = max(1, q.startIndex-n)
		q.count -= len(views)
	}
	if fits == 0 {
		s.fail(w, r, firstErr)
		return
	}
	s.writeList(w, r, parts, total, p)
}

// writeList writes a ListResponse whose resources may span types.
func (s *Server) writeList(w http.ResponseWriter, r *http.Request, parts []typedViews, total int, p listParams) {
	base := s.baseURL(r)
	var err error
	n := 0
	for _, part := range parts {
		n += len(part.views)
	}
	// The envelope is written by hand so each resource can be spliced from
	// its stored JSON (view.encode).
	buf := make([]byte, 0, 160+768*n)
	buf = append(buf, `{"schemas":["`+schema.ListResponseURN+`"],"totalResults":`...)
	buf = strconv.AppendInt(buf, int64(total), 10)
	buf = append(buf, `,"startIndex":`...)
	buf = strconv.AppendInt(buf, int64(p.startIndex), 10)
	buf = append(buf, `,"itemsPerPage":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, `,"Resources":[`...)
	first := true
	for _, part := range parts {
		for _, v := range part.views {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			if buf, err = v.encode(buf, part.rt, base, p.proj); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	buf = append(buf, "]}"...)
	writeRaw(w, http.StatusOK, buf)
}

// nativeSort maps a sortBy path to an order the store provides.
func nativeSort(rt *schema.ResourceType, path schema.Path) (store.SortKey, bool) {
	if path.Extension != "" {
		return "", false
	}
	name := path.Attr.Name
	if path.Sub != nil {
		name += "." + path.Sub.Name
	}
	switch {
	case name == "userName" && rt.Name == store.TypeUser, name == "displayName" && rt.Name == store.TypeGroup:
		return store.SortName, true
	case name == "externalId":
		return store.SortExternalID, true
	case name == "meta.created":
		return store.SortCreated, true
	case name == "meta.lastModified":
		return store.SortLastModified, true
	}
	return "", false
}

// list evaluates a list request in one read snapshot. Filters with an
// equality on id, externalId, userName or (groups) displayName are answered
// from the index and only the candidates are matched; a filter that is just
// that equality needs no matching at all. Other filters scan.
func (s *Server) list(ctx context.Context, rt *schema.ResourceType, p listParams, base string) ([]*view, int, error) {
	var expr filter.Expr
	var f *filter.Filter
	if p.filter != "" {
		var err error
		if expr, err = filter.Parse(p.filter); err != nil {
			if se := asSCIM(err); se != nil {
				return nil, 0, se
			}
			return nil, 0, badRequest(serr.ScimTypeInvalidFilter, "%v", err)
		}
	}
	w := s.wantFor(rt, p.proj)
	// An IdP's lookup (a sole userName/externalId/id equality) is answered
	// from an index before anything else: the term is already resolved
	// against the schema, so compiling the filter would add nothing.
	if page, total, ok, err := s.lookupExact(ctx, rt, expr, p, w); ok || err != nil {
		return page, total, err
	}
	if expr != nil {
		var err error
		if f, err = filter.Compile(expr, rt); err != nil {
			return nil, 0, err
		}
	}
	var sortPath *schema.Path
	var native store.SortKey
	nativeOK := true
	if p.sortBy != "" {
		sp, err := rt.Resolve(p.sortBy)
		if err != nil {
			return nil, 0, badRequest(serr.ScimTypeInvalidValue, "sortBy: %v", err)
		}
		sortPath = &sp
		native, nativeOK = nativeSort(rt, sp)
	}
	var page []*view
	var total int
	err := s.cfg.Store.View(ctx, func(tx store.ReadTx) error {
		if f == nil && nativeOK {
			q := store.ListQuery{Type: rt.Name, Sort: native, Descending: p.descending, Offset: p.startIndex - 1, Limit: p.count, WithGroups: w.groups}
			items, n, err := tx.ListResources(ctx, q)
			if err != nil {
				return err
			}
			total = n
			page, err = fetchPage(ctx, tx, items, w)
			return err
		}
		// Matching needs whatever the filter mentions; the page then gets
		// whatever the projection wants.
		mw := want{}
		if expr != nil {
			mw.groups = rt.Name == store.TypeUser && mentions(expr, "groups")
			mw.members = rt.Name == store.TypeGroup && mentions(expr, "members")
		}
		var matched []*candidate
		visit := func(res *store.Resource, exact bool) error {
			if exact {
				matched = append(matched, &candidate{res: res})
				return nil
			}
			v, err := fetch(ctx, tx, res, mw)
			if err != nil {
				return err
			}
			d, err := v.doc(rt, base)
			if err != nil {
				return err
			}
			if f == nil || f.Match(d) {
				matched = append(matched, &candidate{res: res, doc: d})
			}
			return nil
		}
		if err := s.candidates(ctx, tx, rt, expr, w.groups || mw.groups, visit); err != nil {
			return err
		}
		if sortPath != nil && len(matched) > 1 {
			for _, c := range matched {
				if c.doc == nil {
					var err error
					if c.doc, err = (&view{res: c.res}).doc(rt, base); err != nil {
						return err
					}
				}
			}
			sortCandidates(matched, *sortPath, p.descending)
		}
		total = len(matched)
		from := min(p.startIndex-1, total)
		to := min(from+p.count, total)
		items := make([]*store.Resource, 0, to-from)
		for _, c := range matched[from:to] {
			items = append(items, c.res)
		}
		var err error
		page, err = fetchPage(ctx, tx, items, w)
		return err
	})
	return page, total, err
}

type candidate struct {
	res *store.Resource
	doc map[string]any // nil when the index answered the filter exactly
}

// candidates calls visit for every resource that may match expr (with its
// groups read alongside when withGroups and the index answers): those of
// one index lookup when expr has an indexable equality, all of the type
// otherwise.
func (s *Server) candidates(ctx context.Context, tx store.ReadTx, rt *schema.ResourceType, expr filter.Expr, withGroups bool,
	visit func(res *store.Resource, exact bool) error) error {
	if expr != nil {
		if best := indexPlan(expr, rt, withGroups); best != nil {
			items, _, err := tx.ListResources(ctx, *best)
			if err != nil {
				return err
			}
			whole := isSoleTerm(expr, best)
			for _, res := range items {
				if err := visit(res, whole && answersExactly(best, res)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return tx.ScanResources(ctx, rt.Name, func(res *store.Resource) error { return visit(res, false) })
}

// indexPlan picks the index lookup that narrows expr best, or nil.
func indexPlan(expr filter.Expr, rt *schema.ResourceType, withGroups bool) *store.ListQuery {
	var best *store.ListQuery
	for _, t := range filter.IndexTerms(expr, rt) {
		q := &store.ListQuery{Type: rt.Name, IndexValue: t.Value, Limit: -1, WithGroups: withGroups}
		switch t.Attr {
		case "id":
			q.IndexAttr = store.IndexID
		case "userName":
			q.IndexAttr = store.IndexName
		case "displayName":
			if rt.Name != store.TypeGroup {
				continue
			}
			q.IndexAttr = store.IndexName
		case "externalId":
			q.IndexAttr = store.IndexExternalID
		default:
			continue
		}
		// id and userName are unique; prefer them over externalId and
		// group displayName.
		if best == nil || q.IndexAttr == store.IndexID || (q.IndexAttr == store.IndexName && rt.Name == store.TypeUser) {
			best = q
		}
	}
	return best
}

// lookupExact answers a filter that is one indexed equality with a single
// store statement and no transaction (store.Store.Lookup). ok is false when
// the request needs more (a sort, group members) or when the index cannot
// decide a candidate alone; the caller then takes the general path.
func (s *Server) lookupExact(ctx context.Context, rt *schema.ResourceType, expr filter.Expr, p listParams, w want) (page []*view, total int, ok bool, err error) {
	if expr == nil || p.sortBy != "" || w.members {
		return nil, 0, false, nil
	}
	best := indexPlan(expr, rt, w.groups)
	if best == nil || !isSoleTerm(expr, best) {
		return nil, 0, false, nil
	}
	items, err := s.cfg.Store.Lookup(ctx, *best)
	if err != nil {
		return nil, 0, false, err
	}
	for _, r := range items {
		if !answersExactly(best, r) {
			return nil, 0, false, nil
		}
	}
	from := min(p.startIndex-1, len(items))
	to := min(from+p.count, len(items))
	for _, r := range items[from:to] {
		v := &view{res: r}
		if w.groups {
			v.groups = r.Groups
		}
		page = append(page, v)
	}
	return page, len(items), true, nil
}

// isSoleTerm reports whether expr is nothing but the equality q looks up.
func isSoleTerm(expr filter.Expr, q *store.ListQuery) bool {
	c, ok := expr.(filter.Compare)
	if !ok || c.Op != filter.OpEq {
		return false
	}
	v, ok := c.Value.(string)
	return ok && v == q.IndexValue
}

// answersExactly reports whether the index lookup q alone decides that res
// matches: id and externalId compare exactly in the store and in filters;
// names compare case-insensitively in both, and the store's lower-casing and
// the filter's case folding agree for ASCII.
func answersExactly(q *store.ListQuery, res *store.Resource) bool {
	switch q.IndexAttr {
	case store.IndexID:
		return res.ID == q.IndexValue
	case store.IndexExternalID:
		return res.ExternalID == q.IndexValue
	case store.IndexName:
		return isASCII(q.IndexValue) && isASCII(res.Name) && strings.EqualFold(res.Name, q.IndexValue)
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// mentions reports whether expr refers to the top-level attribute name.
// Parse returns nodes as values.
func mentions(e filter.Expr, name string) bool {
	switch e := e.(type) {
	case filter.And:
		return mentions(e.L, name) || mentions(e.R, name)
	case filter.Or:
		return mentions(e.L, name) || mentions(e.R, name)
	case filter.Not:
		return mentions(e.X, name)
	case filter.Compare:
		return strings.EqualFold(e.Path.Attr, name)
	case filter.ValuePath:
		return strings.EqualFold(e.Path.Attr, name)
	}
	return false
}

// sortCandidates orders by the value at path (RFC 7644 §3.4.2.3): for a
// multi-valued attribute the primary value, else the first. Resources
// without a value sort last when ascending and first when descending, as
// the RFC asks. Ties keep creation order, and descending reverses the whole
// ascending order, ties included, exactly as store.ListQuery sorts, so a
// request orders the same whether or not it has a filter.
func sortCandidates(cs []*candidate, path schema.Path, desc bool) {
	target := path.Target()
	keys := make([]any, len(cs))
	for i, c := range cs {
		keys[i] = sortKey(c.doc, path)
	}
	idx := make([]int, len(cs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if ka == nil || kb == nil {
			return ka != nil && kb == nil
		}
		return compareValues(ka, kb, target) < 0
	})
	out := make([]*candidate, len(cs))
	for i, j := range idx {
		if desc {
			i = len(idx) - 1 - i
		}
		out[i] = cs[j]
	}
	copy(cs, out)
}

func sortKey(doc map[string]any, path schema.Path) any {
	var v any = doc
	if path.Extension != "" {
		v = doc[path.Extension]
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil
	}
	v = m[path.Attr.Name]
	if arr, ok := v.([]any); ok {
		v = nil
		for i, e := range arr {
			em, _ := e.(map[string]any)
			if i == 0 || (em != nil && em["primary"] == true) {
				v = e
			}
		}
	}
	if path.Sub != nil {
		em, _ := v.(map[string]any)
		if em == nil {
			return nil
		}
		v = em[path.Sub.Name]
	} else if em, ok := v.(map[string]any); ok {
		v = em["value"]
	}
	return v
}

func compareValues(a, b any, attr *schema.Attr) int {
	switch attr.Type {
	case schema.TypeInteger, schema.TypeDecimal:
		fa, _ := toFloat(a)
		fb, _ := toFloat(b)
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	case schema.TypeDateTime:
		return parseDateTime(str(a)).Compare(parseDateTime(str(b)))
	case schema.TypeBoolean:
		ba, bb := a == true, b == true
		switch {
		case ba == bb:
			return 0
		case !ba:
			return -1
		}
		return 1
	}
	sa, sb := str(a), str(b)
	if !attr.CaseExact {
		sa, sb = strings.ToLower(sa), strings.ToLower(sb)
	}
	return strings.Compare(sa, sb)
}

// parseDateTime reads a stored xsd:dateTime (RFC 7643 §2.3.5). Values
// without a zone offset are taken as UTC, as the filter package compares
// them, so that sorting and filtering agree.
func parseDateTime(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	t, _ := time.Parse("2006-01-02T15:04:05.999999999", s)
	return t
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}
