package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads a job's schedule: 5 cron fields (minute hour day-of-month month day-of-week) or
// a descriptor (@daily, @hourly, @every 1h, ...), in UTC. robfig/cron is the parser most Go
// schedulers use; only its parser is used here, the pipeline runs the ticks itself.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// minEvery is the shortest @every interval: cron fields cannot go below a minute either.
const minEvery = time.Minute

// ParseSchedule parses a job's schedule; the error says why one is refused.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.Contains(spec, "TZ=") {
		return nil, errors.New("takes no time zone: schedules run in UTC")
	}
	sched, err := parser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok && every.Delay < minEvery {
		return nil, fmt.Errorf("@every must be at least %s", minEvery)
	}
	return sched, nil
}

// NextRun returns the first tick of spec after t, or the zero time if spec does not parse.
func NextRun(spec string, t time.Time) time.Time {
	sched, err := ParseSchedule(spec)
	if err != nil {
		return time.Time{}
	}
	return sched.Next(t.UTC())
}

// latestTick returns the latest tick of sched in (after, now], if there is one: the one run
// to queue. Ticks missed while no process led are not made up one by one: a scheduled run
// fetches lookback_days of bars anyway, so the latest tick covers the ones before it.
func latestTick(sched cron.Schedule, after, now time.Time) (time.Time, bool) {
	t := sched.Next(after.UTC())
	if t.IsZero() || t.After(now) {
		return time.Time{}, false
	}
	// Far behind (a job created long ago that never ran, a long outage): jump close to now
	// first, so the walk below stays short whatever the gap.
	if now.Sub(t) > 48*time.Hour {
		if j := sched.Next(now.Add(-48 * time.Hour).UTC()); !j.IsZero() && !j.After(now) {
			t = j
		}
	}
	for {
		n := sched.Next(t)
		if n.IsZero() || n.After(now) {
			return t, true
		}
		t = n
	}
}
