// Package filter parses, type-checks and evaluates SCIM 2.0 filters (RFC
// 7644 section 3.4.2.2) and PATCH paths (section 3.5.2).
//
// Parse turns filter text into an Expr tree whose String method renders
// canonical syntax; Compile binds a tree to a schema.ResourceType, checking
// every attribute, operator and literal and precomputing what evaluation
// needs, and Filter.Match evaluates it against a normalized resource
// document. CompileElement does the same for the inside of a value filter
// such as members[value eq "x"], evaluated against one element; the PATCH
// engine uses it with ParsePath. IndexTerms picks the equality conditions
// a store can answer from an index.
//
// Parse and ParsePath fail with *ParseError (syntax, with a byte
// position); Compile and CompileElement fail with *errors.ScimError from
// github.com/elimity-com/scim/errors (scimType invalidFilter, status 400).
// Everything here is safe for concurrent use; a compiled *Filter is
// immutable.
package filter
