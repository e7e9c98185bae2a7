package scim

import (
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
)

// TestConformance runs the connector contract against jmlgate's own SCIM
// service provider, once with the groups made beforehand and once with
// create_groups letting Grant make them.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		createGroups bool
	}{
		{"PrecreatedGroups", false},
		{"CreateGroups", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			connectortest.Run(t, func(t *testing.T) connectortest.Target {
				s := newSaaS(t)
				ents := []string{"group:Engineering", "group:Sales"}
				if !tc.createGroups {
					s.createGroup("Engineering")
					s.createGroup("Sales")
				}
				cfg := s.config()
				cfg.CreateGroups = tc.createGroups
				return connectortest.Target{
					Conn:         open(t, cfg),
					Inspect:      s.inspect,
					Entitlements: ents,
					MissingRef:   "6f1d7c1e-0000-4000-8000-000000000000",
					Fail:         s.fail,
					Hang:         s.hold,
				}
			})
		})
	}
}

// SCIM has no standard way to end sessions: the connector must not claim
// it can, or the dispatcher would report leavers' sessions as ended.
func TestNotSessionRevoker(t *testing.T) {
	t.Parallel()
	var c connectors.Connector = &Conn{}
	if _, ok := c.(connectors.SessionRevoker); ok {
		t.Fatal("Conn implements connectors.SessionRevoker")
	}
	if _, ok := c.(connectors.Lister); !ok {
		t.Fatal("Conn does not implement connectors.Lister")
	}
}
