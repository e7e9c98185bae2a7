// Package roles compiles jmlgate's role rules and evaluates them against a
// person: which roles apply, and the union of the grants they give (the
// person's desired access, which the lifecycle planner compares with the
// actual access in each connector).
//
// # The `when` language
//
// A role's `when` is a CEL expression (https://cel.dev) of type bool over a
// single variable, `user`, of the object type jmlgate.User. Its fields are
// exactly these; any other name is a compile error ("undefined field"), so a
// typo such as user.departmnet fails at startup instead of silently matching
// nobody:
//
//	userName, displayName, title, userType       string
//	active                                       bool
//	emails                                       list(string), lower-cased
//	department, division, organization,
//	costCenter, employeeNumber                   string (enterprise extension)
//	manager                                      string, the manager's id
//	groups                                       list(string), group display names
//	startDate, endDate                           null or timestamp (lifecycle extension)
//
// `user` is a declared object type (ext.NativeTypes over an internal
// struct) rather than map(string, dyn), whose keys CEL cannot check: with
// a map, user.departmnet would compile and fail (or, under has(), quietly
// be false) at evaluation time for every person.
//
// An attribute the SCIM document does not carry is "" (strings), false
// (active) or [] (lists); never an error. startDate and endDate are typed
// dyn and hold null when absent, so test them before comparing:
// `user.startDate != null && user.startDate < timestamp("2027-01-01T00:00:00Z")`
// (has(user.startDate) works too). Comparing a null date with a timestamp
// is an evaluation error, which Evaluate reports and never counts as a
// match. String comparisons are case-sensitive; use lowerAscii() from the
// strings extension when HR data is inconsistent.
//
// Besides the CEL standard library, expressions may use the strings
// extension (lowerAscii, upperAscii, trim, split, replace, indexOf, ...) and
// the sets extension (sets.contains, sets.intersects, sets.equivalent).
// There is no clock: a role depends only on the person, so evaluating the
// same person twice gives the same answer. Time-based transitions (pre-hire,
// end date reached) belong to the lifecycle engine.
//
// # Limits
//
// A rule cannot hang or exhaust the gateway: an expression is at most
// MaxWhenLength code points and MaxWhenNodes AST nodes (after macro
// expansion) with nesting bounded, regular expressions are size-limited,
// and each evaluation stops with an error once its CEL runtime cost exceeds
// CostLimit.
package roles

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/jmlgate/jmlgate/internal/config"
)

// Limits applied to every `when` expression.
const (
	// MaxWhenLength is the longest expression accepted, in Unicode code
	// points.
	MaxWhenLength = 4096
	// MaxWhenNodes bounds the expression's AST, macro expansions included.
	MaxWhenNodes = 1000
	// maxWhenNesting bounds the parser's recursion depth.
	maxWhenNesting = 50
	// maxRegexProgramSize bounds the compiled size of a regular expression
	// given to matches().
	maxRegexProgramSize = 1000
	// CostLimit is the CEL runtime cost at which one evaluation of one
	// rule is abandoned with an error. Cost grows with the data scanned:
	// `"sre" in user.groups` costs about the number of groups (2,000 for
	// 2,000 groups), sets.intersects(user.groups, names) about groups times
	// names (100,000 for 2,000 groups and 50 names). A rule stopped at the
	// limit has run for 60 to 110 ms on a 2-core machine
	// (BenchmarkCostLimit).
	CostLimit = 1_000_000
)

// userTypeName is the CEL type of `user`, as error messages show it.
const userTypeName = "jmlgate.User"

// Grant is one entitlement in one connector.
type Grant struct {
	Connector   string `json:"connector"`
	Entitlement string `json:"entitlement"`
}

// Role is a role as configured.
type Role struct {
	Name              string  `json:"name"`
	Description       string  `json:"description"`
	When              string  `json:"when"`
	Grants            []Grant `json:"grants"`
	Privileged        bool    `json:"privileged"`
	ApprovalsRequired int     `json:"approvals_required"`
}

