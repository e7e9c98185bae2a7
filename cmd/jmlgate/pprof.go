//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // profiling handlers, only in -tags pprof builds
	"os"
)

// A profiling build (go build -tags pprof) serves net/http/pprof on
// $JMLGATE_PPROF (e.g. 127.0.0.1:6060). Release builds do not contain it.
func init() {
	if addr := os.Getenv("JMLGATE_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
