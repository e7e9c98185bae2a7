// Package schema is jmlgate's view of the SCIM 2.0 schemas it serves: the
// RFC 7643 core User and Group schemas and the enterprise extension as
// defined by github.com/elimity-com/scim/schema, plus jmlgate's lifecycle
// extension. It resolves attribute paths case-insensitively and exposes the
// characteristics (type, caseExact, mutability, returned, multiValued) that
// validation, filtering, PATCH and projection need.
//
// Everything here is immutable after construction and safe for concurrent use.
package schema

import (
	"encoding/json"
	"fmt"
	"strings"

	escim "github.com/elimity-com/scim/schema"
)

// Schema URNs served by jmlgate.
const (
	UserURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	GroupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	EnterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	LifecycleURN  = "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"

	ListResponseURN  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	ErrorURN         = "urn:ietf:params:scim:api:messages:2.0:Error"
	PatchOpURN       = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SearchRequestURN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	BulkRequestURN   = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	BulkResponseURN  = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
)

// Attribute data types (RFC 7643 section 2.3).
const (
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeDecimal   = "decimal"
	TypeInteger   = "integer"
	TypeDateTime  = "dateTime"
	TypeBinary    = "binary"
	TypeReference = "reference"
	TypeComplex   = "complex"
)

// Attr describes one attribute or sub-attribute.
type Attr struct {
	Name        string
	Type        string
	MultiValued bool
	CaseExact   bool
	Required    bool
	Mutability  string // readOnly, readWrite, immutable, writeOnly
	Returned    string // always, never, default, request
	Uniqueness  string
	// Sub holds the sub-attributes of a complex attribute, in schema order.
	Sub []*Attr
	// SchemaID is the URN of the schema that defines the attribute (for a
	// sub-attribute, the parent's schema).
	SchemaID string

	sub map[string]*Attr
}

// SubAttr returns the sub-attribute called name (case-insensitive), or nil.
func (a *Attr) SubAttr(name string) *Attr {
	if a == nil {
		return nil
	}
	return a.sub[strings.ToLower(name)]
}

// ReadOnly reports whether clients may never set the attribute.
func (a *Attr) ReadOnly() bool { return a.Mutability == "readOnly" }

// Schema is one schema (core or extension).
type Schema struct {
	ID          string
	Name        string
	Description string
	Attrs       []*Attr

	byName map[string]*Attr
	raw    escim.Schema
}

// Attr returns the top-level attribute called name (case-insensitive), or nil.
func (s *Schema) Attr(name string) *Attr { return s.byName[strings.ToLower(name)] }

// MarshalJSON renders the schema as an RFC 7643 section 7 schema resource.
func (s *Schema) MarshalJSON() ([]byte, error) {
	m := s.raw.ToMap()
	m["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:Schema"}
	m["meta"] = map[string]any{
		"resourceType": "Schema",
		"location":     "/scim/v2/Schemas/" + s.ID,
	}
	return json.Marshal(m)
}

// ResourceType is a SCIM resource type: a core schema plus extensions.
type ResourceType struct {
	Name        string // "User", "Group"
	Endpoint    string // "/Users", "/Groups"
	Description string
	Core        *Schema
	Extensions  []*Schema
	// Common holds id, externalId and meta.
	Common *Schema
}

// Extension returns the extension schema with the given URN
// (case-insensitive), or nil.
func (rt *ResourceType) Extension(urn string) *Schema {
	for _, e := range rt.Extensions {
		if strings.EqualFold(e.ID, urn) {
			return e
		}
	}
	return nil
}

// Schemas returns the core schema followed by the extensions.
func (rt *ResourceType) Schemas() []*Schema {
	return append([]*Schema{rt.Core}, rt.Extensions...)
}

// Path is a resolved attribute reference: the schema that holds it ("" for
// core and common attributes, which live at the top of a document), the
// attribute, and optionally a sub-attribute.
type Path struct {
	Extension string // extension URN as a document key, "" for core
	Attr      *Attr
	Sub       *Attr // nil when the path names the whole attribute
}

// String renders the path in canonical form.
func (p Path) String() string {
	s := p.Attr.Name
	if p.Sub != nil {
		s += "." + p.Sub.Name
	}
	if p.Extension != "" {
		s = p.Extension + ":" + s
	}
	return s
}

// Target returns the attribute the path finally names (Sub if set).
func (p Path) Target() *Attr {
	if p.Sub != nil {
		return p.Sub
	}
	return p.Attr
}

// Resolve resolves an attribute path such as "userName", "name.givenName",
// "emails.value", "urn:...:enterprise:2.0:User:manager.value" or
// "urn:...:core:2.0:User:userName". Names are case-insensitive. It returns an
// error naming the unknown part.
func (rt *ResourceType) Resolve(path string) (Path, error) {
	return rt.ResolveParts(splitURN(path))
}

