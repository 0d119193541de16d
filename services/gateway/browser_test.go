package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	browser, cancel := chromedp.NewContext(alloc)
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
		chromedp.WaitVisible(card("stock", "up")+" dl"), // the database details arrived
	); err != nil {
		t.Fatalf("page does not show stock, portfolio and interview SERVING: %v", err)
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

	own.interview.Stop(t)
	ctx = within(60 * time.Second)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(card("interview", "down"))); err != nil {
		t.Fatalf("interview card not red after the service stopped: %v", err)
	}
	portfolio, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`section[data-service="portfolio"]`), "data-health"))
	if err != nil || portfolio.Value != "SERVING" {
		t.Errorf("portfolio card = %q, %v after interview stopped, want SERVING", portfolio.Value, err)
	}
}
