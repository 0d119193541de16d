package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/tools/internal/localdb"
)

// printExamples prints ports, URLs and the examples, which README.md promises and `make
// examples` (deploy/examples) runs as printed: change them together. A blank line ends them.
func (f *fleet) printExamples(ctx context.Context) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	relBin := strings.TrimPrefix(f.bin, f.root+"/")
	probe := "grpc_health_probe"
	if _, err := exec.LookPath(probe); err != nil {
		if _, err := exec.LookPath("grpc-health-probe"); err == nil {
			probe = "grpc-health-probe"
		}
	}

	w("")
	w("pgfleet is running. Ctrl-C stops it.")
	w("")
	w("  PostgreSQL  %s, database %s (%s)", f.pgHostPort, localdb.DB, f.pgWhere)
	w("              admin: %s", mask(adminDBURL(f.adminURL)))
	if f.standby != nil {
		w("  standby     %s (REPLICAS=1: streaming from the primary, read-only; application_name %s, log %s)",
			f.standby.URL(localdb.DB), standbyName, filepath.Join(f.standbyDir, "server.log"))
	}
	for _, s := range f.svcs {
		pw := password(s.name)
		note := "password from " + upper(s.name) + "_DB_PASSWORD"
		if pw == s.name {
			note = fmt.Sprintf("dev-only password %q (= role name); set %s_DB_PASSWORD to change it", s.name, upper(s.name))
		}
		w("  %-11s gRPC %s, metrics %s, log %s", s.name, s.grpc, s.metrics, filepath.Join(f.logDir, s.name+".log"))
		w("  %-11s DATABASE_URL=%s  (%s)", "", mask(f.serviceURL(s.name, pw)), note)
		if u := f.readURL(s.name, pw); u != "" {
			w("  %-11s DATABASE_READ_URL=%s  (the standby: reads that tolerate MAX_REPLICA_LAG)", "", mask(u))
		}
	}
	w("  %-11s HTTP %s (REST, /health, /monitoring/database, /openapi.json), metrics %s, log %s",
		"gateway", f.gatewayHTTP, f.gatewayMetr, filepath.Join(f.logDir, "gateway.log"))
	w("  %-11s status page: %s/, live view: %s/live?symbols=AAPL,MSFT", "", f.gatewayURL(), f.gatewayURL())
	w("  %-11s %s doctor --fleet %s   (checks this fleet end to end; the file holds its passwords)",
		"doctor", filepath.Join(relBin, "pgfleet"), f.fleetFile())
	w("")
	w("Try it: in another shell first run these (grpcurl, %s and pgfleet-token are in %s;", probe, relBin)
	w("the tokens are valid for 7 days, signed with the secret in %s):", f.secretFile)
	w(`  export PATH="%s:$PATH"`, f.bin)
	w("  export DEMO_TOKEN=%s   # demo@pgfleet.dev, owner of the seeded portfolio", f.demoToken)
	w("  export ADA_TOKEN=%s   # ada@example.com", f.adaToken)
	w("  export ADMIN_TOKEN=%s   # role admin", f.adminToken)
	w("  # more: JWT_SECRET=$(cat %s) pgfleet-token -sub you@example.com [-roles admin|ingest]", f.secretFile)
	w("Market data is public; everything else needs a token, and each user reaches only their own data.")
	for _, s := range f.svcs {
		w("  %s -addr=%s", probe, f.grpcTarget(s.name))
	}
	if stock, ok := f.svc("stock"); ok {
		s := f.grpcTarget("stock")
		m := probeHost(stock.metrics) + ":" + strconv.Itoa(mustPort(stock.metrics))
		// The dev password is printed as it is; a chosen one stays masked.
		stockURL := f.serviceURL("stock", password("stock"))
		if password("stock") != "stock" {
			stockURL = mask(stockURL)
		}
		b.WriteString(expand(`  grpcurl -plaintext $s list
  grpcurl -plaintext -d '{"symbol":"AAPL"}' $s pgfleet.stock.v1.StockService/GetStock
  grpcurl -plaintext -d '{"filter":"sector = \"Technology\"","order_by":"market_cap desc","page_size":5}' $s pgfleet.stock.v1.StockService/ListStocks
  grpcurl -plaintext -d '{"symbols":["AAPL","MSFT","NVDA"]}' $s pgfleet.stock.v1.StockService/GetLatestPrices
  grpcurl -plaintext -H "authorization: Bearer \$ADMIN_TOKEN" $s pgfleet.ops.v1.DatabaseMonitor/GetDatabaseStatus
  curl -s $m/metrics | grep pgfleet_db_pool
  psql '$stock_url' -c 'SELECT sector, count(*) FROM stock.stocks GROUP BY 1'
`, map[string]string{"s": s, "m": m, "stock_url": stockURL}))
	}
	demoPID := ""
	if _, ok := f.svc("portfolio"); ok {
		portfolioURL := f.serviceURL("portfolio", password("portfolio"))
		// The seeded demo portfolio's ids, so that the examples below run as printed.
		pid, uid := demoPortfolio(ctx, portfolioURL)
		vars := map[string]string{"t": f.grpcTarget("portfolio"), "P": "pgfleet.portfolio.v1.PortfolioService"}
		if pid != "" {
			demoPID = pid
			vars["pid"] = pid
			vars["where1"] = `here on the seeded portfolio "Demo"`
			vars["where2"] = fmt.Sprintf("(id %s, of demo@pgfleet.dev, user id %s) so they run as printed; on yours, use its id.", pid, uid)
		} else {
			vars["pid"] = "<portfolio.id from CreatePortfolio>"
			vars["where1"] = "with the portfolio.id from"
			vars["where2"] = "CreatePortfolio (there is no seeded demo portfolio: PGFLEET_SEED=0 on the first run?)."
		}
		if password("portfolio") != "portfolio" {
			portfolioURL = mask(portfolioURL)
		}
		vars["portfolio_url"] = portfolioURL
		b.WriteString(expand(`  # portfolio: Ada registers herself (the email must be her token's subject; a second time
  # it answers ALREADY_EXISTS) and opens a portfolio, which is hers because the token is
  grpcurl -plaintext -H "authorization: Bearer \$ADA_TOKEN" -d '{"email":"ada@example.com","display_name":"Ada"}' $t $P/CreateUser   # AlreadyExists if she registered before
  grpcurl -plaintext -H "authorization: Bearer \$ADA_TOKEN" -d '{"name":"Main","request_id":"ada-main"}' $t $P/CreatePortfolio
  # Then cash, a trade priced by the stock service, and the valuation, $where1
  # $where2 Without a token: UNAUTHENTICATED; with Ada's: NOT_FOUND, as for a missing id.
  # A repeated request_id returns the first result and changes nothing.
  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","amount":"10000","request_id":"dep-1"}' $t $P/Deposit
  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","symbol":"AAPL","side":"SIDE_BUY","quantity":"10","request_id":"buy-1"}' $t $P/ExecuteTrade
  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid"}' $t $P/GetPortfolio
  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","filter":"symbol = \"AAPL\""}' $t $P/ListTrades
  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid"}' $t $P/ListCashMovements
  psql '$portfolio_url' -c 'SELECT p.id, p.cash, sum(m.amount) AS ledger FROM portfolio.portfolios p JOIN portfolio.cash_movements m ON m.portfolio_id = p.id GROUP BY 1, 2 ORDER BY 1'
`, vars))
	}
	if _, ok := f.svc("interview"); ok {
		b.WriteString(expand(`  # interview: start a session, answer its next question, complete it (jq passes the ids along)
  A="authorization: Bearer \$ADA_TOKEN"
  I=pgfleet.interview.v1.InterviewService
  grpcurl -plaintext -H "\$A" -d '{"filter":"category = \"SQL\" AND tags:\"joins\"","page_size":3}' $t pgfleet.interview.v1.QuestionBankService/ListQuestions
  SID=\$(grpcurl -plaintext -H "\$A" -d '{"criteria":{"categories":["SQL","PostgreSQL"],"max_difficulty":3,"count":3}}' $t \$I/StartSession | jq -r .session.id)
  QID=\$(grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/NextQuestion | jq -r .question.questionId)
  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\",\\"question_id\\":\\"\$QID\\",\\"answer\\":\\"An inner join keeps only matching rows\\"}" $t \$I/SubmitAnswer
  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/CompleteSession
  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/GetSession
`, map[string]string{"t": f.grpcTarget("interview")}))
	}
	pid := demoPID
	if pid == "" {
		pid = "<portfolio id>"
	}
	b.WriteString(expand(`  # REST through the gateway ($gw): JSON with proto field names, int64 and decimals as strings
  curl -s $gw/v1/stocks/AAPL
  # a filtered, sorted page; for the next one, add &page_token=<next_page_token of the answer>
  curl -s '$gw/v1/stocks?filter=sector%20%3D%20%22Technology%22&order_by=market_cap%20desc&page_size=5'
  curl -s '$gw/v1/stocks/AAPL/prices:stream?batch_size=100' | head -c 300   # NDJSON export
  # a trade with the demo user's token; the same without a token is 401, with Ada's 404
  curl -s $json -H "Authorization: Bearer \$DEMO_TOKEN" -d '{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1","request_id":"rest-buy-1"}' $gw/v1/portfolios/$pid/trades
  curl -s -i $json -d '{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1","request_id":"rest-buy-2"}' $gw/v1/portfolios/$pid/trades   # 401: no token
  curl -s -H "Authorization: Bearer \$ADA_TOKEN" $gw/v1/portfolios/$pid   # 404: not hers
  curl -s $gw/health
  curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" $gw/monitoring/database   # needs role admin or service
  curl -s $gw/openapi.json | head -c 300
  curl -s $gm/metrics | grep pgfleet_gateway_http_requests_total
  # CORS preflights: from the allowed origin (Access-Control-Allow-Origin comes back), from another (none)
  curl -s -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization,content-type' $gw/v1/portfolios
  curl -s -i -X OPTIONS -H 'Origin: http://evil.example' -H 'Access-Control-Request-Method: POST' $gw/v1/portfolios
  # live data: the latest prices now, then each change, as server-sent events (head ends it; a browser's EventSource runs on)
  curl -sN '$gw/v1/prices:watch?symbols=AAPL,MSFT' | head -n 1
  # ingestion: the demo job's runs (role ingest or admin); training data: a sector's bars with the model's
  # predictions as known at each bar, as an Arrow IPC stream for pyarrow or polars; the model's scoreboard
  curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" '$gw/v1/ingestionRuns?job_id=demo-daily-bars&page_size=3'
  curl -s -o prices.arrows '$gw/v1/prices:export?filter=sector%20%3D%20%22Technology%22&format=EXPORT_FORMAT_ARROW&recommendation_source=pgfleet-model'
  curl -s '$gw/v1/recommendations:scoreboard?horizons_days=5&horizons_days=20&filter=model_version%20%3D%20%22momentum-1%22'
  # the status page (every service's health, live; pool figures and locks once you paste \$ADMIN_TOKEN into it): open $gw/ in a browser
`, map[string]string{"gw": f.gatewayURL(), "gm": "http://" + probeHost(f.gatewayMetr) + ":" + strconv.Itoa(mustPort(f.gatewayMetr)),
		"pid": pid, "json": "-H 'Content-Type: application/json'"}))
	if _, err := exec.LookPath("grpcurl"); err != nil {
		w("  (grpcurl is missing from %s: 'make run' builds it)", relBin)
	}
	w("")
	_, err := os.Stdout.WriteString(b.String())
	return err
}

