package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// chromiumPath finds Debian's Chromium, which the status page test drives headless.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	tb.Fatal("the status page test needs headless Chromium: install it with `apt-get install -y chromium` " +
		"(Debian; `make test` installs it when run as root)")
	return ""
}

// testBrowserStatusPage loads the status page in headless Chromium, under its real CSP: it
// shows stock, portfolio and interview SERVING, with pool figures and charts of their recent
// traffic, and turns the interview card red once that service stops. The gateway has an
// interview service of its own to stop; it and the gateway sample every second
// (HISTORY_INTERVAL) so that their charts get points soon; stock and portfolio sample at the
// default 10 s. That interview service reads on a hot standby of its own (DATABASE_READ_URL):
// its card lists the replica, usable, with the question-list reads it served; the other
// cards say they have none.
func testBrowserStatusPage(t *testing.T, e *env) {
	chromium := chromiumPath(t)
	own := *e.fleet
	replicated := pgtest.NewReplicatedCluster(t)
	primaryURL, standbyURL := replicated.NewDBURLs(t) // the binary migrates the primary itself
	own.interview = apptest.StartProcess(t, filepath.Join(e.binDir, "interview"),
		"DATABASE_URL="+primaryURL, "DATABASE_READ_URL="+standbyURL, "HISTORY_INTERVAL=1s")
	gw := startGateway(t, &own, map[string]string{"HISTORY_INTERVAL": "1s"})
	// Traffic through the gateway while the page is open, for the charts to show; the
	// question list with a token is a read interview runs on its standby.
	traffic, stopTraffic := context.WithCancel(t.Context())
	var sending sync.WaitGroup
	defer sending.Wait()
	defer stopTraffic()
	reader := bearer(t, "reader@pgfleet.test", auth.RoleAdmin)
	sending.Go(func() {
		for traffic.Err() == nil {
			for _, c := range []struct {
				path  string
				token bool
			}{{"/v1/stocks/AAPL", false}, {"/v1/stocks/NOPE", false}, {"/v1/questions?page_size=2", false}, {"/v1/questions?page_size=1", true}} {
				if req, err := http.NewRequestWithContext(traffic, http.MethodGet, gw.url+c.path, nil); err == nil {
					if c.token {
						req.Header.Set(reader[0], reader[1])
					}
					if resp, err := gw.client.Do(req); err == nil {
						resp.Body.Close()
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	browser, console := startChromium(t, chromium, gw.url)

	// Bounded waits, no timing assertions: the page refreshes every 2 s.
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(browser, d)
		t.Cleanup(cancel)
		return ctx
	}
	card := func(service, state string) chromedp.CSS {
		return chromedp.CSS(`section.card.` + state + `[data-service="` + service + `"]`)
	}

	ctx := within(60 * time.Second)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gw.url+"/"),
		chromedp.WaitVisible(card("stock", "up")),
		chromedp.WaitVisible(card("portfolio", "up")),
		chromedp.WaitVisible(card("interview", "up")),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
	); err != nil {
		t.Fatalf("page does not show stock, portfolio and interview SERVING: %v", err)
	}
	// Without a token the page shows health alone (it does not ask /monitoring/database,
	// which would answer 401); with an admin token typed in, each card gets its database's.
	if noDetails, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('section.card[data-service="stock"] dl') === null`)); err != nil || !noDetails {
		t.Errorf("stock card has database details before a token was given (%v)", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), authtest.Token(t, "ops@pgfleet.test", auth.RoleAdmin)),
		chromedp.Click(chromedp.CSS(`#use-token`)),
		chromedp.WaitVisible(card("stock", "up")+" dl"), // the database details arrived
	); err != nil {
		t.Fatalf("page does not show database details with an admin token: %v", err)
	}
	testCharts(t, within(120*time.Second), []string{"gateway", "stock", "portfolio", "interview"})
	testReplicaRows(t, within(60*time.Second), gw, standbyURL)
	// style.css applied despite default-src 'none': a SERVING card has its green border.
	border, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('section.card.up')).borderTopColor`))
	if err != nil || border != "rgb(26, 127, 55)" {
		t.Errorf("SERVING card border = %q, %v; want the green of style.css (was the stylesheet blocked?)", border, err)
	}
	stockText, err := chromedp.Run(ctx, chromedp.Text(card("stock", "up")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SERVING", "total", "idle", "acquired", "max", "ping", "locks"} {
		if !strings.Contains(stockText, want) {
			t.Errorf("stock card %q lacks %q", stockText, want)
		}
	}
	// While all serve, the console stays clean: no failed request (the browser's own
	// /favicon.ico included), no error, no exception.
	select {
	case <-console.favicon:
	case <-ctx.Done():
		t.Fatal("the browser never asked for /favicon.ico")
	}
	if problems := console.take(); len(problems) > 0 {
		t.Errorf("console while every service serves:\n%s", strings.Join(problems, "\n"))
	}

	own.interview.Stop(t)
	ctx = within(60 * time.Second)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(card("interview", "down"))); err != nil {
		t.Fatalf("interview card not red after the service stopped: %v", err)
	}
	portfolio, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`section[data-service="portfolio"]`), "data-health"))
	if err != nil || portfolio.Value != "SERVING" {
		t.Errorf("portfolio card = %q, %v after interview stopped, want SERVING", portfolio.Value, err)
	}
	// Now /health and /monitoring/database answer 503, which the browser logs; nothing else.
	for _, p := range console.take() {
		statusCall := strings.Contains(p, gw.url+"/health") || strings.Contains(p, gw.url+"/monitoring/database")
		if !strings.Contains(p, "503") || !statusCall {
			t.Errorf("console after interview stopped: %s", p)
		}
	}
}

// startChromium starts headless Chromium for the test's lifetime and returns its context and
// the console of its tab, whose page will be of origin.
func startChromium(t *testing.T, chromium, origin string) (context.Context, *console) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	console := newConsole(origin)
	browser, cancel := chromedp.NewContext(alloc, chromedp.WithListener(console.listen))
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil { // starts Chromium, for the browser's lifetime
		t.Fatalf("start Chromium (%s): %v", chromium, err)
	}
	return browser, console
}

// testBrowserLiveView loads the live view (/live?symbols=LIVEA) in headless Chromium, under
// its real CSP: it shows LIVEA's latest close, pushed by GET /v1/prices:watch through an
// EventSource, and, given a portfolio holding LIVEA and its owner's token, the portfolio's
// total value (GET /v1/portfolios/{id}:watch, the token as access_token); then the close of
// a newer bar the test ingests (IngestPrices, over gRPC as a feed would) and the portfolio
// revalued at it, without a reload; the console stays clean. It needs the stock service's
// WatchLatestPrices and WatchStockEvents (portfolio's price feed).
func testBrowserLiveView(t *testing.T, e *env) {
	chromium := chromiumPath(t)
	const symbol = "LIVEA"
	sc := stockv1.NewStockServiceClient(apptest.Dial(t, e.fleet.stock.Addr, authtest.Admin(t)))
	if _, err := sc.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{
		{Symbol: symbol, Name: "Live View Inc.", Sector: "Industrials", Exchange: "NASDAQ", Currency: "USD"}, // not Technology: list_stocks_paged counts those
	}}); err != nil {
		t.Fatalf("upsert %s: %v", symbol, err)
	}
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	ingest := func(close string, at time.Time) {
		t.Helper()
		stream, err := sc.IngestPrices(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		bar := &stockv1.Price{Symbol: symbol, Time: timestamppb.New(at), Open: close, High: close, Low: close, Close: close, Volume: 1}
		if err := stream.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{bar}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.CloseAndRecv(); err != nil {
			t.Fatalf("ingest %s %s: %v", symbol, close, err)
		}
	}
	ingest("10.5", day)

	browser, console := startChromium(t, chromium, e.gw.url)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	shows := func(close float64) string {
		return fmt.Sprintf(`(() => { const tr = document.querySelector('#prices tr[data-symbol="%s"]'); `+
			`return tr !== null && Number(tr.dataset.close) === %v; })()`, symbol, close)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.gw.url+"/live?symbols="+symbol)); err != nil {
		t.Fatalf("open the live view: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shows(10.5), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`body`)))
		t.Fatalf("the live view never showed %s at 10.5 (%v); it shows:\n%s\nconsole: %v", symbol, err, text, console.take())
	}
	// A portfolio holding 10 LIVEA bought at 10.5 with 1000 of cash: worth 1000, then 1317.5.
	const owner = "live@example.com"
	id := newPortfolio(t, e, owner, "1000")
	if r := e.gw.do(t, http.MethodPost, "/v1/portfolios/"+id+"/trades",
		`{"symbol":"`+symbol+`","side":"SIDE_BUY","quantity":"10","request_id":"live-buy"}`, bearer(t, owner)...); r.code != http.StatusOK {
		t.Fatalf("buy %s = %v", symbol, r)
	}
	worth := func(total float64) string {
		return fmt.Sprintf(`Number(document.getElementById('total').dataset.value) === %v`, total)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#portfolio`), id),
		chromedp.SendKeys(chromedp.CSS(`#token`), authtest.Token(t, owner)),
		chromedp.Click(chromedp.CSS(`#watch`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](worth(1000), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#value`)))
		t.Fatalf("the live view never showed portfolio %s worth 1000 (%v); it shows:\n%s", id, err, text)
	}

	ingest("42.25", day.AddDate(0, 0, 1)) // a newer bar: the latest price changes
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shows(42.25), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`body`)))
		t.Fatalf("the live view never showed the ingested close 42.25 of %s (%v); it shows:\n%s", symbol, err, text)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](worth(1317.5), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#value`)))
		t.Fatalf("the live view never showed portfolio %s revalued at 1317.5 (%v); it shows:\n%s", id, err, text)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#stream`)))
	if err != nil || status != "prices live" {
		t.Errorf("stream status = %q (%v), want prices live", status, err)
	}
	if problems := console.take(); len(problems) > 0 {
		t.Errorf("console of the live view:\n%s", strings.Join(problems, "\n"))
	}
}

