package httpapi

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/scim"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jmlgate_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jmlgate_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// route returns a low-cardinality label for the request path: the echo
// route, refined below /scim/v2 so ids do not become labels.
func route(c echo.Context) string {
	p := c.Request().URL.Path
	if !strings.HasPrefix(p, scim.Prefix+"/") {
		if r := c.Path(); r != "" {
			return r
		}
		return "unmatched"
	}
	parts := strings.Split(strings.TrimPrefix(p, scim.Prefix+"/"), "/")
	switch {
	case len(parts) == 1:
		return scim.Prefix + "/" + parts[0]
	case len(parts) == 2 && (parts[0] == "Users" || parts[0] == "Groups"):
		if parts[1] == ".search" {
			return scim.Prefix + "/" + parts[0] + "/.search"
		}
		return scim.Prefix + "/" + parts[0] + "/{id}"
	case len(parts) == 2 && (parts[0] == "Schemas" || parts[0] == "ResourceTypes"):
		return scim.Prefix + "/" + parts[0] + "/{id}"
	}
	return scim.Prefix + "/other"
}

// accessLog records one structured line and the metrics per request. It
// logs neither headers nor bodies, so credentials never reach the log.
func accessLog(log *slog.Logger, m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			rt := route(c)
			d := time.Since(start)
			m.requests.WithLabelValues(rt, c.Request().Method, strconv.Itoa(status)).Inc()
			m.latency.WithLabelValues(rt, c.Request().Method).Observe(d.Seconds())
			ctx := c.Request().Context()
			log.LogAttrs(ctx, levelFor(status), "request",
				slog.String("request_id", reqctx.RequestID(ctx)),
				slog.String("method", c.Request().Method),
				slog.String("route", rt),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.String("actor", reqctx.Actor(ctx)),
				slog.String("remote", c.RealIP()),
			)
			return nil
		}
	}
}

func levelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
