package connectors

import "context"

type deliveryKey struct{}

type delivery struct {
	id      int64
	attempt int
}

// WithDelivery returns a ctx that tells connectors which delivery (and which
// attempt of it) their calls belong to. Connectors that give receivers
// event ids derive them from it: the same operation sent again within one
// attempt gets the same id, and a later attempt or delivery a new one, so a
// deduplicating receiver never drops an operation that was meant anew.
func WithDelivery(ctx context.Context, id int64, attempt int) context.Context {
	return context.WithValue(ctx, deliveryKey{}, delivery{id, attempt})
}

// DeliveryFrom returns what WithDelivery stored, if anything.
func DeliveryFrom(ctx context.Context) (id int64, attempt int, ok bool) {
	d, ok := ctx.Value(deliveryKey{}).(delivery)
	return d.id, d.attempt, ok
}