// testReplicaRows: /monitoring/database reports interview's standby, usable, with reads
// routed to it, and the page shows it as a usable replica with reads on replicas; the stock
// card, without a replica, says so.
func testReplicaRows(t *testing.T, ctx context.Context, gw *testGateway, standbyURL string) {
	t.Helper()
	u, err := url.Parse(standbyURL)
	if err != nil {
		t.Fatal(err)
	}
	standby := u.Host
	type document map[string]struct {
		Status struct {
			Replicas []struct {
				Replica string `json:"replica"`
				Usable  bool   `json:"usable"`
				Reads   string `json:"reads"` // int64: a string in protojson
			} `json:"replicas"`
			Reads []struct {
				Target, Reason, Count string
			} `json:"reads"`
		} `json:"status"`
	}
	var doc document
	pgtest.Poll(t, "interview's standby usable with reads in /monitoring/database", func() bool {
		doc = decode[document](t, gw.do(t, http.MethodGet, "/monitoring/database", "", bearer(t, "ops@pgfleet.test", "admin")...))
		reps := doc["interview"].Status.Replicas
		return len(reps) == 1 && reps[0].Replica == standby && reps[0].Usable && reps[0].Reads != "0"
	})
	if reps, reads := doc["stock"].Status.Replicas, doc["stock"].Status.Reads; len(reps) != 0 || len(reads) != 4 {
		t.Errorf("stock's replicas %v and reads %v, want none and the four series", reps, reads)
	}

	row := `section.card[data-service="interview"] ul.replicas li[data-replica="` + standby + `"][data-state="usable"]`
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("interview card does not show its standby usable: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`/(^|[^0-9])[1-9][0-9]* on replicas/.test(document.querySelector('section.card[data-service="interview"] dl').textContent)`,
		chromedp.WithPollingInterval(250*time.Millisecond))); err != nil {
		t.Fatalf("interview card does not show reads on replicas: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row)))
	if err != nil || !strings.Contains(text, standby+" usable, lag ") || !strings.Contains(text, " reads") {
		t.Errorf("interview's replica row = %q (%v), want its address, usable, its lag and reads", text, err)
	}
	stock, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`section.card[data-service="stock"] dl`)))
	if err != nil || !strings.Contains(stock, "none: every read on the primary") {
		t.Errorf("stock card = %q (%v), want its replicas row saying none", stock, err)
	}
}

