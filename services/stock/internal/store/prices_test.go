package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore_AdvanceLatest: it returns exactly the latest prices it changed (a later bar, or
// the latest bar with other values), with the stock's currency; a bar equal to the latest, or
// older than it, changes nothing and is not returned.
func TestStore_AdvanceLatest(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO stock.stocks (symbol, name, currency) VALUES ('AAA', 'A', 'USD'), ('BBB', 'B', 'EUR'), ('CCC', 'C', 'USD')`); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	bar := func(sym string, d int, close string) store.Price {
		return store.Price{Symbol: sym, Time: day.AddDate(0, 0, d), Open: "1", High: "9", Low: "1", Close: close, Volume: 5}
	}
	advance := func(rows ...store.Price) map[string]store.Price {
		t.Helper()
		var got map[string]store.Price
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			changed, err := store.New(tx).AdvanceLatest(ctx, rows)
			got = map[string]store.Price{}
			for _, p := range changed {
				got[p.Symbol] = p
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	withCurrency := func(p store.Price, cur string) store.Price {
		p.Currency = cur
		p.Close += ".000000"
		p.Open, p.High, p.Low = "1.000000", "9.000000", "1.000000"
		return p
	}
	want := map[string]store.Price{"AAA": withCurrency(bar("AAA", 1, "5"), "USD"), "BBB": withCurrency(bar("BBB", 1, "6"), "EUR")}
	if diff := cmp.Diff(want, advance(bar("AAA", 1, "5"), bar("BBB", 1, "6"))); diff != "" {
		t.Errorf("first bars: mismatch (-want +got):\n%s", diff)
	}
	// AAA: the same bar again (as 5.0); BBB: an older bar; CCC: a first bar.
	want = map[string]store.Price{"CCC": withCurrency(bar("CCC", 0, "7"), "USD")}
	if diff := cmp.Diff(want, advance(bar("AAA", 1, "5.0"), bar("BBB", 0, "1"), bar("CCC", 0, "7"))); diff != "" {
		t.Errorf("equal, older and new bars: mismatch (-want +got):\n%s", diff)
	}
	// AAA: its latest bar replaced with another close; BBB: a later bar.
	want = map[string]store.Price{"AAA": withCurrency(bar("AAA", 1, "8"), "USD"), "BBB": withCurrency(bar("BBB", 2, "3"), "EUR")}
	if diff := cmp.Diff(want, advance(bar("AAA", 1, "8"), bar("BBB", 2, "3"))); diff != "" {
		t.Errorf("replaced and later bars: mismatch (-want +got):\n%s", diff)
	}
}
