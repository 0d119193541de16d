package providerstub_test

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/services/stock/providerstub"
)

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("%q is not a decimal", s)
	}
	return r
}

// TestDailyBar: the same bar every call, a consistent one (low <= open, close <= high), and
// weekdays only in Days.
func TestDailyBar(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	days := providerstub.Days(from, from.AddDate(1, 0, 0))
	if len(days) != 261 { // 2026 has 261 weekdays
		t.Errorf("Days(2026) = %d days, want 261", len(days))
	}
	for _, sym := range []string{"AAPL", "MSFT", "X"} {
		for _, d := range days {
			if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
				t.Fatalf("Days returned a %s: %v", wd, d)
			}
			b := providerstub.DailyBar(sym, d)
			if again := providerstub.DailyBar(sym, d.Add(13*time.Hour)); again != b {
				t.Fatalf("DailyBar(%s, %v) = %+v, then %+v", sym, d, b, again)
			}
			o, h, l, c := rat(t, b.Open), rat(t, b.High), rat(t, b.Low), rat(t, b.Close)
			if l.Sign() <= 0 || l.Cmp(o) > 0 || l.Cmp(c) > 0 || h.Cmp(o) < 0 || h.Cmp(c) < 0 || b.Volume <= 0 {
				t.Fatalf("DailyBar(%s, %v) = %+v: inconsistent", sym, d, b)
			}
		}
	}
}

type answer struct {
	Status       string
	ResultsCount int
	Results      []struct{ T int64 }
	NextURL      string `json:"next_url"`
	Error        string
}

func get(t *testing.T, url string) (int, answer) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against loopback
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return resp.StatusCode, a
}

// TestHandler_pages: next_url leads on from the next day, without the key (as Polygon's),
// and the key is required on it too.
func TestHandler_pages(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(providerstub.NewHandler(providerstub.Options{Symbols: []string{"AAPL"}, Key: "k"}))
	t.Cleanup(srv.Close)

	code, a := get(t, srv.URL+"/v2/aggs/ticker/AAPL/range/1/day/2026-11-02/2026-11-13?limit=6&apiKey=k")
	if code != http.StatusOK || a.Status != "OK" || a.ResultsCount != 6 || a.NextURL == "" || strings.Contains(a.NextURL, "apiKey") {
		t.Fatalf("page 1 = %d %+v, want 6 results and a next_url without the key", code, a)
	}
	if code, b := get(t, a.NextURL); code != http.StatusUnauthorized || b.Error != "API Key was not provided" {
		t.Errorf("next_url without the key = %d %+v, want 401", code, b)
	}
	code, b := get(t, a.NextURL+"&apiKey=k")
	if code != http.StatusOK || b.ResultsCount != 4 || b.NextURL != "" {
		t.Fatalf("page 2 = %d %+v, want the last 4 results", code, b)
	}
	if day := time.UnixMilli(b.Results[0].T).UTC(); day != time.Date(2026, 11, 10, 5, 0, 0, 0, time.UTC) {
		t.Errorf("page 2 starts at %v, want 2026-11-10 midnight New York", day)
	}
}

// TestListen: the stand-in on a free loopback port answers until Close.
func TestListen(t *testing.T) {
	t.Parallel()
	srv, err := providerstub.Listen("127.0.0.1:0", providerstub.Options{Symbols: []string{"MSFT"}})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	code, a := get(t, srv.URL+"/v2/aggs/ticker/MSFT/range/1/day/2026-11-02/2026-11-06")
	if code != http.StatusOK || a.ResultsCount != 5 || srv.Handler.Requests() != 1 {
		t.Errorf("GET = %d %+v after %d requests, want 5 results after 1", code, a, srv.Handler.Requests())
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := http.Get(srv.URL); err == nil { //nolint:noctx // a test against loopback
		t.Error("GET after Close succeeded")
	}
}
