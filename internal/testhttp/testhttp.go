// Package testhttp holds the HTTP client tests use against httptest
// servers. It has a transport of its own: httptest.Server.Close closes the
// idle connections of http.DefaultTransport, which breaks the requests of
// parallel tests that share it ("CloseIdleConnections called").
package testhttp

import "net/http"

// Client is safe for concurrent use by parallel tests.
var Client = &http.Client{Transport: &http.Transport{}}
