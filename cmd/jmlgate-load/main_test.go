package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/internal/loadgen"
)

func noEnv(string) string { return "" }

func TestRun(t *testing.T) {
	t.Parallel()
	const token = "tok"
	ref, err := loadgen.NewReference(filepath.Join(t.TempDir(), "target.db"), token)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ref)
	t.Cleanup(func() {
		srv.Close()
		ref.Close()
	})

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no token", []string{"-target", srv.URL}, 2, "no token"},
		{"no target", []string{"-token", token}, 2, "-target is required"},
		{"bad scenario", []string{"-token", token, "-target", srv.URL, "-scenarios", "lookup,nap"}, 2, `"nap" at position 1`},
		{"nothing to compare", []string{"-token", token, "-target", srv.URL, "-reference=false"}, 2, "nothing to compare against"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errw bytes.Buffer
			code, err := run(context.Background(), tt.args, noEnv, &out, &errw)
			if code != tt.wantCode || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("code %d err %v, want %d and %q", code, err, tt.wantCode, tt.wantErr)
			}
		})
	}

	t.Run("json report", func(t *testing.T) {
		t.Parallel()
		var out, errw bytes.Buffer
		code, err := run(context.Background(), []string{"-target", srv.URL, "-token", token, "-reference-inproc",
			"-users", "10", "-ops", "5", "-clients", "2", "-warmup", "0", "-json"}, noEnv, &out, &errw)
		if err != nil || code == 2 {
			t.Fatalf("code %d err %v\n%s", code, err, errw.String())
		}
		var rep loadgen.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if len(rep.Rows) != 4 || rep.Rows[0].Scenario != loadgen.Lookup || rep.Rows[0].Target.OK != 5 {
			t.Errorf("report rows %+v", rep.Rows)
		}
		if (code == 0) != rep.Pass {
			t.Errorf("exit code %d but pass %v", code, rep.Pass)
		}
	})
}
