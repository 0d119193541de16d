package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Status is a check's outcome.
type Status string

// A check passes, needs a look, or found a problem that breaks the fleet.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of the report; the JSON field names are stable for scripts.
type Check struct {
	Target string `json:"target"` // a service name, "gateway", or "postgres host:port"
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"` // one line naming what was found
}

// Summary counts the checks by status; Status is the worst of them.
type Summary struct {
	Status Status `json:"status"`
	OK     int    `json:"ok"`
	Warn   int    `json:"warn"`
	Fail   int    `json:"fail"`
}

// Report is doctor's whole answer, as --json prints it.
type Report struct {
	Checks  []Check `json:"checks"`
	Summary Summary `json:"summary"`
}

func newReport(checks []Check) Report {
	r := Report{Checks: checks, Summary: Summary{Status: OK}}
	for _, c := range checks {
		switch c.Status {
		case OK:
			r.Summary.OK++
		case Warn:
			r.Summary.Warn++
			if r.Summary.Status == OK {
				r.Summary.Status = Warn
			}
		case Fail:
			r.Summary.Fail++
			r.Summary.Status = Fail
		}
	}
	return r
}

// writeText prints one aligned line per check and a summary line.
func (r Report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Target, c.Check, c.Status, c.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s: %d checks, %d ok, %d warn, %d fail\n",
		r.Summary.Status, len(r.Checks), r.Summary.OK, r.Summary.Warn, r.Summary.Fail)
	return err
}

func (r Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
