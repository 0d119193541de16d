package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// TestParsePgbench: a run that completed no transaction (its clients spent a short window
// connecting, as 256 of them do on a loaded machine) is errNoTransactions, which the caller
// runs again, not a figure and not the end of the bench; a SERIALIZABLE run with --max-tries
// reports its retries.
func TestParsePgbench(t *testing.T) {
	t.Parallel()
	run := pgbenchRun{clients: 32, seconds: 2}
	for _, tt := range []struct {
		name, out string
		want      result
		wantErr   error
	}{
		{name: "no_transaction_no_tps", out: "number of clients: 256\nnumber of transactions actually processed: 0\n", wantErr: errNoTransactions},
		{name: "no_transaction_zero_tps", out: "number of transactions actually processed: 0\ntps = 0.000000 (without initial connection time)\n", wantErr: errNoTransactions},
		{name: "read_committed", out: "number of transactions actually processed: 2220\nnumber of failed transactions: 0 (0.000%)\ntps = 1110.500000 (without initial connection time)\n",
			want: result{clients: 32, window: 2e9, ops: 2220, perSec: 1110.5}},
		{name: "serializable_with_retries", out: "maximum number of tries: 100\nnumber of transactions actually processed: 586\nnumber of failed transactions: 0 (0.000%)\nnumber of transactions retried: 300 (51.195%)\ntotal number of retries: 854\ntps = 293.000000 (without initial connection time)\n",
			want: result{clients: 32, window: 2e9, ops: 586, perSec: 293, retries: 854}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parsePgbench([]byte(tt.out), run)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parsePgbench error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(result{})); diff != "" {
				t.Errorf("parsePgbench mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListSQL: the list page's SQL names its parameters (@p1, ...), so the pgx baselines of
// scenarios 3 and 10 must pass the page's NamedArgs; its values alone left every pgx list
// query failing with `column "p1" does not exist`.
func TestListSQL(t *testing.T) {
	t.Parallel()
	sql, args, pgxArgs, err := listSQL()
	if err != nil {
		t.Fatalf("listSQL: %v", err)
	}
	if len(pgxArgs) != 1 {
		t.Fatalf("listSQL's pgx arguments = %v, want one query rewriter", pgxArgs)
	}
	rw, ok := pgxArgs[0].(pgx.QueryRewriter)
	if !ok {
		t.Fatalf("listSQL's pgx argument is a %T, want a pgx.QueryRewriter", pgxArgs[0])
	}
	got, gotArgs, err := rw.RewriteQuery(t.Context(), nil, sql, nil)
	if err != nil {
		t.Fatalf("RewriteQuery: %v", err)
	}
	if strings.Contains(got, "@p") {
		t.Errorf("rewritten SQL still names parameters: %s", got)
	}
	if diff := cmp.Diff(args, gotArgs); diff != "" {
		t.Errorf("rewritten arguments mismatch (-want +got):\n%s", diff)
	}
}
