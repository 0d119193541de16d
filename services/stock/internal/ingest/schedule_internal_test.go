package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"30 22 * * 1-5", "0 * * * *", "@daily", "@hourly", "@every 1h", "@every 1m"} {
		if _, err := ParseSchedule(spec); err != nil {
			t.Errorf("%q: %v", spec, err)
		}
	}
	for spec, why := range map[string]string{
		"61 * * * *": "", "0 0 0 * * *": "", "* * *": "", "every day": "", "": "",
		"@every 30s": "at least", "CRON_TZ=Europe/Paris 0 0 * * *": "UTC", "TZ=UTC 0 0 * * *": "UTC",
	} {
		_, err := ParseSchedule(spec)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want an error saying %q", spec, err, why)
		}
	}
}

// TestLatestTick: the latest due tick after the last queued one, however far behind, and
// none before the next tick comes.
func TestLatestTick(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	weekdays, _ := ParseSchedule("30 22 * * 1-5")
	monthly, _ := ParseSchedule("0 6 1 * *")
	every, _ := ParseSchedule("@every 1h")
	tests := []struct {
		name       string
		after, now string
		sched      cron.Schedule
		want       string // "" for none
	}{
		{"not yet", "2026-12-01T22:30:00Z", "2026-12-02T22:29:59Z", weekdays, ""},
		{"due", "2026-12-01T22:30:00Z", "2026-12-02T22:30:00Z", weekdays, "2026-12-02T22:30:00Z"},
		{"a weekend missed: Friday's only", "2026-12-03T22:30:00Z", "2026-12-07T10:00:00Z", weekdays, "2026-12-04T22:30:00Z"},
		{"a year behind", "2025-12-01T22:30:00Z", "2026-12-07T10:00:00Z", weekdays, "2026-12-04T22:30:00Z"},
		{"monthly, far behind", "2024-01-01T06:00:00Z", "2026-12-07T10:00:00Z", monthly, "2026-12-01T06:00:00Z"},
		{"every hour from creation", "2026-12-07T07:10:00Z", "2026-12-07T09:40:00Z", every, "2026-12-07T09:10:00Z"},
	}
	for _, tt := range tests {
		got, ok := latestTick(tt.sched, at(tt.after), at(tt.now))
		if tt.want == "" {
			if ok {
				t.Errorf("%s: tick %v, want none", tt.name, got)
			}
			continue
		}
		if !ok || !got.Equal(at(tt.want)) {
			t.Errorf("%s: %v %v, want %s", tt.name, got, ok, tt.want)
		}
	}
}