// testCharts waits until each service's row of the "last 15 minutes" section has its four
// charts (the gateway three: it has no pool), each a line of more than one point with its figures in its accessible name, and
// saves a screenshot of the page at $STATUS_SCREENSHOT if set (the README's picture).
func testCharts(t *testing.T, ctx context.Context, services []string) {
	t.Helper()
	// drawn reports, per service, what is missing from its row ("" when complete).
	const drawn = `(() => {
		const out = {};
		for (const name of %s) {
			const row = document.querySelector('#recent:not([hidden]) .chart-row[data-service="' + name + '"]');
			const figs = row ? [...row.querySelectorAll('figure.spark')] : [];
			const bad = figs.filter((f) => {
				const line = f.querySelector('svg[role="img"] polyline.line');
				const label = f.querySelector('svg').getAttribute('aria-label') || '';
				const points = line ? line.getAttribute('points').trim().split(/\s+/) : [];
				const numbers = /now [0-9.]+/.test(label) && /axis max [0-9.]+/.test(label) && /[0-9]+ samples/.test(label);
				const title = f.querySelector('svg > title');
				return points.length < 2 || !numbers || !title || title.textContent !== label;
			});
			out[name] = figs.length !== (name === 'gateway' ? 3 : 4) ? (row ? row.textContent : 'no row') : bad.length ? bad.length + ' charts lack points or figures' : '';
		}
		return out;
	})()`
	quoted := make([]string, len(services))
	for i, s := range services {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	expr := fmt.Sprintf(drawn, "["+strings.Join(quoted, ",")+"]")
	var missing map[string]string
	for {
		var err error
		missing, err = chromedp.Run(ctx, chromedp.Evaluate[map[string]string](expr))
		if err != nil {
			t.Fatalf("charts never complete (%v); last seen: %v", err, missing)
		}
		complete := true
		for _, m := range missing {
			complete = complete && m == ""
		}
		if complete {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The numbers are the samples': stock served calls, so its rate is not 0/s everywhere.
	label, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.querySelector('.chart-row[data-service="stock"] figure[data-metric="calls_per_second"] svg').getAttribute('aria-label')`))
	if err != nil || !strings.HasPrefix(label, "stock calls per second over the last ") || strings.Contains(label, "peak 0.0/s") {
		t.Errorf("stock calls/s chart labelled %q (%v), want the stock's figures with a peak above 0", label, err)
	}
	if path := os.Getenv("STATUS_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// console collects what a page's console would show as a problem: failed requests (HTTP
// 4xx/5xx or no answer), errors logged by the browser or the page, uncaught exceptions.
type console struct {
	favicon chan struct{} // closed once /favicon.ico was answered
	url     string        // the page's origin, for /favicon.ico

	mu       sync.Mutex
	problems []string
	once     sync.Once
}

func newConsole(origin string) *console {
	return &console{favicon: make(chan struct{}), url: origin + "/favicon.ico"}
}

// listen is a chromedp listener: it runs on the tab's reading goroutine and only records.
func (c *console) listen(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Response.URL == c.url {
			defer c.once.Do(func() { close(c.favicon) })
		}
		if ev.Response.Status >= 400 {
			problem = fmt.Sprintf("HTTP %d %s", ev.Response.Status, ev.Response.URL)
		}
	case *network.EventLoadingFailed:
		problem = fmt.Sprintf("request failed: %s %s", ev.ErrorText, ev.BlockedReason)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			problem = fmt.Sprintf("%s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
			problem = "console." + string(ev.Type) + " called"
		}
	case *cdpruntime.EventExceptionThrown:
		problem = fmt.Sprintf("uncaught exception: %s at %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber)
	}
	if problem != "" {
		c.mu.Lock()
		c.problems = append(c.problems, problem)
		c.mu.Unlock()
	}
}

// take returns the problems recorded so far and forgets them.
func (c *console) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.problems
	c.problems = nil
	return p
}
