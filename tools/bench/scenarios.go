package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
)

// pointScript is pgbench's GetStock: the service's query, the symbol built from a random
// number (pgbench variables are numbers; the concatenation is computed once per execution).
const pointScript = `\set i random(0, %d)
SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time FROM stock.stocks WHERE symbol = 'S' || lpad(:i::text, 4, '0');
`

// --- scenario 1: GetStock over gRPC -----------------------------------------------------

func (b *bench) scenarioGRPC(ctx context.Context) error {
	script, err := b.script("point.sql", fmt.Sprintf(pointScript, b.cfg.stocks-1))
	if err != nil {
		return err
	}
	for _, n := range b.cfg.clients {
		b.logf("scenario 1: GetStock over gRPC, %d clients", n)
		h, wait := b.profileHooks(ctx, n, profTarget{"stock-grpc", b.stock.metricsAddr})
		fleet, err := b.grpcGetStock(ctx, b.stock.grpcAddr, n, h)
		wait()
		if err != nil {
			return err
		}
		h, wait = b.profileHooks(ctx, n, profTarget{"bare-grpc", b.bare.metricsAddr})
		bare, err := b.grpcGetStock(ctx, b.bare.grpcAddr, n, h)
		wait()
		if err != nil {
			return err
		}
		loop := b.pgxGetStock(ctx, n)
		pgb, err := b.pgbenchRun(ctx, "stock", script, n, nil, 0)
		if err != nil {
			return err
		}
		target := ""
		if n == 32 {
			target = targetRatio(fleet.rate()/bare.rate(), 0.85)
		}
		b.add(row{scenario: "1", path: "GetStock, gRPC → pgfleet stock", res: fleet, unit: "req/s", target: target,
			ratio: ratios(fleet, "bare gRPC", bare, "pgx loop", loop, "pgbench", pgb)})
		b.add(row{scenario: "1", path: "GetStock, gRPC → bare server", res: bare, unit: "req/s",
			ratio: ratios(bare, "pgx loop", loop, "pgbench", pgb)})
		b.add(row{scenario: "1", path: "point select, Go loop over pgxpool", res: loop, unit: "ops/s",
			ratio: ratios(loop, "pgbench", pgb)})
		b.add(row{scenario: "1", path: "point select, pgbench -M prepared", res: pgb, unit: "tps", ratio: "database limit"})
	}
	b.note("gRPC clients share one ClientConn up to 32 clients and 4 (round robin by worker) above; REST clients use one http.Transport with MaxIdleConnsPerHost = clients (HTTP/1.1 keep-alive, one connection per client)")
	b.note("pgbench opens one connection per client (256 backends at 256 clients, which 2 cores serve worse than a pool); the Go loop, the bare servers and the services each use a pool of %d", b.cfg.pool)
	return nil
}

// grpcGetStock runs the point read against a StockService at addr.
func (b *bench) grpcGetStock(ctx context.Context, addr string, clients int, h hooks) (result, error) {
	conns, closeConns, err := grpcConns(addr, clients)
	if err != nil {
		return result{}, err
	}
	defer closeConns()
	md := b.md(b.readTok)
	return b.checked(runLoad(ctx, clients, b.cfg.warmup, b.cfg.duration, h, func(w int) call {
		client := stockv1.NewStockServiceClient(conns[w%len(conns)])
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		return func(ctx context.Context) error {
			_, err := client.GetStock(metadata.NewOutgoingContext(ctx, md),
				&stockv1.GetStockRequest{Symbol: b.symbols[rng.IntN(len(b.symbols))]})
			return err
		}
	}))
}

// pgxGetStock is the pgx-loop baseline: the same query on a pool as large as the service's.
func (b *bench) pgxGetStock(ctx context.Context, clients int) result {
	return runLoad(ctx, clients, b.cfg.warmup, b.cfg.duration, hooks{}, func(w int) call {
		rng := rand.New(rand.NewPCG(uint64(w), 2))
		return func(ctx context.Context) error {
			var s jsonStock
			return b.pgx.QueryRow(ctx, getStockSQL, b.symbols[rng.IntN(len(b.symbols))]).Scan(&s.Symbol, &s.Name,
				&s.Sector, &s.Industry, &s.Exchange, &s.Currency, &s.MarketCap, &s.CreateTime, &s.UpdateTime)
		}
	})
}

// --- scenario 2: GetStock over REST -----------------------------------------------------

