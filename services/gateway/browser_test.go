package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
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
// shows stock, portfolio and interview SERVING, with pool figures, and turns the interview
// card red once that service stops. The gateway has an interview service of its own to stop.
func testBrowserStatusPage(t *testing.T, e *env) {
	chromium := chromiumPath(t)
	own := *e.fleet
	own.interview = startService(t, e.binDir, "interview")
	gw := startGateway(t, &own, nil)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	console := newConsole(gw.url)
	browser, cancel := chromedp.NewContext(alloc, chromedp.WithListener(console.listen))
	defer cancel()
	if err := chromedp.Do(browser); err != nil { // starts Chromium, for the browser's lifetime
		t.Fatalf("start Chromium (%s): %v", chromium, err)
	}

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
