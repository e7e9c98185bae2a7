package webhook

import (
	"fmt"

	"github.com/jmlgate/jmlgate/connectors"
)

func testAccount(i int) connectors.Account {
	return connectors.Account{
		IdentityID:  fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
		UserName:    fmt.Sprintf("user%d@example.com", i+1),
		DisplayName: fmt.Sprintf("User %d", i+1),
		Email:       fmt.Sprintf("user%d@example.com", i+1),
	}
}
