package query_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// BenchmarkList_statement: the CPU a list call spends in this package and in pgx's named
// arguments before the statement goes out: Build of a filtered, sorted page after a token,
// SQL, and the rewrite of the names into $n placeholders that pgx does per call.
func BenchmarkList_statement(b *testing.B) {
	req := query.Request{Filter: `sector = "Technology" AND market_cap >= 2000000000`, OrderBy: "market_cap desc", PageSize: 50}
	first, err := stocks.Build(req)
	if err != nil {
		b.Fatal(err)
	}
	if req.PageToken, err = first.NextPageToken([]any{int64(5_000_000_000), "AAPL"}); err != nil {
		b.Fatal(err)
	}
	const sel = `SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time FROM stock.stocks`
	for _, rewrite := range []bool{false, true} {
		name := map[bool]string{false: "build", true: "build_and_rewrite"}[rewrite]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, err := stocks.Build(req)
				if err != nil {
					b.Fatal(err)
				}
				sql := q.SQL(sel, "exchange = @exchange")
				if !rewrite {
					continue
				}
				if _, _, err := q.NamedArgs(pgx.NamedArgs{"exchange": "NYSE"}).RewriteQuery(b.Context(), nil, sql, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
