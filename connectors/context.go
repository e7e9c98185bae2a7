package connectors

import "context"

type deliveryKey struct{}

type delivery struct {
	id, run int64
}

// WithDelivery returns a ctx that tells connectors which delivery, and
// which run of it, their calls belong to. run differs for every run of a
// delivery, a retry after a dead letter included (the dispatcher uses the
// claim time in nanoseconds). Connectors that give receivers event ids
// derive them from both: the same operation sent again within one run gets
// the same id, and a later run or delivery a new one, so a deduplicating
// receiver never drops an operation that was meant anew.
func WithDelivery(ctx context.Context, id, run int64) context.Context {
	return context.WithValue(ctx, deliveryKey{}, delivery{id, run})
}

// DeliveryFrom returns what WithDelivery stored, if anything.
func DeliveryFrom(ctx context.Context) (id, run int64, ok bool) {
	d, ok := ctx.Value(deliveryKey{}).(delivery)
	return d.id, d.run, ok
}