func (b *bench) scenarioREST(ctx context.Context) error {
	if b.gateway == nil {
		b.add(row{scenario: "2", path: "GetStock, REST → gateway → stock", missing: "not run: gateway not built"})
		return nil
	}
	for _, n := range b.cfg.clients {
		b.logf("scenario 2: GetStock over REST, %d clients", n)
		h, wait := b.profileHooks(ctx, n, profTarget{"gateway-rest", b.gateway.metricsAddr}, profTarget{"stock-rest", b.stock.metricsAddr})
		gw, err := b.restGetStock(ctx, b.gateway.httpAddr, n, b.cfg.warmup, b.cfg.duration, h)
		wait()
		if err != nil {
			return err
		}
		h, wait = b.profileHooks(ctx, n, profTarget{"bare-http", b.bare.metricsAddr})
		bare, err := b.restGetStock(ctx, b.bare.httpAddr, n, b.cfg.warmup, b.cfg.duration, h)
		wait()
		if err != nil {
			return err
		}
		target := ""
		if n == 32 {
			target = targetRatio(gw.rate()/bare.rate(), 0.60)
		}
		b.add(row{scenario: "2", path: "GetStock, REST → gateway → gRPC stock", res: gw, unit: "req/s", target: target,
			ratio: ratios(gw, "bare HTTP", bare)})
		b.add(row{scenario: "2", path: "GetStock, REST → bare net/http JSON handler", res: bare, unit: "req/s", ratio: "baseline"})
	}
	return nil
}

// restGetStock runs GET /v1/stocks/{symbol} against an HTTP server at addr.
func (b *bench) restGetStock(ctx context.Context, addr string, clients int, warmup, window time.Duration, h hooks) (result, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	urls := make([]string, len(b.symbols))
	for i, s := range b.symbols {
		urls[i] = "http://" + addr + "/v1/stocks/" + s
	}
	auth := ""
	if b.readTok != "" {
		auth = "Bearer " + b.readTok
	}
	return b.checked(runLoad(ctx, clients, warmup, window, h, func(w int) call {
		rng := rand.New(rand.NewPCG(uint64(w), 3))
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[rng.IntN(len(urls))], nil)
			if err != nil {
				return err
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return err
		}
	}))
}

// --- scenario 3: a filtered list page -----------------------------------------------------

const (
	listFilter  = `sector = "Technology" AND market_cap >= 1000000000`
	listOrderBy = "market_cap desc"
	listPage    = 50
	listClients = 32
)

