package schema

import (
	"github.com/elimity-com/scim/optional"
	escim "github.com/elimity-com/scim/schema"
)

// lifecycleSchema is jmlgate's User extension carrying the dates that drive
// joiner and leaver transitions.
func lifecycleSchema() escim.Schema {
	return escim.Schema{
		ID:          LifecycleURN,
		Name:        optional.NewString("Lifecycle"),
		Description: optional.NewString("jmlgate joiner/leaver dates"),
		Attributes: []escim.CoreAttribute{
			escim.SimpleCoreAttribute(escim.SimpleDateTimeParams(escim.DateTimeParams{
				Name:        "startDate",
				Description: optional.NewString("First working day. Before it the identity is pre_hire and nothing is provisioned."),
			})),
			escim.SimpleCoreAttribute(escim.SimpleDateTimeParams(escim.DateTimeParams{
				Name:        "endDate",
				Description: optional.NewString("Last working day. When it is reached the identity becomes a leaver."),
			})),
		},
	}
}
