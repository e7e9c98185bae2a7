package patch_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/patch"
	"github.com/jmlgate/jmlgate/scim/resource"
)

// FuzzApply feeds arbitrary Operations arrays to Apply against a fixed User
// (group=false) or Group document. The seed corpus is in
// testdata/fuzz/FuzzApply. Properties:
//   - Apply never panics and never modifies its input;
//   - an error is a 400 *ScimError naming the operation, with no document;
//   - a success that reports no change returns a document equal to the
//     input, and any success is deterministic, serialisable and accepted by
//     resource.Normalize (PATCH can never store what PUT would refuse).
func FuzzApply(f *testing.F) {
	user := decode(f, userDoc)
	group := decode(f, groupDoc)
	f.Fuzz(func(t *testing.T, body []byte, isGroup bool) {
		var ops []patch.Operation
		if json.Unmarshal(body, &ops) != nil {
			return
		}
		rt, base := reg.User, user
		if isGroup {
			rt, base = reg.Group, group
		}
		doc := resource.Clone(base)
		got, changed, err := patch.Apply(rt, doc, ops)
		if !reflect.DeepEqual(doc, base) {
			t.Fatalf("input modified")
		}
		if err != nil {
			var se *serr.ScimError
			if !errors.As(err, &se) || se.Status != 400 || se.ScimType == "" || !strings.HasPrefix(se.Detail, "operation ") {
				t.Fatalf("error %v (%T) is not a 400 ScimError naming the operation", err, err)
			}
			if got != nil || changed {
				t.Fatalf("error with a document or changed=true")
			}
			return
		}
		if !changed && !reflect.DeepEqual(got, doc) {
			t.Fatalf("changed=false but the document differs:\n%s", canon(t, got))
		}
		again, changed2, err := patch.Apply(rt, doc, ops)
		if err != nil || changed2 != changed || !reflect.DeepEqual(again, got) {
			t.Fatalf("second Apply differs: %v", err)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("result does not marshal: %v", err)
		}
		if _, err := resource.Normalize(rt, got, resource.Replace); err != nil {
			t.Fatalf("Normalize rejects the patched document: %v\nops: %s\n%s", err, body, canon(t, got))
		}
	})
}
