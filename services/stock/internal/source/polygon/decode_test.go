package polygon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
)

var (
	dec1 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dec8 = time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
)

// A page as Polygon writes it: status after the results, t at midnight New York (05:00 UTC
// in December), a large volume in exponent notation, keys the connector does not read.
const polygonPage = `{"ticker":"AAPL","queryCount":2,"resultsCount":2,"adjusted":true,
 "results":[{"v":7.0790813e+07,"vw":187.1234,"o":187.25,"c":188.500,"h":189,"l":186.75,"t":1796101200000,"n":612345},
            {"v":12,"o":0.000123,"c":0.0002,"h":0.0003,"l":0.0001,"t":1796187600000}],
 "status":"DELAYED","request_id":"6a7e466379af0a71039d60cc78e72282","count":2,
 "next_url":"https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1796274000000/2026-12-07?cursor=abc"}`

func TestDecode_polygonPage(t *testing.T) {
	t.Parallel()
	d := &pageDecoder{symbol: "AAPL", from: dec1, to: dec8}
	p, err := d.decode(strings.NewReader(polygonPage))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := &page{status: "DELAYED",
		nextURL: "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1796274000000/2026-12-07?cursor=abc",
		bars: []source.Bar{
			// The text as sent: "188.500" keeps its zeros, "189" stays an integer.
			{Symbol: "AAPL", Time: dec1, Open: "187.25", High: "189", Low: "186.75", Close: "188.500", Volume: 70790813, Ref: "AAPL 2026-12-01"},
			{Symbol: "AAPL", Time: dec1.AddDate(0, 0, 1), Open: "0.000123", High: "0.0003", Low: "0.0001", Close: "0.0002", Volume: 12, Ref: "AAPL 2026-12-02"},
		}}
	if diff := cmp.Diff(want, p, cmp.AllowUnexported(page{})); diff != "" {
		t.Errorf("page mismatch (-want +got):\n%s", diff)
	}
}

func TestDecode_errorsSayWhere(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"empty", ``, "at byte 0"},
		{"cut", polygonPage[:120], "unexpected EOF"},
		{"array", `[]`, "want a JSON object"},
		{"results_object", `{"status":"OK","results":{}}`, "want an array"},
		{"status_number", `{"status":1}`, `"status" is not a string`},
		{"trailing", `{"status":"OK"} {}`, "data after the object"},
		{"bad_syntax", `{"status":"OK","results":[{"o":1,}]}`, "at byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := (&pageDecoder{symbol: "AAPL", from: dec1, to: dec8}).decode(strings.NewReader(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode(%q) = %v, want an error with %q", tt.body, err, tt.want)
			}
		})
	}
}

func TestPrice(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, wantErr string }{
		{"187.25", "187.25", ""},
		{"187.250000", "187.250000", ""},
		{"0", "0", ""},
		{"12345678901234.5", "12345678901234.5", ""},
		{"1e400", "", "exponent"},
		{"1.8725E2", "", "exponent"},
		{"187.1234567", "", "7 decimals"},
		{"-1.5", "", "negative"},
		{"123456789012345", "", "too large"},
		{`"187.25"`, "", "not a number"},
		{"null", "", "is null"},
		{"01.5", "", "not a number"},
		{"1.", "", "not a number"},
	}
	for _, tt := range tests {
		got, err := price(json.RawMessage(tt.in))
		if tt.wantErr == "" && (err != nil || got != tt.want) {
			t.Errorf("price(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("price(%s) = %q, %v; want an error with %q", tt.in, got, err, tt.wantErr)
		}
	}
	if _, err := price(nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("price(nil) = %v, want missing", err)
	}
}

func TestInteger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"7.0790813e+07", 70790813, true},
		{"1796101200000", 1796101200000, true},
		{"12.000", 12, true},
		{"1200e-2", 12, true},
		{"-5", -5, true},
		{"0e999", 0, false},
		{"12.5", 0, false},
		{"1e400", 0, false},
		{"9223372036854775808", 0, false},
		{"true", 0, false},
	}
	for _, tt := range tests {
		got, err := integer(json.RawMessage(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("integer(%s) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestBarDay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ms   int64
		want time.Time
	}{
		{1796101200000, dec1}, // Polygon: midnight New York in winter, 05:00 UTC
		{time.Date(2026, 7, 1, 4, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)}, // summer, 04:00 UTC
		{dec1.UnixMilli(), dec1}, // a provider writing midnight UTC
	}
	for _, tt := range tests {
		if got := barDay(tt.ms); !got.Equal(tt.want) {
			t.Errorf("barDay(%d) = %v, want %v", tt.ms, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"2", 2 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http1123), 90 * time.Second},
		{now.Add(-time.Minute).Format(http1123), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

// FuzzDecode: no input panics the decoder, and whatever it accepts as a bar holds what the
// connector promises: a day in range, prices as valid decimal text, a volume not negative.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(polygonPage))
	f.Add([]byte(`{"status":"OK","results":[{"o":1e400,"h":-1,"l":"x","c":null,"v":-3,"t":1.5}]}`))
	f.Add([]byte(`{"status":"OK","results":[[1,2,3],{},null,{"t":1796101200000}]}`))
	f.Add([]byte(polygonPage[:200]))
	f.Add([]byte(`{"results":null,"status":"ERROR","error":"Unknown API Key"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := &pageDecoder{symbol: "AAPL", from: dec1, to: dec8}
		p, err := d.decode(strings.NewReader(string(body)))
		if err != nil {
			return
		}
		for _, b := range p.bars {
			if b.Time.Before(dec1) || !b.Time.Before(dec8) || b.Volume < 0 {
				t.Errorf("bar out of bounds: %+v", b)
			}
			for _, v := range []string{b.Open, b.High, b.Low, b.Close} {
				if _, err := price(json.RawMessage(v)); err != nil {
					t.Errorf("bar with a bad price %q: %+v", v, b)
				}
			}
		}
		for _, r := range p.rejects {
			if r.Ref == "" || r.Reason == "" || len(r.Raw) > 304 {
				t.Errorf("reject without ref or reason, or raw too long: %+v", r)
			}
		}
	})
}
