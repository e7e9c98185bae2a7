package events

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/jmlgate/jmlgate/internal/store"
)

// subject is one subject identifier (RFC 9493) jmlgate can match.
type subject struct {
	format     string // "email" or "iss_sub"
	email      string // format email
	iss, value string // format iss_sub: the identity's issuer and its sub
}

func (s subject) String() string {
	if s.format == "email" {
		return "email:" + s.email
	}
	return "iss_sub:" + s.iss + "|" + s.value
}

// maxAliases bounds the identifiers of an "aliases" subject.
const maxAliases = 16

// parseSubject reads a subject identifier: RFC 9493 formats email and
// iss_sub, an "aliases" list of identifiers (those of a supported format
// are kept), or a CAEP complex subject, of which the "user" member is
// used. It returns the supported identifiers (none for a well-formed
// identifier of another format, such as opaque or phone_number) and the
// format named at the top. An identifier of a supported format that lacks
// its members is a *setError invalid_request.
func parseSubject(raw json.RawMessage) ([]subject, string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", refuse(ErrInvalidRequest, "subject must be a JSON object")
	}
	fmtRaw, hasFormat := m["format"]
	if !hasFormat {
		// A CAEP complex subject: {"user": {...}, "tenant": {...}, ...}.
		if user, ok := m["user"]; ok {
			subs, f, err := parseSubject(user)
			return subs, "complex/" + f, err
		}
		return nil, "", refuse(ErrInvalidRequest, "subject has no format (and no user member)")
	}
	var format string
	if err := json.Unmarshal(fmtRaw, &format); err != nil || format == "" {
		return nil, "", refuse(ErrInvalidRequest, "subject format must be a non-empty string")
	}
	str := func(name string) (string, error) {
		var s string
		if err := json.Unmarshal(m[name], &s); err != nil || s == "" {
			return "", refuse(ErrInvalidRequest, "%s subject needs a non-empty string %q", format, name)
		}
		return s, nil
	}
	switch format {
	case "email":
		email, err := str("email")
		if err != nil {
			return nil, format, err
		}
		return []subject{{format: format, email: email}}, format, nil
	case "iss_sub":
		iss, err := str("iss")
		if err != nil {
			return nil, format, err
		}
		sub, err := str("sub")
		if err != nil {
			return nil, format, err
		}
		return []subject{{format: format, iss: iss, value: sub}}, format, nil
	case "aliases":
		var ids []json.RawMessage
		if err := json.Unmarshal(m["identifiers"], &ids); err != nil || len(ids) == 0 {
			return nil, format, refuse(ErrInvalidRequest, "aliases subject needs a non-empty identifiers array")
		}
		if len(ids) > maxAliases {
			return nil, format, refuse(ErrInvalidRequest, "aliases subject has more than %d identifiers", maxAliases)
		}
		var out []subject
		for _, id := range ids {
			var inner struct {
				Format string `json:"format"`
			}
			if json.Unmarshal(id, &inner) == nil && inner.Format == "aliases" {
				return nil, format, refuse(ErrInvalidRequest, "aliases subject must not nest aliases")
			}
			subs, _, err := parseSubject(id)
			if err != nil {
				return nil, format, err
			}
			out = append(out, subs...)
		}
		return out, format, nil
	}
	return nil, format, nil
}

// resolve returns the ids of the live users the subjects name, sorted,
// without duplicates.
//
//   - email: the user whose userName is the address (case-insensitively,
//     an index lookup); only when there is none, every user whose emails
//     hold the address (case-insensitively), which scans all users.
//   - iss_sub: the users whose externalId is sub (exactly, an index
//     lookup); only when there are none, the user whose userName is sub.
//     The identifier's iss is not compared: the SET's issuer vouches for
//     it.
//
// Cost: the scan decodes every user document, so an email that is not a
// userName costs O(users) per SET, outside the write transaction.
func resolve(ctx context.Context, tx store.ReadTx, subs []subject) ([]string, error) {
	var ids []string
	for _, s := range subs {
		var found []string
		var err error
		switch s.format {
		case "email":
			found, err = indexed(ctx, tx, store.IndexName, s.email)
			if err == nil && len(found) == 0 {
				found, err = byEmail(ctx, tx, s.email)
			}
		case "iss_sub":
			found, err = indexed(ctx, tx, store.IndexExternalID, s.value)
			if err == nil && len(found) == 0 {
				found, err = indexed(ctx, tx, store.IndexName, s.value)
			}
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func indexed(ctx context.Context, tx store.ReadTx, attr store.IndexAttr, value string) ([]string, error) {
	rs, _, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, IndexAttr: attr, IndexValue: value, Limit: -1})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids, nil
}

func byEmail(ctx context.Context, tx store.ReadTx, email string) ([]string, error) {
	var ids []string
	err := tx.ScanResources(ctx, store.TypeUser, func(r *store.Resource) error {
		var doc struct {
			Emails []struct {
				Value string `json:"value"`
			} `json:"emails"`
		}
		if json.Unmarshal(r.Data, &doc) != nil {
			return nil // not a document this lookup can read
		}
		for _, e := range doc.Emails {
			if strings.EqualFold(e.Value, email) {
				ids = append(ids, r.ID)
				break
			}
		}
		return nil
	})
	return ids, err
}
