package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

// FuzzDecodeExportToken: the resume_token decoder never panics, accepts only tokens whose
// snapshot id is safe to splice into SET TRANSACTION SNAPSHOT, and what it accepts encodes
// back to a token that decodes to the same.
func FuzzDecodeExportToken(f *testing.F) {
	good := exportToken{Version: 1, Fingerprint: strings.Repeat("ab", 16), Snapshot: "00000003-0000001B-1", Symbol: "AAPL", TimeMicros: 1704067200000000, Batches: 3}
	for _, s := range []string{good.encode(), exportToken{Version: 1, Fingerprint: good.Fingerprint, Snapshot: good.Snapshot}.encode(),
		"", "garbage", "e30", "eyJ2IjoxfQ", good.encode() + "A", good.encode()[1:], strings.Repeat("A", 2000),
		exportToken{Version: 1, Fingerprint: good.Fingerprint, Snapshot: "1'; DROP TABLE x; --"}.encode(),
		exportToken{Version: 2, Fingerprint: good.Fingerprint, Snapshot: good.Snapshot}.encode()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := decodeExportToken(s)
		if err != nil {
			return
		}
		if !snapshotID.MatchString(tok.Snapshot) || strings.ContainsAny(tok.Snapshot, "'\\") {
			t.Fatalf("decodeExportToken(%q) accepted snapshot %q", s, tok.Snapshot)
		}
		again, err := decodeExportToken(tok.encode())
		if err != nil || again != tok {
			t.Fatalf("round trip of %+v = %+v, %v", tok, again, err)
		}
	})
}

func TestDecimal6(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0.000000", "0.000001", "10.000000", "12.5", "7", "99999999999999.999999", "18446744073709.551615", "18446744073709.551616"} {
		n, err := decimal6(s)
		if err != nil {
			t.Fatalf("decimal6(%q): %v", s, err)
		}
		whole, frac, _ := strings.Cut(s, ".")
		want := whole + "." + frac + strings.Repeat("0", 6-len(frac))
		if got := n.ToString(6); got != want {
			t.Errorf("decimal6(%q) = %s, want %s", s, got, want)
		}
	}
	for _, s := range []string{"", ".5", "100000000000000.0", "1.0000001", "-1", "1e5", "NaN"} {
		if _, err := decimal6(s); err == nil {
			t.Errorf("decimal6(%q) = nil error, want one", s)
		}
	}
}

// TestExportPage_plan: an export's page reads one symbol's bars by the (symbol, ts) primary
// key of the partitions, and its point-in-time join probes recommendation_history's
// (symbol, source, predict_time) index once per bar: no sequential scan; on 200
// symbols × 3 years of bars and 20 sources × 50 predictions per symbol.
func TestExportPage_plan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.stocks (symbol, name) SELECT 'S' || i, 'Name ' || i FROM generate_series(1, 200) AS i;
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || i, d, 100, 101, 99, 100 + i % 7, 1000
		FROM generate_series(1, 200) AS i, generate_series('2022-01-01'::timestamptz, '2024-12-31', '1 day') AS d;
		INSERT INTO stock.recommendation_history (symbol, source, action, confidence, predict_time)
		SELECT 'S' || i, 'src' || s, 'ACTION_BUY', 0.5, '2022-01-01'::timestamptz + j * interval '20 days'
		FROM generate_series(1, 200) AS i, generate_series(1, 20) AS s, generate_series(1, 50) AS j;
		ANALYZE stock.stocks, stock.prices, stock.recommendation_history`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	after, end := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, source := range []string{"", "src7"} {
		t.Run("source_"+source, func(t *testing.T) {
			t.Parallel()
			args := []any{"S42", after, end, 10000}
			if source != "" {
				args = append(args, source)
			}
			var out []byte
			if err := pool.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+store.ExportPageSQL(source != ""), args...).Scan(&out); err != nil {
				t.Fatal(err)
			}
			var plan []map[string]any
			if err := json.Unmarshal(out, &plan); err != nil {
				t.Fatal(err)
			}
			root := plan[0]["Plan"].(map[string]any)
			nodes, scans := planNodes(root), scanNodes(root)
			t.Logf("plan: %s; scans: %s", strings.Join(nodes, " > "), strings.Join(scans, ", "))
			// A page of many rows may be read by a bitmap scan of the key and sorted: a sort of
			// one page, at most batch_size rows; never a sequential scan.
			if slices.Contains(nodes, "Seq Scan") {
				t.Errorf("plan: %s, want index scans only", strings.Join(nodes, " > "))
			}
			var prices, history int
			for _, s := range scans {
				switch {
				case strings.HasPrefix(s, "prices_2023_pkey"):
					prices++
				case s == "recommendation_history_symbol_source_idx":
					history++
				default:
					t.Errorf("scan by %s, want the 2023 partition's (symbol, ts) key and recommendation_history_symbol_source_idx", s)
				}
			}
			if prices != 1 || (source != "") != (history == 1) {
				t.Errorf("scans %v: want one of prices_2023_pkey and, with a source, one of recommendation_history_symbol_source_idx", scans)
			}
		})
	}
}