// Set is a compiled set of roles, in configuration order. It is immutable
// after Compile and safe for concurrent use.
type Set struct {
	roles []compiled
}

type compiled struct {
	role Role
	prg  cel.Program
}

// RoleError is a problem with one role's `when`: a compile error from
// Compile, or an evaluation error from Evaluate. Index is the role's
// position in the configuration, so callers can point at
// fmt.Sprintf("roles[%d].when", Index) and its line (config.Config.Line).
type RoleError struct {
	Role  string
	Index int
	Err   error
}

func (e *RoleError) Error() string { return fmt.Sprintf("role %q: when: %v", e.Role, e.Err) }

// Unwrap returns the underlying CEL error.
func (e *RoleError) Unwrap() error { return e.Err }

// newEnv builds the CEL environment every expression is checked in.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(types.NativeTypeFor[celUser](types.NativeTypeAlias(userTypeName)), ext.ParseStructTags(true)),
		cel.Variable("user", cel.ObjectType(userTypeName)),
		ext.Strings(),
		ext.Sets(),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(MaxWhenLength),
		cel.ExpressionNodeLimit(MaxWhenNodes),
		cel.ParserRecursionLimit(maxWhenNesting),
		cel.RegexProgramSizeLimit(maxRegexProgramSize),
	)
}

