package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
)

// bigExportBars is the size of the export testDrainEndsStreams cuts: megabytes of NDJSON, far
// more than the socket and HTTP/2 buffers between the stock service and a client that has
// stopped reading can hold.
const bigExportBars = 100_000

// testDrainEndsStreams: a price export still running when the gateway's drain ends is not
// cut mid-body: its last line is an {"error"} of reason SHUTTING_DOWN (UNAVAILABLE, with
// RetryInfo) and the body ends properly (the chunked terminator), so a client tells it from a
// complete export, which has no error line. The client reads the first line, then stops
// reading until the gateway has given up waiting for it, then reads the rest.
func testDrainEndsStreams(t *testing.T, e *env) {
	stock := startService(t, e.binDir, "stock")
	seedBigSymbol(t, stock.Addr, "BIG", bigExportBars)

	// The gateway runs here, not through apptest.Start, so that the test decides when it
	// stops, and hears when its drain has timed out.
	drainTimedOut := make(chan struct{})
	vars := map[string]string{
		"HTTP_ADDR": apptest.FreeAddr(t), "METRICS_ADDR": apptest.FreeAddr(t),
		"STOCK_ADDR": stock.Addr, "PORTFOLIO_ADDR": e.fleet.portfolio.Addr, "INTERVIEW_ADDR": e.fleet.interview.Addr,
		"STOCK_TIMEOUT": "10s", "DRAIN_TIMEOUT": "8s", // the last quarter, capped at 2 s, ends the export: room for a busy machine
	}
	for k, v := range authtest.Env() {
		vars[k] = v
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, slog.New(&onMessage{msg: "drain timed out, ending open requests", seen: drainTimedOut, once: &sync.Once{}}), envconfig.MapLookuper(vars))
	}()
	gw := &testGateway{url: "http://" + vars["HTTP_ADDR"], metrics: "http://" + vars["METRICS_ADDR"], client: &http.Client{}}
	waitHealthz(t, gw)

	// A client with a 4 KiB receive buffer: once it stops reading, the export stalls at once.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); cerr != nil {
			return cerr
		}
		return err
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, ReadBufferSize: 4096}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.url+"/v1/stocks/BIG/prices:stream?batch_size=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReaderSize(resp.Body, 4096)
	first, err := body.ReadBytes('\n')
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export = HTTP %d, first line %.200q, %v; want 200 and a line", resp.StatusCode, first, err)
	}

	stop() // SIGTERM
	select {
	case <-drainTimedOut:
	case <-time.After(time.Minute):
		t.Fatal("the gateway's drain did not time out with the export open")
	}
	rest, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("reading the export after the drain: %v (a cut body, not an ended one)", err)
	}
	all := slices.Concat(first, rest)
	checkContract(t, req, resp.StatusCode, resp.Header, all)
	lines := bytes.Split(bytes.TrimSuffix(all, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	var end struct {
		Error *errorBody `json:"error"`
	}
	if err := json.Unmarshal(last, &end); err != nil || end.Error == nil {
		t.Fatalf("last of %d lines = %.300s (%v), want an {\"error\"} line", len(lines), last, err)
	}
	retryInfo := false
	for _, d := range end.Error.Details {
		retryInfo = retryInfo || d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
	}
	if end.Error.Code != 14 || end.Error.reason() != "SHUTTING_DOWN" || !retryInfo {
		t.Errorf("last line = %s, want code 14 (UNAVAILABLE), reason SHUTTING_DOWN and a RetryInfo", last)
	}
	if results := len(lines) - 1; results >= bigExportBars/1000 {
		t.Errorf("%d result lines before the error, want fewer than the whole export's %d", results, bigExportBars/1000)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after the drain", err)
		}
	case <-time.After(time.Minute):
		t.Error("the gateway did not stop")
	}
}

// seedBigSymbol stores symbol with n one-minute bars in the stock service at addr.
func seedBigSymbol(t *testing.T, addr, symbol string, n int) {
	t.Helper()
	sc := stockv1.NewStockServiceClient(apptest.Dial(t, addr, authtest.Admin(t)))
	if _, err := sc.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{
		Symbol: symbol, Name: symbol + " Corp.", Sector: "Test", Exchange: "NYSE", Currency: "USD", MarketCap: 1e9,
	}}}); err != nil {
		t.Fatalf("seed %s: %v", symbol, err)
	}
	stream, err := sc.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	const perMessage = 10_000
	for i := 0; i < n; i += perMessage {
		var bars []*stockv1.Price
		for j := i; j < min(i+perMessage, n); j++ {
			c := fmt.Sprintf("%d.25", 100+j%50)
			bars = append(bars, &stockv1.Price{Symbol: symbol, Time: timestamppb.New(start.Add(time.Duration(j) * time.Minute)),
				Open: c, High: c, Low: c, Close: c, Volume: int64(1000 + j)})
		}
		if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("seed %s prices: %v", symbol, err)
	}
}

// waitHealthz waits until gw's metrics listener answers /healthz 200.
func waitHealthz(t *testing.T, gw *testGateway) {
	t.Helper()
	for deadline := time.Now().Add(startupTimeout); ; time.Sleep(20 * time.Millisecond) {
		resp, err := gw.client.Get(gw.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not up within %v: %v", startupTimeout, err)
		}
	}
}

// onMessage is a slog handler that drops every record and closes seen on the first whose
// message is msg.
type onMessage struct {
	msg  string
	seen chan struct{}
	once *sync.Once
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onMessage) WithGroup(string) slog.Handler            { return h }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
