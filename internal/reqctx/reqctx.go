// Package reqctx carries per-request facts (who is calling, which request)
// through context.Context so protocol packages such as scim stay independent
// of the HTTP framework that authenticated the caller.
package reqctx

import "context"

type key int

const (
	actorKey key = iota
	requestIDKey
)

// WithActor returns a context naming the authenticated caller (a token name
// or "jwt:<sub>"), as recorded in audit records.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey, actor)
}

// Actor returns the caller set by WithActor, or "anonymous".
func Actor(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey).(string); ok && a != "" {
		return a
	}
	return "anonymous"
}

// WithRequestID returns a context carrying the request's correlation id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the id set by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
