package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
)

// exportedRow is a row of an export as these tests compare it: decimals with six fraction
// digits, as numeric(20, 6) and Arrow's decimal128(20, 6) print them.
type exportedRow struct {
	Symbol string
	Time   time.Time
	Close  string
	Volume int64
}

// pad6 writes a trimmed decimal ("100.25") with six fraction digits.
func pad6(s string) string {
	whole, frac, _ := strings.Cut(s, ".")
	return whole + "." + frac + strings.Repeat("0", 6-len(frac))
}

// arrowDownload decodes an Arrow IPC stream with arrow-go's stream reader: its rows and each
// record batch's resume token (custom metadata "pgfleet.resume_token").
func arrowDownload(t *testing.T, body []byte) ([]exportedRow, []string) {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows []exportedRow
	var tokens []string
	for r.Next() {
		rec := r.RecordBatch()
		tok := ""
		if rm, ok := rec.(arrow.RecordBatchWithMetadata); ok {
			if i := rm.Metadata().FindKey("pgfleet.resume_token"); i >= 0 {
				tok = rm.Metadata().Values()[i]
			}
		}
		tokens = append(tokens, tok)
		cols := rec.Columns()
		for i := range int(rec.NumRows()) {
			rows = append(rows, exportedRow{
				Symbol: cols[0].(*array.String).Value(i),
				Time:   cols[1].(*array.Timestamp).Value(i).ToTime(arrow.Microsecond).UTC(),
				Close:  cols[5].(*array.Decimal128).Value(i).ToString(6),
				Volume: cols[6].(*array.Int64).Value(i),
			})
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("arrow stream: %v", err)
	}
	return rows, tokens
}

// testExportPrices downloads GET /v1/prices:export as an Arrow IPC stream and as NDJSON:
// both hold the rows of the gRPC export of the same request; an Arrow download resumed
// with a batch's token (from its metadata) holds the rows after that batch; bad input is a
// 400 with a JSON error before any byte of the stream.
func testExportPrices(t *testing.T, e *env) {
	end := time.Date(2018, 3, 1, 0, 0, 0, 0, time.UTC)
	filter := `symbol = "AAPL" OR symbol = "MSFT" OR symbol = "JPM"`
	sc := stockv1.NewStockServiceClient(apptest.Dial(t, e.fleet.stock.Addr, authtest.Admin(t)))
	stream, err := sc.ExportPrices(t.Context(), &stockv1.ExportPricesRequest{Filter: filter, EndTime: timestamppb.New(end), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var want []exportedRow
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range msg.GetRows() {
			want = append(want, exportedRow{r.GetSymbol(), r.GetTime().AsTime(), pad6(r.GetClose()), r.GetVolume()})
		}
	}
	if len(want) < 20 {
		t.Fatalf("gRPC export: %d rows, want the seed's AAPL, MSFT and JPM bars", len(want))
	}
	query := "?filter=" + url.QueryEscape(filter) + "&end_time=" + end.Format(time.RFC3339) + "&batch_size=10"

	t.Run("arrow", func(t *testing.T) {
		resp := e.gw.do(t, http.MethodGet, "/v1/prices:export"+query+"&format=EXPORT_FORMAT_ARROW", "")
		if resp.code != http.StatusOK || resp.header.Get("Content-Type") != "application/vnd.apache.arrow.stream" {
			t.Fatalf("GET arrow export = %d %q: %s", resp.code, resp.header.Get("Content-Type"), resp.body)
		}
		if eos := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}; !bytes.HasSuffix(resp.body, eos) {
			t.Errorf("download does not end with the end-of-stream marker")
		}
		got, tokens := arrowDownload(t, resp.body)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Arrow rows mismatch (-gRPC +REST):\n%s", diff)
		}
		for i, tok := range tokens {
			if (tok == "") != (i == len(tokens)-1) {
				t.Errorf("batch %d of %d: token %q (only the last has none)", i, len(tokens), tok)
			}
		}
		// Resume after the second batch (10 rows each, never across symbols).
		resumed := e.gw.do(t, http.MethodGet, "/v1/prices:export"+query+"&format=EXPORT_FORMAT_ARROW&resume_token="+url.QueryEscape(tokens[1]), "")
		if resumed.code != http.StatusOK {
			t.Fatalf("GET resumed arrow export = %d: %s", resumed.code, resumed.body)
		}
		rest, _ := arrowDownload(t, resumed.body)
		if diff := cmp.Diff(want[20:], rest); diff != "" {
			t.Errorf("resumed Arrow rows mismatch (-after batch 1 +resumed):\n%s", diff)
		}
	})
	t.Run("ndjson", func(t *testing.T) {
		resp := e.gw.do(t, http.MethodGet, "/v1/prices:export"+query, "")
		if resp.code != http.StatusOK || resp.header.Get("Content-Type") != ndjson {
			t.Fatalf("GET export = %d %q: %s", resp.code, resp.header.Get("Content-Type"), resp.body)
		}
		var got []exportedRow
		sc := bufio.NewScanner(bytes.NewReader(resp.body))
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var chunk struct {
				Result *struct {
					Rows []struct {
						Symbol string    `json:"symbol"`
						Time   time.Time `json:"time"`
						Close  string    `json:"close"`
						Volume string    `json:"volume"`
					} `json:"rows"`
					ResumeToken string `json:"resume_token"`
				} `json:"result"`
			}
			if err := json.Unmarshal(sc.Bytes(), &chunk); err != nil || chunk.Result == nil {
				t.Fatalf("line %s: %v, want a result", sc.Bytes(), err)
			}
			for _, r := range chunk.Result.Rows {
				v, err := strconv.ParseInt(r.Volume, 10, 64)
				if err != nil {
					t.Fatalf("volume %q: %v", r.Volume, err)
				}
				got = append(got, exportedRow{r.Symbol, r.Time.UTC(), pad6(r.Close), v})
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("NDJSON rows mismatch (-gRPC +REST):\n%s", diff)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"?batch_size=-1", "?format=EXPORT_FORMAT_ARROW&filter=" + url.QueryEscape("color = 1"),
			"?format=EXPORT_FORMAT_ARROW&resume_token=garbage", "?start_time=2018-02-01T00:00:00Z&end_time=2018-01-01T00:00:00Z"} {
			resp := e.gw.do(t, http.MethodGet, "/v1/prices:export"+q, "")
			if resp.code != http.StatusBadRequest || !strings.HasPrefix(resp.header.Get("Content-Type"), "application/json") {
				t.Errorf("GET /v1/prices:export%s = %d %q, want 400 JSON: %s", q, resp.code, resp.header.Get("Content-Type"), resp.body)
			}
		}
	})
}