// ResolveParts resolves an attribute given its URN prefix (may be empty),
// attribute name and optional sub-attribute name, as a filter parser
// produces them.
func (rt *ResourceType) ResolveParts(urn, attr, sub string) (Path, error) {
	var p Path
	var s *Schema
	switch {
	case urn == "":
		if a := rt.Common.Attr(attr); a != nil {
			p.Attr = a
		} else {
			s = rt.Core
		}
	case strings.EqualFold(urn, rt.Core.ID):
		// The core URN may prefix common attributes too
		// ("urn:...:core:2.0:User:meta.created").
		if a := rt.Common.Attr(attr); a != nil {
			p.Attr = a
		} else {
			s = rt.Core
		}
	default:
		s = rt.Extension(urn)
		if s == nil {
			return p, fmt.Errorf("unknown schema %q", urn)
		}
		p.Extension = s.ID
	}
	if p.Attr == nil {
		p.Attr = s.Attr(attr)
		if p.Attr == nil {
			if urn != "" {
				return p, fmt.Errorf("unknown attribute %q in schema %s", attr, urn)
			}
			return p, fmt.Errorf("unknown attribute %q", attr)
		}
	}
	if sub != "" {
		if p.Attr.Type != TypeComplex {
			return p, fmt.Errorf("attribute %q has no sub-attribute %q", p.Attr.Name, sub)
		}
		p.Sub = p.Attr.SubAttr(sub)
		if p.Sub == nil {
			return p, fmt.Errorf("unknown sub-attribute %q of %q", sub, p.Attr.Name)
		}
	}
	return p, nil
}

// splitURN splits "urn:a:b:Name:attr.sub" into ("urn:a:b:Name", "attr",
// "sub"). Without a URN prefix the first return is "". The split point is the
// last colon, so URNs themselves may contain dots (e.g. "2.0").
func splitURN(path string) (urn, attr, sub string) {
	if strings.HasPrefix(strings.ToLower(path), "urn:") {
		i := strings.LastIndexByte(path, ':')
		urn, path = path[:i], path[i+1:]
	}
	attr, sub, _ = strings.Cut(path, ".")
	return urn, attr, sub
}

// SplitURN exposes splitURN for packages that parse paths themselves.
func SplitURN(path string) (urn, attr, sub string) { return splitURN(path) }

// Registry holds the resource types jmlgate serves.
type Registry struct {
	User  *ResourceType
	Group *ResourceType
}

// ByName returns the resource type called name ("User" or "Group"), or nil.
func (r *Registry) ByName(name string) *ResourceType {
	switch name {
	case "User":
		return r.User
	case "Group":
		return r.Group
	}
	return nil
}

// All returns every schema, core first.
func (r *Registry) All() []*Schema {
	return []*Schema{r.User.Core, r.Group.Core, r.User.Extensions[0], r.User.Extensions[1]}
}

// Find returns the schema with the given URN, or nil.
func (r *Registry) Find(urn string) *Schema {
	for _, s := range r.All() {
		if s.ID == urn {
			return s
		}
	}
	return nil
}

// New builds the registry. It is cheap; callers build one at start-up and
// share it.
func New() *Registry {
	common := commonSchema()
	return &Registry{
		User: &ResourceType{
			Name: "User", Endpoint: "/Users", Description: "User accounts pushed by HR and identity providers",
			Core:       convert(escim.CoreUserSchema()),
			Extensions: []*Schema{convert(escim.ExtensionEnterpriseUser()), convert(lifecycleSchema())},
			Common:     common,
		},
		Group: &ResourceType{
			Name: "Group", Endpoint: "/Groups", Description: "Groups of users",
			Core:   convert(escim.CoreGroupSchema()),
			Common: common,
		},
	}
}

func commonSchema() *Schema {
	s := &Schema{ID: "common", byName: map[string]*Attr{}}
	for _, a := range escim.CommonAttributes() {
		at := convertAttr(a, "")
		s.Attrs = append(s.Attrs, at)
		s.byName[strings.ToLower(at.Name)] = at
	}
	// RFC 7643 section 3.1: externalId is caseExact.
	s.byName["externalid"].CaseExact = true
	return s
}

func convert(es escim.Schema) *Schema {
	s := &Schema{ID: es.ID, Name: es.Name.Value(), Description: es.Description.Value(), byName: map[string]*Attr{}, raw: es}
	for _, a := range es.Attributes {
		at := convertAttr(a, es.ID)
		s.Attrs = append(s.Attrs, at)
		s.byName[strings.ToLower(at.Name)] = at
	}
	return s
}

func convertAttr(a escim.CoreAttribute, schemaID string) *Attr {
	at := &Attr{
		Name: a.Name(), Type: a.AttributeType(), MultiValued: a.MultiValued(), CaseExact: a.CaseExact(),
		Required: a.Required(), Mutability: a.Mutability(), Returned: a.Returned(), Uniqueness: a.Uniqueness(),
		SchemaID: schemaID,
	}
	if a.HasSubAttributes() {
		at.sub = map[string]*Attr{}
		for _, sa := range a.SubAttributes() {
			s := convertAttr(sa, schemaID)
			at.Sub = append(at.Sub, s)
			at.sub[strings.ToLower(s.Name)] = s
		}
	}
	return at
}