// Compile type-checks and plans every role's `when`. It is all or nothing:
// when any role fails, Compile returns a nil Set and an error joining one
// *RoleError per failing role, in configuration order (errors.As finds
// the first; the message lists them all, one per line). A role fails when
// its expression does not parse, refers to an unknown variable, field or
// function, does not have type bool, or exceeds the size limits. Compile
// also rejects an empty or duplicate role name, which config.Validate
// already rules out, because matches are reported by name.
//
// Compile does not re-check the rest of what config.Validate checks
// (grants, approvals); pass it validated configuration.
func Compile(cfg []config.Role) (*Set, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("roles: building the CEL environment: %w", err)
	}
	var errs []error
	seen := make(map[string]int, len(cfg))
	s := &Set{roles: make([]compiled, 0, len(cfg))}
	for i, rc := range cfg {
		fail := func(err error) { errs = append(errs, &RoleError{Role: rc.Name, Index: i, Err: err}) }
		if rc.Name == "" {
			fail(errors.New("role has no name"))
			continue
		}
		if j, dup := seen[rc.Name]; dup {
			fail(fmt.Errorf("duplicate role name (also roles[%d])", j))
			continue
		}
		seen[rc.Name] = i
		ast, iss := env.Compile(rc.When)
		if iss.Err() != nil {
			fail(iss.Err())
			continue
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			fail(fmt.Errorf("must have type bool, got %s", ast.OutputType()))
			continue
		}
		prg, err := env.Program(ast,
			cel.CostLimit(CostLimit),
			cel.EvalOptions(cel.OptOptimize), // fold constants such as timestamp("...") once
		)
		if err != nil {
			// Planning fails on constant expressions that cannot be
			// evaluated, such as timestamp("not a time").
			fail(err)
			continue
		}
		s.roles = append(s.roles, compiled{role: roleFrom(rc), prg: prg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func roleFrom(rc config.Role) Role {
	r := Role{
		Name:              rc.Name,
		Description:       rc.Description,
		When:              rc.When,
		Privileged:        rc.Privileged,
		ApprovalsRequired: rc.ApprovalsRequired,
		Grants:            make([]Grant, len(rc.Grants)),
	}
	for i, g := range rc.Grants {
		r.Grants[i] = Grant{Connector: g.Connector, Entitlement: g.Entitlement}
	}
	return r
}

// Roles returns the roles in configuration order. The result is a copy
// the caller may modify.
func (s *Set) Roles() []Role {
	out := make([]Role, len(s.roles))
	for i, c := range s.roles {
		out[i] = c.role
		out[i].Grants = slices.Clone(c.role.Grants)
	}
	return out
}

// Match is a role that applies to a user.
type Match struct {
	Role              string  `json:"role"`
	Privileged        bool    `json:"privileged"`
	ApprovalsRequired int     `json:"approvals_required"`
	Grants            []Grant `json:"grants"`
}

// Evaluate returns the roles whose `when` is true for u, in configuration
// order (an empty, non-nil slice when none applies).
//
// It is all or nothing: if any role's expression fails at run time (a
// null date compared with a timestamp, an index out of range, the cost
// limit reached, ...), Evaluate returns nil and an error joining one
// *RoleError per failing role. A failure is never treated as true or as
// false, because either would grant or revoke access on a guess; the
// caller must keep the person's current access until the rule is fixed.
func (s *Set) Evaluate(u User) ([]Match, error) {
	ms, errs := s.evaluate(u)
	if len(errs) > 0 {
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	return ms, nil
}

// evaluate runs every role and returns the matches among the roles that
// evaluated, and the errors of those that did not.
func (s *Set) evaluate(u User) ([]Match, []*RoleError) {
	act := userActivation{u: u.cel()}
	ms := []Match{}
	var errs []*RoleError
	for i := range s.roles {
		c := &s.roles[i]
		ok, err := c.eval(act)
		if err != nil {
			errs = append(errs, &RoleError{Role: c.role.Name, Index: i, Err: err})
			continue
		}
		if ok {
			ms = append(ms, Match{
				Role:              c.role.Name,
				Privileged:        c.role.Privileged,
				ApprovalsRequired: c.role.ApprovalsRequired,
				Grants:            slices.Clone(c.role.Grants),
			})
		}
	}
	return ms, errs
}

func (c *compiled) eval(act userActivation) (bool, error) {
	out, _, err := c.prg.Eval(act)
	if err != nil {
		return false, fmt.Errorf("evaluation failed: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok { // the checker proved bool; this guards against a CEL bug
		return false, fmt.Errorf("evaluation failed: got %s, want bool", out.Type())
	}
	return bool(b), nil
}

// userActivation binds `user` without the map a cel.Activation would
// allocate.
type userActivation struct{ u *celUser }

func (a userActivation) ResolveName(name string) (any, bool) {
	if name == "user" {
		return a.u, true
	}
	return nil, false
}

func (a userActivation) Parent() cel.Activation { return nil }

// DesiredGrant is one grant a person should have, with the roles that give
// it. Privileged is true when any of those roles is privileged: the grant
// then needs approval even if a non-privileged role also gives it, because
// the privileged role's approval rules are the stricter ones.
type DesiredGrant struct {
	Connector   string   `json:"connector"`
	Entitlement string   `json:"entitlement"`
	Roles       []string `json:"roles"`
	Privileged  bool     `json:"privileged"`
}

// Desired is the union of the grants of ms: one DesiredGrant per distinct
// (connector, entitlement), sorted by connector then entitlement (byte
// order), each listing its roles in the order of ms without repeats. It
// returns an empty, non-nil slice for no matches.
func Desired(ms []Match) []DesiredGrant {
	idx := map[Grant]int{}
	out := []DesiredGrant{}
	for _, m := range ms {
		for _, g := range m.Grants {
			i, ok := idx[g]
			if !ok {
				i = len(out)
				idx[g] = i
				out = append(out, DesiredGrant{Connector: g.Connector, Entitlement: g.Entitlement})
			}
			d := &out[i]
			if !slices.Contains(d.Roles, m.Role) {
				d.Roles = append(d.Roles, m.Role)
			}
			d.Privileged = d.Privileged || m.Privileged
		}
	}
	slices.SortFunc(out, func(a, b DesiredGrant) int {
		if c := strings.Compare(a.Connector, b.Connector); c != 0 {
			return c
		}
		return strings.Compare(a.Entitlement, b.Entitlement)
	})
	return out
}