func (b *bench) scenarioList(ctx context.Context) error {
	b.logf("scenario 3: ListStocks page, %d clients", listClients)
	sql, args, pgxArgs, err := listSQL()
	if err != nil {
		return err
	}
	// pgbench passes -D variables as parameters of the prepared statement, as pgx does with
	// the page's named parameters @p1, @p2, ...
	pgbSQL, vars := sql, map[string]string{}
	for i := len(args); i >= 1; i-- {
		name := "p" + strconv.Itoa(i)
		pgbSQL = strings.ReplaceAll(pgbSQL, "@"+name, ":"+name)
		vars[name] = fmt.Sprint(args[i-1])
	}
	script, err := b.script("list.sql", pgbSQL+";\n")
	if err != nil {
		return err
	}
	b.command(fmt.Sprintf("-- scenario 3 SQL (pkg/query, args %v): %s", args, sql))

	conns, closeConns, err := grpcConns(b.stock.grpcAddr, listClients)
	if err != nil {
		return err
	}
	defer closeConns()
	md := b.md(b.readTok)
	req := &stockv1.ListStocksRequest{Filter: listFilter, OrderBy: listOrderBy, PageSize: listPage}
	fleet, err := b.checked(runLoad(ctx, listClients, b.cfg.warmup, b.cfg.duration, hooks{}, func(w int) call {
		client := stockv1.NewStockServiceClient(conns[w%len(conns)])
		return func(ctx context.Context) error {
			resp, err := client.ListStocks(metadata.NewOutgoingContext(ctx, md), req)
			if err == nil && len(resp.GetStocks()) != listPage {
				err = fmt.Errorf("ListStocks returned %d stocks, want %d", len(resp.GetStocks()), listPage)
			}
			return err
		}
	}))
	if err != nil {
		return err
	}
	loop := runLoad(ctx, listClients, b.cfg.warmup, b.cfg.duration, hooks{}, func(int) call {
		return func(ctx context.Context) error {
			rows, err := b.pgx.Query(ctx, sql, pgxArgs...)
			if err != nil {
				return err
			}
			n := 0
			var s jsonStock
			for rows.Next() {
				if err := rows.Scan(&s.Symbol, &s.Name, &s.Sector, &s.Industry, &s.Exchange, &s.Currency,
					&s.MarketCap, &s.CreateTime, &s.UpdateTime); err != nil {
					return err
				}
				n++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n < listPage {
				return fmt.Errorf("list query returned %d rows", n)
			}
			return nil
		}
	})
	pgb, err := b.pgbenchRun(ctx, "stock", script, listClients, vars, 0)
	if err != nil {
		return err
	}
	path := fmt.Sprintf("ListStocks page of %d, filter + order_by, gRPC → pgfleet stock", listPage)
	b.add(row{scenario: "3", path: path, res: fleet, unit: "req/s", ratio: ratios(fleet, "pgx loop", loop, "pgbench", pgb)})
	b.add(row{scenario: "3", path: "same SQL, Go loop over pgxpool", res: loop, unit: "ops/s", ratio: ratios(loop, "pgbench", pgb)})
	b.add(row{scenario: "3", path: "same SQL, pgbench -M prepared", res: pgb, unit: "tps", ratio: "database limit"})
	return nil
}

// listSQL is the SQL the stock service runs for the list page of scenario 3 (and of the read
// mix of scenario 10): pkg/query builds it from the same request over the same fields (a subset
// of the service's whitelist; the SQL depends only on those named). Its parameters are named
// (@p1, @p2, ...): args are their values in order, for pgbench, and pgxArgs what pgx takes
// (the page's NamedArgs, as the store passes them; the values alone leave @p1 unbound).
func listSQL() (sql string, args, pgxArgs []any, err error) {
	type stock struct {
		Symbol, Sector string
		MarketCap      int64
	}
	schema := query.Schema[stock]{
		Fields: []query.Field[stock]{
			{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true, Value: func(s stock) any { return s.Symbol }},
			{Name: "sector", Column: "sector", Type: query.String, Sortable: true, Value: func(s stock) any { return s.Sector }},
			{Name: "market_cap", Column: "market_cap", Type: query.Int, Sortable: true, Value: func(s stock) any { return s.MarketCap }},
		},
		Key:      []string{"symbol"},
		TokenKey: "bench",
	}
	q, err := schema.Build(query.Request{Filter: listFilter, OrderBy: listOrderBy, PageSize: listPage})
	if err != nil {
		return "", nil, nil, err
	}
	sql = q.SQL(`SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time FROM stock.stocks`)
	return sql, q.Args, []any{q.NamedArgs(nil)}, nil
}

// --- scenario 4: IngestPrices vs COPY ----------------------------------------------------

func (b *bench) scenarioIngest(ctx context.Context) error {
	b.logf("scenario 4: IngestPrices of %d rows vs psql \\copy", ingestRows)
	csv := filepath.Join(b.cfg.work, "prices.csv")
	if err := writeIngestCSV(csv); err != nil {
		return err
	}
	defer os.Remove(csv)
	msgs := ingestMessages()

	reset := func() error {
		_, err := b.admin.Exec(ctx, "TRUNCATE stock.prices, stock.latest_prices; CHECKPOINT")
		return err
	}
	if err := reset(); err != nil {
		return err
	}
	copyCmd := `\copy stock.prices (symbol, ts, open, high, low, close, volume) FROM '` + csv + `' WITH (FORMAT csv)`
	b.command(`psql -c "` + strings.ReplaceAll(copyCmd, b.cfg.root+"/", "") + `"   # as role stock, 1M rows, into the empty stock.prices`)
	t0 := time.Now()
	if _, err := b.pg.psql(ctx, "stock", "-c", copyCmd); err != nil {
		return err
	}
	cp := result{ops: ingestRows, window: time.Since(t0), clients: 1}
	if err := reset(); err != nil {
		return err
	}

	conn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	// ingest sends the stream, first with the general path (staged, then merged), then as an
	// append-only stream (symbols declared up front, copied straight in) into the emptied table.
	ingest := func(appendOnly *stockv1.AppendOnly) (result, error) {
		first := &stockv1.IngestPricesRequest{Prices: msgs[0].GetPrices(), AppendOnly: appendOnly}
		t0 := time.Now()
		stream, err := stockv1.NewStockServiceClient(conn).IngestPrices(outgoing(ctx, b.ingestTok))
		if err != nil {
			return result{}, err
		}
		for i, m := range msgs {
			if i == 0 {
				m = first
			}
			if err := stream.Send(m); err != nil {
				return result{}, fmt.Errorf("IngestPrices send: %w", err)
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return result{}, fmt.Errorf("IngestPrices: %w", err)
		}
		if resp.GetInsertedCount() != ingestRows {
			return result{}, fmt.Errorf("IngestPrices inserted %d rows, want %d", resp.GetInsertedCount(), ingestRows)
		}
		return result{ops: ingestRows, window: time.Since(t0), clients: 1}, nil
	}
	in, err := ingest(nil)
	if err != nil {
		return err
	}
	if err := reset(); err != nil {
		return err
	}
	symbols := make([]string, ingestSymbols)
	for i := range symbols {
		symbols[i] = symbolOf(i)
	}
	ap, err := ingest(&stockv1.AppendOnly{Symbols: symbols})
	if err != nil {
		return err
	}
	b.add(row{scenario: "4", path: fmt.Sprintf("IngestPrices, %d symbols × %d bars, %d rows per message", ingestSymbols, ingestBars, ingestBatch),
		res: in, unit: "rows/s", ratio: ratios(in, "COPY", cp), target: targetRatio(in.rate()/cp.rate(), 0.60),
		extra: fmt.Sprintf("%.1f s; staged, then merged", in.window.Seconds())})
	b.add(row{scenario: "4", path: "the same stream, append-only (symbols declared in the first message)",
		res: ap, unit: "rows/s", ratio: ratios(ap, "COPY", cp), target: targetRatio(ap.rate()/cp.rate(), 0.60),
		extra: fmt.Sprintf("%.1f s; copied straight into stock.prices", ap.window.Seconds())})
	b.add(row{scenario: "4", path: "psql \\copy of the same rows (CSV) into stock.prices", res: cp, unit: "rows/s", ratio: "baseline",
		extra: fmt.Sprintf("%.1f s", cp.window.Seconds())})
	return nil
}

// --- scenario 5: StreamPrices ---------------------------------------------------------------

const streamRows = 1_000_000

var streamFrom = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)

func (b *bench) scenarioStream(ctx context.Context) error {
	sym := b.symbols[len(b.symbols)-1]
	b.logf("scenario 5: StreamPrices of %d rows of %s", streamRows, sym)
	const fill = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT $1, $2::timestamptz + i * interval '1 minute', 100.5, 101.25, 99.75, 100 + i % 7, i
		FROM generate_series(0, $3 - 1) AS i
		ON CONFLICT DO NOTHING`
	if _, err := b.admin.Exec(ctx, fill, sym, streamFrom, streamRows); err != nil {
		return err
	}
	// Hint bits and the visibility map set, so the first reader does not pay for the rest.
	if _, err := b.admin.Exec(ctx, "VACUUM ANALYZE stock.prices"); err != nil {
		return err
	}
	streamTo := streamFrom.Add(streamRows * time.Minute)

	// A fresh process: its peak RSS is then the stream's, not that of earlier scenarios.
	if err := b.restart(ctx, b.stock); err != nil {
		return err
	}
	idle, err := readMem(b.stock.pid())
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	t0 := time.Now()
	st, err := stockv1.NewStockServiceClient(conn).StreamPrices(outgoing(ctx, b.readTok), &stockv1.StreamPricesRequest{
		Symbol: sym, StartTime: timestamppb.New(streamFrom), EndTime: timestamppb.New(streamTo), BatchSize: ingestBatch})
	if err != nil {
		return err
	}
	n, err := streamedRows(st)
	if err != nil {
		return err
	}
	stream := result{ops: int64(n), window: time.Since(t0), clients: 1}
	if n != streamRows {
		return fmt.Errorf("StreamPrices sent %d rows, want %d", n, streamRows)
	}
	peak, err := readMem(b.stock.pid())
	if err != nil {
		return err
	}

	// The same SQL on pgx, every row scanned as the store scans it.
	const q = `SELECT symbol, ts, open::text, high::text, low::text, close::text, volume FROM stock.prices WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts`
	t0 = time.Now()
	rows, err := b.pgx.Query(ctx, q, sym, streamFrom, streamTo)
	if err != nil {
		return err
	}
	var p struct {
		sym, o, h, l, c string
		ts              time.Time
		v               int64
	}
	m := 0
	if _, err := pgx.ForEachRow(rows, []any{&p.sym, &p.ts, &p.o, &p.h, &p.l, &p.c, &p.v}, func() error { m++; return nil }); err != nil {
		return err
	}
	loop := result{ops: int64(m), window: time.Since(t0), clients: 1}

	b.add(row{scenario: "5", path: fmt.Sprintf("StreamPrices, 1M rows of one symbol, %d per message", ingestBatch), res: stream, unit: "rows/s",
		ratio: ratios(stream, "pgx read", loop), target: targetMiB(peak.hwm, 64),
		extra: fmt.Sprintf("stock peak RSS %s (%s idle after restart)", mib(peak.hwm), mib(idle.rss))})
	b.add(row{scenario: "5", path: "same SQL read on pgx, rows scanned", res: loop, unit: "rows/s", ratio: "baseline"})
	return nil
}

// --- scenario 6: ExecuteTrade under contention ----------------------------------------------

const (
	tradePortfolios = 8
	tradeClients    = 32
	tradeSymbols    = 10
	tradePrice      = "100.125"
)

// tradeScript is the trade as a pgbench script: what ExecuteTrade writes, under a per-
// portfolio advisory transaction lock, at a fixed price (the service asks the stock service
// for it), in a transaction begun by begin. It runs twice: at READ COMMITTED, which can never
// fail to serialize, and at SERIALIZABLE with pgbench's retries (--max-tries) of serialization
// failures. The service's own form (REPEATABLE READ begun after a session-level lock is held)
// has no safe pgbench twin: a retried script would take the session lock again and leak it.
func tradeScript(begin string) string {
	return `\set p :pbase + random(0, 7)
\set s random(0, 9)
\set r random(1, 1000000000000)
` + begin + `;
SELECT pg_advisory_xact_lock(:p);
SELECT id FROM portfolio.trades WHERE portfolio_id = :p AND request_id = 'pgb-' || :client_id::text || '-' || :r::text;
SELECT id, user_id, name, currency, cash::text FROM portfolio.portfolios WHERE id = :p;
SELECT quantity::text, cost_basis::text FROM portfolio.positions WHERE portfolio_id = :p AND symbol = 'S000' || :s::text;
UPDATE portfolio.portfolios SET cash = cash - 100.125, update_time = now() WHERE id = :p;
INSERT INTO portfolio.positions (portfolio_id, symbol, quantity, cost_basis) VALUES (:p, 'S000' || :s::text, 1, 100.125) ON CONFLICT (portfolio_id, symbol) DO UPDATE SET quantity = portfolio.positions.quantity + 1, cost_basis = portfolio.positions.cost_basis + 100.125, update_time = now();
INSERT INTO portfolio.trades (portfolio_id, symbol, side, quantity, price, amount, request_id, request_hash) VALUES (:p, 'S000' || :s::text, 'SIDE_BUY', 1, 100.125, 100.125, 'pgb-' || :client_id::text || '-' || :r::text, '\x00') RETURNING id AS trade_id \gset
INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, trade_id, request_id, request_hash) VALUES (:p, 'CASH_MOVEMENT_KIND_BUY', -100.125, :trade_id, 'pgb-' || :client_id::text || '-' || :r::text, '\x00');
COMMIT;
`
}

// tradeMaxTries is the SERIALIZABLE baseline's --max-tries: enough that a run under
// contention fails (almost) nothing; its retries are reported.
const tradeMaxTries = 100

func (b *bench) scenarioTrades(ctx context.Context) error {
	b.logf("scenario 6: ExecuteTrade, %d clients on %d portfolios", tradeClients, tradePortfolios)
	pconn, err := grpc.NewClient(b.portfolio.grpcAddr, grpcInsecure())
	if err != nil {
		return err
	}
	defer pconn.Close()
	pc := portfoliov1.NewPortfolioServiceClient(pconn)
	sconn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
	if err != nil {
		return err
	}
	defer sconn.Close()

	// Latest prices of the traded symbols, whatever ran before.
	ing, err := stockv1.NewStockServiceClient(sconn).IngestPrices(outgoing(ctx, b.ingestTok))
	if err != nil {
		return err
	}
	msg := &stockv1.IngestPricesRequest{}
	for s := range tradeSymbols {
		msg.Prices = append(msg.Prices, &stockv1.Price{Symbol: symbolOf(s), Time: timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
			Open: tradePrice, High: tradePrice, Low: tradePrice, Close: tradePrice, Volume: 1})
	}
	if err := ing.Send(msg); err != nil {
		return err
	}
	if _, err := ing.CloseAndRecv(); err != nil {
		return fmt.Errorf("IngestPrices of the trade prices: %w", err)
	}

	// Eight users, each with a portfolio and plenty of cash; each trades with its own token.
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	ids := make([]int64, tradePortfolios)
	toks := make([]string, tradePortfolios)
	actx := outgoing(ctx, b.adminTok)
	for i := range tradePortfolios {
		email := fmt.Sprintf("trader%d-%s@bench.pgfleet.dev", i, nonce)
		u, err := pc.CreateUser(actx, &portfoliov1.CreateUserRequest{Email: email, DisplayName: "Trader " + strconv.Itoa(i)})
		if err != nil {
			return fmt.Errorf("CreateUser: %w", err)
		}
		p, err := pc.CreatePortfolio(actx, &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "bench"})
		if err != nil {
			return fmt.Errorf("CreatePortfolio: %w", err)
		}
		ids[i] = p.GetPortfolio().GetId()
		if _, err := pc.Deposit(actx, &portfoliov1.DepositRequest{PortfolioId: ids[i], Amount: "1000000000000", RequestId: "bench-cash"}); err != nil {
			return fmt.Errorf("deposit: %w", err)
		}
		if toks[i], err = b.tok.mint(email); err != nil {
			return err
		}
	}
	// One trade per portfolio first, retried while the stock service comes back from
	// scenario 5's restart (the portfolio service's client reconnects with backoff).
	for i, id := range ids {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := pc.ExecuteTrade(outgoing(ctx, toks[i]), &portfoliov1.ExecuteTradeRequest{PortfolioId: id, Symbol: symbolOf(0),
				Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: "prime"})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("first ExecuteTrade: %w", err)
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}

	metrics := "http://" + b.portfolio.metricsAddr + "/metrics"
	var before, after string
	var scrapeErr error
	scrape := func(dst *string) func() {
		return func() {
			body, err := httpGet(ctx, metrics)
			if err != nil && scrapeErr == nil {
				scrapeErr = err
			}
			*dst = string(body)
		}
	}
	conns, closeConns, err := grpcConns(b.portfolio.grpcAddr, tradeClients)
	if err != nil {
		return err
	}
	defer closeConns()
	h, wait := b.profileHooks(ctx, tradeClients, profTarget{"portfolio-trades", b.portfolio.metricsAddr})
	profile := h.start
	h.start = func() {
		scrape(&before)()
		if profile != nil {
			profile()
		}
	}
	h.end = scrape(&after)
	fleet, err := b.checked(runLoad(ctx, tradeClients, b.cfg.warmup, b.cfg.duration, h, func(w int) call {
		client := portfoliov1.NewPortfolioServiceClient(conns[w%len(conns)])
		pi := w % tradePortfolios
		md := b.md(toks[pi])
		rng := rand.New(rand.NewPCG(uint64(w), 6))
		prefix := fmt.Sprintf("w%d-%s-", w, nonce)
		i := 0
		return func(ctx context.Context) error {
			i++
			_, err := client.ExecuteTrade(metadata.NewOutgoingContext(ctx, md), &portfoliov1.ExecuteTradeRequest{
				PortfolioId: ids[pi], Symbol: symbolOf(rng.IntN(tradeSymbols)), Side: portfoliov1.Side_SIDE_BUY,
				Quantity: "1", RequestId: prefix + strconv.Itoa(i)})
			return err
		}
	}))
	wait()
	if err != nil {
		return err
	}
	retries := "retries: metrics not read"
	if scrapeErr == nil {
		const m = "pgfleet_retry_attempts_total"
		d := metricSum(after, m, `class="retryable"`) - metricSum(before, m, `class="retryable"`)
		amb := metricSum(after, m, `class="ambiguous"`) - metricSum(before, m, `class="ambiguous"`)
		ex := metricSum(after, "pgfleet_retry_operations_total", `outcome="exhausted"`) -
			metricSum(before, "pgfleet_retry_operations_total", `outcome="exhausted"`)
		retries = fmt.Sprintf("%.2f retries per trade (%.0f retryable attempts", d/max(1, float64(fleet.ops)), d)
		if amb > 0 {
			retries += fmt.Sprintf(", %.0f ambiguous", amb)
		}
		retries += fmt.Sprintf(", %.0f exhausted, per pgfleet_retry_* of the portfolio service)", ex)
	}

	vars := map[string]string{"pbase": strconv.FormatInt(ids[0], 10)}
	script, err := b.script("trade.sql", tradeScript("BEGIN"))
	if err != nil {
		return err
	}
	rc, err := b.pgbenchRun(ctx, "portfolio", script, tradeClients, vars, 0)
	if err != nil {
		return err
	}
	script, err = b.script("trade-serializable.sql", tradeScript("BEGIN ISOLATION LEVEL SERIALIZABLE"))
	if err != nil {
		return err
	}
	ser, err := b.pgbenchRun(ctx, "portfolio", script, tradeClients, vars, tradeMaxTries)
	if err != nil {
		return err
	}
	if ids[tradePortfolios-1]-ids[0] != tradePortfolios-1 {
		b.note("scenario 6: portfolio ids are not consecutive (%v): the pgbench script traded on ids %d..%d", ids, ids[0], ids[0]+tradePortfolios-1)
	}
	b.add(row{scenario: "6", path: fmt.Sprintf("ExecuteTrade (BUY 1 of %d symbols), %d portfolios, gRPC → portfolio (→ stock for the price)", tradeSymbols, tradePortfolios),
		res: fleet, unit: "trades/s", ratio: ratios(fleet, "pgbench READ COMMITTED", rc, "pgbench SERIALIZABLE", ser),
		target: targetRatio(fleet.rate()/rc.rate(), 0.70), extra: retries})
	b.add(row{scenario: "6", path: "trade script, pgbench -M prepared: advisory xact lock, READ COMMITTED, same reads and writes", res: rc, unit: "tps", ratio: "database limit"})
	b.add(row{scenario: "6", path: fmt.Sprintf("same script at SERIALIZABLE, pgbench --max-tries %d", tradeMaxTries), res: ser, unit: "tps", ratio: "database limit",
		extra: fmt.Sprintf("%.2f retries per trade (%d serialization retries, %d failed after %d tries)", float64(ser.retries)/max(1, float64(ser.ops)), ser.retries, ser.errs, tradeMaxTries)})
	b.note("scenario 6 baselines: pgbench runs the trade under pg_advisory_xact_lock(portfolio) with the same reads (idempotency probe, portfolio, position) and writes (cash, position upsert, trade, ledger row) at a fixed price, once at READ COMMITTED and once at SERIALIZABLE retrying serialization failures (--max-tries); the service runs REPEATABLE READ begun after its session-level portfolio lock is held, and asks the stock service for the price")
	return nil
}

// --- scenario 7: 1,000 REST clients ---------------------------------------------------------

func (b *bench) scenarioSoak(ctx context.Context) error {
	n := b.cfg.soakConns
	if b.gateway == nil {
		b.add(row{scenario: "7", path: fmt.Sprintf("%d REST clients, GetStock through the gateway", n), missing: "not run: gateway not built"})
		return nil
	}
	b.logf("scenario 7: %d REST clients for %s", n, b.cfg.soak)
	pm, err := b.pg.postmasterPID()
	if err != nil {
		return err
	}
	// Peaks from now on: this scenario's, not those of earlier ones.
	for _, pid := range []int{b.gateway.pid(), b.stock.pid()} {
		if err := resetPeak(pid); err != nil {
			b.note("scenario 7: cannot reset the peak RSS of pid %d (%v): VmHWM covers the process's whole life", pid, err)
		}
	}
	var mu sync.Mutex
	var maxConns int64
	var maxGW, maxStock, maxPG int64
	pgProcs := 0
	sample := func(sctx context.Context) {
		var c int64
		err := b.admin.QueryRow(sctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = 'stock' AND application_name = 'pgfleet-stock'`).Scan(&c)
		g, _ := readMem(b.gateway.pid())
		s, _ := readMem(b.stock.pid())
		procs, pss, _ := pgMem(pm)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			maxConns = max(maxConns, c)
		}
		maxGW, maxStock = max(maxGW, g.rss), max(maxStock, s.rss)
		if pss > maxPG {
			maxPG, pgProcs = pss, procs
		}
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				sample(sctx)
			}
		}
	})
	// Closed loop first: every client calls again as soon as it has its answer, the most
	// connections and requests in flight the gateway can get from n clients. By Little's law
	// its latency is n / throughput, whatever the server does. Then paced clients, each one
	// call per 1/soakRate s, well under capacity: their p99 is the one the target is about.
	closed, err := b.restGetStock(ctx, b.gateway.httpAddr, n, b.cfg.warmup, b.cfg.soak, hooks{})
	if err != nil && closed.ops == 0 {
		stopSampling()
		wg.Wait()
		return err
	}
	pace := time.Duration(float64(time.Second) / b.cfg.soakRate)
	// Warm-up of at least two periods: every client has connected before the window opens.
	paced, err := b.restGetStock(ctx, b.gateway.httpAddr, n, max(b.cfg.warmup, 2*pace), b.cfg.soak, hooks{pace: pace})
	stopSampling()
	wg.Wait()
	if err != nil && paced.ops == 0 {
		return err
	}
	gw, _ := readMem(b.gateway.pid())
	st, _ := readMem(b.stock.pid())
	b.add(row{scenario: "7", path: fmt.Sprintf("%d REST clients, closed loop, GetStock → gateway → stock, %s", n, b.cfg.soak), res: closed, unit: "req/s",
		target: "0 errors: " + metOrMissed(closed.errs == 0),
		extra:  fmt.Sprintf("Little's law: p50 ≈ clients / throughput = %s", latency(time.Duration(float64(n)/max(closed.rate(), 1)*float64(time.Second))))})
	b.add(row{scenario: "7", path: fmt.Sprintf("%d REST clients paced at %g req/s each (%s req/s offered), latency from the due time", n, b.cfg.soakRate, rate(b.cfg.soakRate*float64(n))),
		res: paced, unit: "req/s", target: "0 errors, p99 ≤ 50 ms: " + metOrMissed(paced.errs == 0 && paced.p99 <= 50*time.Millisecond)})
	b.add(row{scenario: "7", path: "gateway peak RSS (VmHWM) under that load", figure: mib(max(gw.hwm, maxGW)), target: targetMiB(max(gw.hwm, maxGW), 64)})
	b.add(row{scenario: "7", path: "stock peak RSS (VmHWM) under that load", figure: mib(max(st.hwm, maxStock)), target: targetMiB(max(st.hwm, maxStock), 64)})
	b.add(row{scenario: "7", path: fmt.Sprintf("PostgreSQL, all %d processes (idle baseline pools included), peak PSS sum", pgProcs), figure: mib(maxPG)})
	b.add(row{scenario: "7", path: "stock's DB connections, max of pg_stat_activity every 200 ms", figure: fmt.Sprintf("%d (DB_POOL_SIZE %d)", maxConns, b.cfg.pool),
		target: "≤ pool: " + metOrMissed(maxConns <= int64(b.cfg.pool))})
	return nil
}