// shellVar is what expand replaces: $name, or \$ (a literal $), \\ (a backslash), as a shell's
// unquoted here-document does.
var shellVar = regexp.MustCompile(`\\\$|\\\\|\$[A-Za-z_][A-Za-z0-9_]*`)

// expand is text as an unquoted shell here-document prints it with vars set: the examples
// are kept in run.sh's form, which printed them.
func expand(text string, vars map[string]string) string {
	return shellVar.ReplaceAllStringFunc(text, func(m string) string {
		switch m {
		case `\$`:
			return "$"
		case `\\`:
			return `\`
		}
		v, ok := vars[m[1:]]
		if !ok {
			panic("examples: no value for " + m)
		}
		return v
	})
}

// adminDBURL is the admin URL with database pgfleet, to print.
func adminDBURL(admin string) string {
	m := regexp.MustCompile(`^([^?]*://[^/?]*)(/[^?]*)?(\?.*)?$`).FindStringSubmatch(admin)
	if m == nil {
		return admin
	}
	return m[1] + "/" + localdb.DB + m[3]
}

// demoPortfolio returns the ids of the seeded portfolio "Demo" and its user, or "" if there is none.
func demoPortfolio(ctx context.Context, url string) (pid, uid string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", ""
	}
	defer conn.Close(ctx)
	var p, u int64
	err = conn.QueryRow(ctx, `SELECT p.id, p.user_id FROM portfolio.portfolios p
		JOIN portfolio.users u ON u.id = p.user_id
		WHERE lower(u.email) = 'demo@pgfleet.dev' AND p.name = 'Demo' ORDER BY p.id LIMIT 1`).Scan(&p, &u)
	if err != nil {
		return "", ""
	}
	return strconv.FormatInt(p, 10), strconv.FormatInt(u, 10)
}
