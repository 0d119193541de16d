package app_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/client"
)

func byName(tb testing.TB, list []app.Setting, name string) app.Setting {
	tb.Helper()
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no setting %s", name)
	return app.Setting{}
}

// TestSettings_appConfig: every setting every service shares has a meaning, and the walk
// finds names, defaults and secrets as go-envconfig reads them.
func TestSettings_appConfig(t *testing.T) {
	t.Parallel()
	list, err := app.Settings(app.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want app.Setting
	}{
		{"DATABASE_URL", app.Setting{Name: "DATABASE_URL", Required: true, Secret: "password"}},
		{"DB_POOL_SIZE", app.Setting{Name: "DB_POOL_SIZE", Default: "20"}},
		{"DB_BREAKER_MIN_REQUESTS", app.Setting{Name: "DB_BREAKER_MIN_REQUESTS", Default: "20"}}, // retry.BreakerDefaults
		{"DB_BREAKER_OPEN_TIMEOUT", app.Setting{Name: "DB_BREAKER_OPEN_TIMEOUT", Default: "5s"}},
		{"JWT_SECRET", app.Setting{Name: "JWT_SECRET", Secret: "true"}},
		{"PAGE_TOKEN_KEY", app.Setting{Name: "PAGE_TOKEN_KEY", Secret: "true"}},
		{"DRAIN_TIMEOUT", app.Setting{Name: "DRAIN_TIMEOUT", Default: "20s"}},
	}
	for _, tt := range tests {
		got := byName(t, list, tt.name)
		got.Help = "" // checked by Settings' error
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b app.Setting) bool {
			return a.Name == b.Name && a.Default == b.Default && a.Required == b.Required && a.Secret == b.Secret
		})); diff != "" {
			t.Errorf("setting %s mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestSettings_prefixes: a peer's client config under its prefix, with the peer breaker's
// own defaults; a default holding commas; a setting without help is named.
func TestSettings_prefixes(t *testing.T) {
	t.Parallel()
	type cfg struct {
		Stock client.Config `env:", prefix=STOCK_"`
		List  []string      `env:"LIST, default=a,b" help:"two"`
		Bare  int           `env:"BARE"`
		Inner struct {
			Deep bool `env:"DEEP, required"`
		} `env:", prefix=OUTER_"`
		NotASetting string
	}
	list, err := app.Settings(cfg{})
	if err == nil || !strings.Contains(err.Error(), "BARE") || !strings.Contains(err.Error(), "OUTER_DEEP") {
		t.Errorf("Settings error = %v, want BARE and OUTER_DEEP named", err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	want := []string{"STOCK_ADDR", "STOCK_TIMEOUT", "STOCK_RETRY_MAX_ATTEMPTS", "STOCK_BREAKER_MIN_REQUESTS",
		"STOCK_BREAKER_FAILURE_RATIO", "STOCK_BREAKER_OPEN_TIMEOUT", "STOCK_BREAKER_WINDOW", "STOCK_TLS_CA_FILE",
		"STOCK_TLS_SERVER_NAME", "LIST", "BARE", "OUTER_DEEP"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("names mismatch (-want +got):\n%s", diff)
	}
	if s := byName(t, list, "STOCK_BREAKER_MIN_REQUESTS"); s.Default != "5" {
		t.Errorf("STOCK_BREAKER_MIN_REQUESTS default = %q, want 5 (client.BreakerDefaults)", s.Default)
	}
	if s := byName(t, list, "STOCK_ADDR"); !s.Required {
		t.Error("STOCK_ADDR not required")
	}
	if s := byName(t, list, "LIST"); s.Default != "a,b" {
		t.Errorf("LIST default = %q, want a,b", s.Default)
	}
	if s := byName(t, list, "OUTER_DEEP"); !s.Required {
		t.Error("OUTER_DEEP not required")
	}
}

// TestSetting_Masked: what `config` prints of each kind of value; passwords and secrets never.
func TestSetting_Masked(t *testing.T) {
	t.Parallel()
	urls := []struct{ url, want string }{
		{"postgres://stock:pw@db:5432/pgfleet?sslmode=disable", "postgres://stock:xxxxx@db:5432/pgfleet?sslmode=disable"},
		{"postgresql://stock@db/pgfleet?password=pw&sslmode=require", "postgresql://stock@db/pgfleet?password=xxxxx&sslmode=require"},
		{"postgres://db/pgfleet", "postgres://db/pgfleet"},
		// Several hosts (libpq's form, not RFC 3986): the password goes, every host stays.
		{"postgres://stock:pw@db1:5432,db2:5433/pgfleet?target_session_attrs=read-write",
			"postgres://stock:xxxxx@db1:5432,db2:5433/pgfleet?target_session_attrs=read-write"},
		{"postgres://stock:pw@[::1]:5432,[::2]:5433/pgfleet?target_session_attrs=read-write",
			"postgres://stock:xxxxx@[::1]:5432,[::2]:5433/pgfleet?target_session_attrs=read-write"},
		{"postgresql://stock@db1,db2/pgfleet?sslmode=require&password=p%20w", "postgresql://stock@db1,db2/pgfleet?sslmode=require&password=xxxxx"},
		{"postgres://stock:p@ss@db/pgfleet", "postgres://stock:xxxxx@db/pgfleet"},
		{"host=db user=stock password=pw dbname=pgfleet", "host=db user=stock password=xxxxx dbname=pgfleet"},
		{"host=db password='p w\\'x' dbname=pgfleet", "host=db password=xxxxx dbname=pgfleet"},
	}
	for _, tt := range urls {
		var cfg app.Config
		cfg.DB.URL = tt.url
		list, _ := app.Settings(&cfg)
		if got := byName(t, list, "DATABASE_URL").Masked(); got != tt.want {
			t.Errorf("DATABASE_URL %q masked = %v, want %s", tt.url, got, tt.want)
		}
	}

	var cfg app.Config
	cfg.Auth.Secret = "secret-value"
	cfg.Drain = 1500 * time.Millisecond
	cfg.DB.MaxConns = 7
	list, _ := app.Settings(&cfg)
	tests := []struct {
		name string
		want any
	}{
		{"JWT_SECRET", "(secret)"},
		{"PAGE_TOKEN_KEY", ""}, // unset: shown as unset
		{"DRAIN_TIMEOUT", "1.5s"},
		{"DB_POOL_SIZE", int32(7)},
		{"DB_BREAKER_MIN_REQUESTS", json.Number("20")}, // unset: the owner's default
		{"DB_BREAKER_OPEN_TIMEOUT", "5s"},
		{"AUTH_DISABLED", false},
	}
	for _, tt := range tests {
		if got := byName(t, list, tt.name).Masked(); got != tt.want {
			t.Errorf("%s masked = %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

// TestRead_namesVariable: a bad value's error names the variable the operator set, not the
// Go field.
func TestRead_namesVariable(t *testing.T) {
	t.Parallel()
	var cfg app.Config
	err := app.Read(t.Context(), envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://db/x", "DB_RETRY_MAX_DELAY": "soon"}), &cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "read config: DB_RETRY_MAX_DELAY: ") {
		t.Errorf("Read = %v, want an error naming DB_RETRY_MAX_DELAY", err)
	}
}