// --- helpers ------------------------------------------------------------------------------------

// pgbenchRun warms up with a short run, then measures one of b.cfg.duration (whole seconds).
// A warm-up is not measured, so one that completed no transaction (its clients spent it
// connecting) is noted, not fatal; a measured run that completed none is run again for twice
// as long, up to pgbenchAttempts runs, and the retry noted under the table (its figures are
// then those of the longer run).
func (b *bench) pgbenchRun(ctx context.Context, role, script string, clients int, vars map[string]string, maxTries int) (result, error) {
	r := pgbenchRun{role: role, script: script, clients: clients, vars: vars, maxTries: maxTries}
	name := filepath.Base(script)
	if b.cfg.warmup > 0 {
		r.seconds = max(1, int(b.cfg.warmup.Round(time.Second).Seconds()))
		_, err := b.pg.pgbench(ctx, r)
		switch {
		case errors.Is(err, errNoTransactions):
			b.note("pgbench %s, %d clients: the %ds warm-up completed no transaction (clients still connecting); the measured run followed", name, clients, r.seconds)
		case err != nil:
			return result{}, err
		}
	}
	r.seconds = max(1, int(b.cfg.duration.Round(time.Second).Seconds()))
	r.logDir = filepath.Join(b.cfg.work, "pgbench-log")
	b.command("pgbench " + strings.ReplaceAll(strings.Join(r.args(), " "), b.cfg.root+"/", "") + "   # as role " + role)
	for attempt := 1; ; attempt++ {
		res, err := b.pg.pgbench(ctx, r)
		if !errors.Is(err, errNoTransactions) || attempt == pgbenchAttempts {
			return res, err
		}
		b.note("pgbench %s, %d clients: the %ds measured run completed no transaction (clients still connecting); run again for %ds", name, clients, r.seconds, 2*r.seconds)
		r.seconds *= 2
	}
}

