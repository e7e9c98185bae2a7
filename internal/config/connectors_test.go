package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConnectorsParse(t *testing.T) {
	t.Parallel()
	src := `connectors:
  - name: slack
    type: scim
    config:
      base_url: https://api.slack.com/scim/v2
      token: ${SLACK_TOKEN}
  - name: warehouse
    type: postgres
    concurrency: 2
    rate: 20
    burst: 5
    max_attempts: 3
    drift: revoke
    reconcile_interval: 1h
delivery:
  poll: 50ms
`
	c, err := Parse([]byte(src), func(k string) (string, bool) { return "tok-" + k, true })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Connectors) != 2 {
		t.Fatalf("connectors = %+v", c.Connectors)
	}
	s, w := c.Connectors[0], c.Connectors[1]
	if s.Concurrency != 4 || s.MaxAttempts != 10 || s.Drift != "report" || s.ReconcileInterval != 0 {
		t.Errorf("defaults not applied: %+v", s)
	}
	if w.Concurrency != 2 || w.Rate != 20 || w.Burst != 5 || w.MaxAttempts != 3 || w.Drift != "revoke" || w.ReconcileInterval.D() != time.Hour {
		t.Errorf("warehouse = %+v", w)
	}
	if !w.Config.IsZero() || s.Config.IsZero() {
		t.Errorf("config sections: slack zero=%v warehouse zero=%v", s.Config.IsZero(), w.Config.IsZero())
	}
	if c.Delivery.Poll.D() != 50*time.Millisecond {
		t.Errorf("delivery.poll = %s", c.Delivery.Poll)
	}

	// The section decodes onto the type chosen by `type`, strictly.
	type scimConfig struct {
		BaseURL string   `yaml:"base_url"`
		Token   string   `yaml:"token"`
		Timeout Duration `yaml:"timeout"`
	}
	got := scimConfig{Timeout: Duration(10 * time.Second)}
	if err := c.DecodeSection("connectors[0].config", s.Config, &got); err != nil {
		t.Fatal(err)
	}
	if got.BaseURL != "https://api.slack.com/scim/v2" || got.Token != "tok-SLACK_TOKEN" || got.Timeout.D() != 10*time.Second {
		t.Errorf("decoded %+v", got)
	}
}

// sectionDuration is a type with its own UnmarshalYAML, as connector
// packages define them.
type sectionDuration time.Duration

func (d *sectionDuration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like \"10s\"")
	}
	*d = sectionDuration(v)
	return nil
}

func TestDecodeSectionReportsEveryProblemWithLines(t *testing.T) {
	t.Parallel()
	src := `connectors:
  - name: app
    type: webhook
    config:
      url: https://hooks.example.com
      timout: 5s
      timeout: soon
      retries: many
      headers:
        X-Api-Key: k
        X-Count: [1, 2]
`
	c, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	type hook struct {
		URL     string            `yaml:"url"`
		Timeout sectionDuration   `yaml:"timeout"`
		Retries int               `yaml:"retries"`
		Headers map[string]string `yaml:"headers"`
	}
	var h hook
	err = c.DecodeSection("connectors[0].config", c.Connectors[0].Config, &h)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	want := []string{
		`connectors[0].config.timout: unknown key (did you mean "timeout"?) (line 6)`,
		`connectors[0].config.timeout: want a duration like "10s" (line 7)`,
		`connectors[0].config.retries: want an integer, got "many" (line 8)`,
		`connectors[0].config.headers.X-Count: want a string, got a list (line 11)`,
	}
	if len(ce.Problems) != len(want) {
		t.Fatalf("problems:\n%v\nwant %d", err, len(want))
	}
	for i, p := range ce.Problems {
		if p.String() != want[i] {
			t.Errorf("problem %d = %q, want %q", i, p.String(), want[i])
		}
	}
	if h.URL != "" {
		t.Errorf("a section with problems was partly decoded: %+v", h)
	}
}

func TestConnectorsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml     string
		problems []string
	}{
		{"connectors:\n  - {name: a, type: scim}\n", nil},
		{"connectors:\n  - {type: scim}\n", []string{"connectors[0].name: required"}},
		{"connectors:\n  - {name: Slack App, type: scim}\n", []string{"connectors[0].name: \"Slack App\": use lowercase"}},
		{"connectors:\n  - {name: a, type: scim}\n  - {name: a, type: webhook}\n", []string{"connectors[1].name: \"a\" is already used"}},
		{"connectors:\n  - {name: a}\n", []string{"connectors[0].type: required"}},
		{"connectors:\n  - {name: a, type: scim, concurrency: 0, rate: -1, burst: -2, max_attempts: 0, drift: delete, reconcile_interval: 10s}\n", []string{
			"connectors[0].concurrency: must be between 1 and 256",
			"connectors[0].rate: must not be negative",
			"connectors[0].burst: must not be negative",
			"connectors[0].max_attempts: must be between 1 and 100",
			"connectors[0].drift: unknown value \"delete\"",
			"connectors[0].reconcile_interval: must be 0 (on demand only) or at least 1m",
		}},
		{"connectors:\n  - {name: a, type: scim, config: [1]}\n", []string{"connectors[0].config: want a mapping, got a list"}},
		{"connectors:\n  - {name: a, type: scim, extra: 1}\n", []string{"connectors[0].extra: unknown key"}},
		{"delivery: {poll: 2m, backoff_base: 10s, backoff_max: 1s}\n", []string{
			"delivery.poll: must be between 1ms and 1m",
			"delivery.backoff_max: must be at least backoff_base",
		}},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), nil)
		if len(tc.problems) == 0 {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.yaml, tc.problems)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) != len(tc.problems) {
			t.Errorf("%q: %v\nwant %d problems: %q", tc.yaml, err, len(tc.problems), tc.problems)
			continue
		}
		for _, p := range tc.problems {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%q: %v\nwant a problem containing %q", tc.yaml, err, p)
			}
		}
	}
}

func TestCheckConnectors(t *testing.T) {
	t.Parallel()
	src := `connectors:
  - {name: slack, type: scim}
  - {name: crm, type: salesforce}
roles:
  - name: everyone
    when: "true"
    grants:
      - {connector: slack, entitlement: member}
      - {connector: github, entitlement: member}
`
	c, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckConnectors([]string{"postgres", "scim", "webhook"})
	want := "config: 2 problems:\n" +
		"  connectors[1].type: unknown type \"salesforce\" (want one of postgres, scim, webhook) (line 3)\n" +
		"  roles[0].grants[1].connector: no connector named \"github\" is configured (see connectors) (line 9)"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	c.Connectors[1].Type = "webhook"
	c.Roles[0].Grants = c.Roles[0].Grants[:1]
	if err := c.CheckConnectors([]string{"postgres", "scim", "webhook"}); err != nil {
		t.Errorf("valid: %v", err)
	}
}