// pgbenchAttempts bounds the runs of one measured pgbench step that completed no transaction.
const pgbenchAttempts = 3

// script writes a pgbench script under the work directory and returns its path.
func (b *bench) script(name, body string) (string, error) {
	dir := filepath.Join(b.cfg.work, "scripts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(body), 0o644)
}

// checked fails a load run that did nothing but fail: a broken path is a bug, not a figure.
func (b *bench) checked(r result) (result, error) {
	if r.ops == 0 && r.errs > 0 {
		return r, fmt.Errorf("every call failed (%d), first: %s", r.errs, r.firstErr)
	}
	return r, nil
}

// md is the gRPC metadata carrying tok.
func (b *bench) md(tok string) metadata.MD {
	if tok == "" {
		return metadata.MD{}
	}
	return metadata.Pairs("authorization", "Bearer "+tok)
}

// profTarget is a process whose CPU profile a run takes when -profile is set.
type profTarget struct{ name, addr string }

// profileHooks returns hooks that, with -profile and at 32 clients, fetch a CPU profile of
// each target during the measured window (10 s, or the window if shorter), and a wait for them.
func (b *bench) profileHooks(ctx context.Context, clients int, targets ...profTarget) (hooks, func()) {
	var wg sync.WaitGroup
	if !b.cfg.profile || clients != 32 {
		return hooks{}, wg.Wait
	}
	secs := max(1, min(10, int(b.cfg.duration.Seconds())))
	return hooks{start: func() {
		for _, t := range targets {
			wg.Go(func() {
				path := filepath.Join(b.cfg.work, "profiles", t.name+".pprof")
				err := saveProfile(ctx, t.addr, secs, path)
				b.mu.Lock()
				defer b.mu.Unlock()
				switch {
				case errors.Is(err, errNoPprof):
					b.profiles = append(b.profiles, fmt.Sprintf("%s: not captured, %s serves no /debug/pprof/", t.name, t.addr))
				case err != nil:
					b.profiles = append(b.profiles, fmt.Sprintf("%s: not captured: %v", t.name, err))
				default:
					b.profiles = append(b.profiles, fmt.Sprintf("%s: %s (%d s at 32 clients)", t.name, b.rel(path), secs))
				}
			})
		}
	}}, wg.Wait
}

func grpcInsecure() grpc.DialOption {
	return grpc.WithTransportCredentials(insecure.NewCredentials())
}

// streamedRows reads a StreamPrices stream to its end and returns the rows it sent.
func streamedRows(st stockv1.StockService_StreamPricesClient) (int, error) {
	n := 0
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("StreamPrices: %w", err)
		}
		n += len(resp.GetPrices())
	}
}
