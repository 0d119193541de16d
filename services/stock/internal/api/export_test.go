package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/metricstest"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
)

// exportRow is a row of an export as the tests compare it: decimals as numeric(20, 6) text
// (six fraction digits), the recommendation's fields empty when none.
type exportRow struct {
	Symbol                 string
	Time                   time.Time
	Open, High, Low, Close string
	Volume                 int64
	RecAction, RecTarget   string
	RecConfidence          float64
	RecModel               string
	RecPredict             time.Time
}

// exportData arranges the export tests' data: AAA, BBB and CCC (Technology) with 7 bars
// each, EEE (Energy) with 7, ZZZ (Technology) with none; prices from the smallest to the
// largest numeric(20, 6) holds.
func exportData(t *testing.T, e env) {
	t.Helper()
	var stocks []*stockv1.Stock
	for _, s := range []struct{ sym, sector string }{{"AAA", "Technology"}, {"BBB", "Technology"}, {"CCC", "Technology"}, {"EEE", "Energy"}, {"ZZZ", "Technology"}} {
		stocks = append(stocks, &stockv1.Stock{Symbol: s.sym, Name: s.sym + " Inc", Sector: s.sector, Currency: "USD"})
	}
	e.upsert(t, stocks...)
	prices := []string{"0.000001", "10", "12.5", "99999999999999.999999", "1234.567891", "7.000100", "42"}
	var bars []*stockv1.Price
	for _, sym := range []string{"AAA", "BBB", "CCC", "EEE"} {
		for d, p := range prices {
			bars = append(bars, &stockv1.Price{Symbol: sym, Time: timestamppb.New(day0.AddDate(0, 0, d)),
				Open: p, High: p, Low: p, Close: p, Volume: int64(1000*d + len(sym))})
		}
	}
	if _, err := e.ingest(t, bars, 1000); err != nil {
		t.Fatal(err)
	}
}

// pgxRows reads with pgx the bars an export of symbols in [start, end) must hold.
func pgxRows(t *testing.T, pool *pgxpool.Pool, symbols []string, start, end time.Time) []exportRow {
	t.Helper()
	rows, _ := pool.Query(t.Context(), `
		SELECT symbol, ts, open::text, high::text, low::text, close::text, volume
		FROM stock.prices WHERE symbol = ANY($1) AND ts >= $2 AND ts < $3 ORDER BY symbol, ts`, symbols, start, end)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (exportRow, error) {
		var x exportRow
		err := r.Scan(&x.Symbol, &x.Time, &x.Open, &x.High, &x.Low, &x.Close, &x.Volume)
		x.Time = x.Time.UTC()
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// export runs req to its end and returns its messages.
func export(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest) ([]*stockv1.ExportPricesResponse, error) {
	t.Helper()
	stream, err := client.ExportPrices(t.Context(), req)
	if err != nil {
		return nil, err
	}
	var msgs []*stockv1.ExportPricesResponse
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, msg)
	}
}

func mustExport(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest) []*stockv1.ExportPricesResponse {
	t.Helper()
	msgs, err := export(t, client, req)
	if err != nil {
		t.Fatalf("ExportPrices(%v): %v", req, err)
	}
	return msgs
}

// cutAfter reads req's messages 0 to k, then cancels the call, and returns message k's token.
func cutAfter(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest, k int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := client.ExportPrices(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var msg *stockv1.ExportPricesResponse
	for range k + 1 {
		if msg, err = stream.Recv(); err != nil {
			t.Fatalf("message before the cut: %v", err)
		}
	}
	if msg.GetResumeToken() == "" {
		t.Fatalf("message %d has no resume_token", k)
	}
	return msg.GetResumeToken()
}

// protoRows are the rows of a protobuf export, decimals padded to six fraction digits.
func protoRows(t *testing.T, msgs []*stockv1.ExportPricesResponse) []exportRow {
	t.Helper()
	var out []exportRow
	for _, m := range msgs {
		for _, r := range m.GetRows() {
			x := exportRow{Symbol: r.GetSymbol(), Time: r.GetTime().AsTime(), Open: pad6(r.GetOpen()), High: pad6(r.GetHigh()),
				Low: pad6(r.GetLow()), Close: pad6(r.GetClose()), Volume: r.GetVolume()}
			if rec := r.GetRecommendation(); rec != nil {
				x.RecAction, x.RecTarget, x.RecConfidence, x.RecModel = rec.GetAction().String(), rec.GetTargetPrice(), rec.GetConfidence(), rec.GetModelVersion()
				if x.RecTarget != "" {
					x.RecTarget = pad6(x.RecTarget)
				}
				x.RecPredict = rec.GetPredictTime().AsTime()
			}
			out = append(out, x)
		}
	}
	return out
}

// pad6 writes a trimmed decimal with six fraction digits, as numeric(20, 6) prints it.
func pad6(s string) string {
	whole, frac, _ := cutDot(s)
	return whole + "." + frac + "000000"[len(frac):]
}

func cutDot(s string) (string, string, bool) {
	if i := bytes.IndexByte([]byte(s), '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// arrowRows decodes the concatenated arrow_ipc of an export with arrow-go's stream reader,
// and returns its rows and each record batch's resume token (custom metadata).
func arrowRows(t *testing.T, msgs []*stockv1.ExportPricesResponse) ([]exportRow, []string) {
	t.Helper()
	var stream bytes.Buffer
	for _, m := range msgs {
		stream.Write(m.GetArrowIpc())
	}
	r, err := ipc.NewReader(&stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var out []exportRow
	var tokens []string
	for r.Next() {
		rec := r.RecordBatch()
		if rm, ok := rec.(arrow.RecordBatchWithMetadata); ok {
			md := rm.Metadata()
			tok := ""
			if i := md.FindKey(api.ArrowResumeTokenKey); i >= 0 {
				tok = md.Values()[i]
			}
			tokens = append(tokens, tok)
		}
		cols := rec.Columns()
		dec := func(c int, i int) string {
			return cols[c].(*array.Decimal128).Value(i).ToString(6)
		}
		for i := range int(rec.NumRows()) {
			x := exportRow{
				Symbol: cols[0].(*array.String).Value(i),
				Time:   cols[1].(*array.Timestamp).Value(i).ToTime(arrow.Microsecond).UTC(),
				Open:   dec(2, i), High: dec(3, i), Low: dec(4, i), Close: dec(5, i),
				Volume: cols[6].(*array.Int64).Value(i),
			}
			if len(cols) > 7 && cols[7].IsValid(i) {
				x.RecAction = cols[7].(*array.String).Value(i)
				if cols[8].IsValid(i) {
					x.RecTarget = dec(8, i)
				}
				x.RecConfidence = cols[9].(*array.Float64).Value(i)
				x.RecModel = cols[10].(*array.String).Value(i)
				x.RecPredict = cols[11].(*array.Timestamp).Value(i).ToTime(arrow.Microsecond).UTC()
			}
			out = append(out, x)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("arrow stream: %v", err)
	}
	return out, tokens
}

var (
	protoFormat = stockv1.ExportFormat_EXPORT_FORMAT_PROTO
	arrowFormat = stockv1.ExportFormat_EXPORT_FORMAT_ARROW
)

// TestExportPrices_values: both formats hold exactly the rows a pgx read of the universe
// and range gives, in (symbol, time) order, in batches of one symbol each.
func TestExportPrices_values(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exportData(t, e)
	start, end := day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 6)
	want := pgxRows(t, e.pool, []string{"AAA", "BBB", "CCC"}, start, end)
	if len(want) != 15 {
		t.Fatalf("arranged %d rows, want 15", len(want))
	}
	for _, f := range []stockv1.ExportFormat{protoFormat, arrowFormat} {
		for _, size := range []int32{0, 2, 5} {
			t.Run(fmt.Sprintf("%s/batch_%d", f, size), func(t *testing.T) {
				t.Parallel()
				req := &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, StartTime: timestamppb.New(start),
					EndTime: timestamppb.New(end), Format: f, BatchSize: size}
				msgs := mustExport(t, e.client, req)
				var got []exportRow
				if f == arrowFormat {
					var tokens []string
					got, tokens = arrowRows(t, msgs)
					for i, tok := range tokens {
						if last := i == len(tokens)-1; (tok == "") != last || tok != msgs[i+1].GetResumeToken() {
							t.Errorf("batch %d's metadata token = %q, want the message's (%q)", i, tok, msgs[i+1].GetResumeToken())
						}
					}
				} else {
					got = protoRows(t, msgs)
					for i, m := range msgs {
						if syms := rowSymbols(m); len(syms) != 1 {
							t.Errorf("message %d holds symbols %v, want one", i, syms)
						}
						if n := len(m.GetRows()); size > 0 && n > int(size) {
							t.Errorf("message %d holds %d rows, batch_size %d", i, n, size)
						}
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("rows mismatch (-pgx +export):\n%s", diff)
				}
				for i, m := range msgs {
					if last := i == len(msgs)-1; (m.GetResumeToken() == "") != last {
						t.Errorf("message %d of %d: resume_token %q (only the last has none)", i, len(msgs), m.GetResumeToken())
					}
				}
			})
		}
	}
	t.Run("no stock matches: one empty last message", func(t *testing.T) {
		t.Parallel()
		for _, f := range []stockv1.ExportFormat{protoFormat, arrowFormat} {
			msgs := mustExport(t, e.client, &stockv1.ExportPricesRequest{Filter: `sector = "Nothing"`, Format: f})
			if len(msgs) != 1 || msgs[0].GetResumeToken() != "" || len(msgs[0].GetRows()) != 0 {
				t.Fatalf("%s: messages = %v, want one empty message without a token", f, msgs)
			}
			if f == arrowFormat {
				if rows, _ := arrowRows(t, msgs); len(rows) != 0 {
					t.Errorf("arrow rows = %v, want none", rows)
				}
			}
		}
	})
	t.Run("matching stocks without bars in range", func(t *testing.T) {
		t.Parallel()
		msgs := mustExport(t, e.client, &stockv1.ExportPricesRequest{Filter: `symbol = "ZZZ"`, Format: arrowFormat})
		if rows, _ := arrowRows(t, msgs); len(msgs) != 1 || len(rows) != 0 {
			t.Fatalf("messages = %d, rows %v; want one message (schema and end of stream), no rows", len(msgs), rows)
		}
	})
}

func rowSymbols(m *stockv1.ExportPricesResponse) []string {
	var syms []string
	for _, r := range m.GetRows() {
		if !slices.Contains(syms, r.GetSymbol()) {
			syms = append(syms, r.GetSymbol())
		}
	}
	return syms
}

// marshal encodes msgs deterministically, for byte comparisons.
func marshal(t *testing.T, msgs []*stockv1.ExportPricesResponse) [][]byte {
	t.Helper()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// normalize returns msgs with the snapshot each token names set to one value: two exports
// read two snapshots, so their tokens differ there and only there. A token's position stays.
// In Arrow bytes the token, in a record batch's metadata, is replaced by the normalized one
// (of the same length: snapshot ids have a fixed width here).
func normalize(t *testing.T, msgs []*stockv1.ExportPricesResponse) []*stockv1.ExportPricesResponse {
	t.Helper()
	out := make([]*stockv1.ExportPricesResponse, len(msgs))
	for i, m := range msgs {
		m = proto.CloneOf(m)
		if tok := m.GetResumeToken(); tok != "" {
			b, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatal(err)
			}
			fields["snap"] = "00000000-00000000-0"
			if b, err = json.Marshal(fields); err != nil {
				t.Fatal(err)
			}
			norm := base64.RawURLEncoding.EncodeToString(b)
			if len(norm) != len(tok) {
				t.Fatalf("token %s: normalized to another length", tok)
			}
			m.ResumeToken = norm
			m.ArrowIpc = bytes.ReplaceAll(m.GetArrowIpc(), []byte(tok), []byte(norm))
		}
		out[i] = m
	}
	return out
}

// wantResumed fails unless resumed, the messages of a resume after message k, equal the
// uncut export's messages after k byte for byte (Arrow: after the schema message it
// starts with again).
func wantResumed(t *testing.T, f stockv1.ExportFormat, uncut, resumed []*stockv1.ExportPricesResponse, k int) {
	t.Helper()
	if f == arrowFormat {
		if len(resumed) == 0 || !bytes.Equal(resumed[0].GetArrowIpc(), uncut[0].GetArrowIpc()) {
			t.Fatalf("resumed Arrow export does not start with the schema message")
		}
		resumed = resumed[1:]
	}
	if diff := cmp.Diff(marshal(t, normalize(t, uncut[k+1:])), marshal(t, normalize(t, resumed))); diff != "" {
		t.Errorf("resume after message %d of %d: mismatch (-uncut +resumed):\n%s", k, len(uncut), diff)
	}
}

// TestExportPrices_resume: an export cut after message k and resumed with its token equals
// the uncut export byte for byte, for k from the first message to the last with a token, on
// the same process and on another one on the same database; and the resume reads the
// snapshot of the cut export, not the rows written since.
func TestExportPrices_resume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exportData(t, e)
	other := newEnvWith(t, map[string]string{"DATABASE_URL": e.pool.Config().ConnString()})
	for _, f := range []stockv1.ExportFormat{protoFormat, arrowFormat} {
		for _, rec := range []string{"", "model"} {
			req := &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, Format: f, BatchSize: 3, RecommendationSource: rec}
			uncut := mustExport(t, e.client, req)
			n := len(uncut)
			for _, k := range []int{0, 1, n / 2, n - 2} {
				for _, where := range []struct {
					name   string
					client stockv1.StockServiceClient
				}{{"same process", e.client}, {"other process", other.client}} {
					t.Run(fmt.Sprintf("%s/rec_%q/after_%d_of_%d/%s", f, rec, k, n, where.name), func(t *testing.T) {
						token := cutAfter(t, e.client, req, k)
						resumed := proto.CloneOf(req)
						resumed.ResumeToken = token
						wantResumed(t, f, uncut, mustExport(t, where.client, resumed), k)
					})
				}
			}
		}
	}
	t.Run("writes between the cut and the resume are not seen", func(t *testing.T) {
		req := &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, BatchSize: 2}
		before := pgxRows(t, e.pool, []string{"AAA", "BBB", "CCC"}, day0.AddDate(-1, 0, 0), day0.AddDate(1, 0, 0))
		token := cutAfter(t, e.client, req, 2)
		changeBars(t, e)
		resumed := proto.CloneOf(req)
		resumed.ResumeToken = token
		got := protoRows(t, mustExport(t, e.client, resumed))
		// Message 2 ends after the sixth row: AAA's bars 0-5.
		if diff := cmp.Diff(before[6:], got); diff != "" {
			t.Errorf("resumed rows mismatch (-before the writes +resumed):\n%s", diff)
		}
	})
}

// changeBars changes every bar of AAA, BBB and CCC and adds later ones (IngestPrices'
// merge path), and adds a Technology stock with bars.
func changeBars(t *testing.T, e env) {
	t.Helper()
	e.upsert(t, &stockv1.Stock{Symbol: "AAB", Name: "New", Sector: "Technology", Currency: "USD"})
	var bars []*stockv1.Price
	for _, sym := range []string{"AAA", "AAB", "BBB", "CCC"} {
		for d := range 9 {
			bars = append(bars, &stockv1.Price{Symbol: sym, Time: timestamppb.New(day0.AddDate(0, 0, d)),
				Open: "555", High: "555", Low: "555", Close: "555", Volume: 5})
		}
	}
	if _, err := e.ingest(t, bars, 1000); err != nil {
		t.Fatal(err)
	}
}

// TestExportPrices_snapshot: an export started before an ingest that changes and adds bars
// (and a stock to the universe) while the export runs holds the rows as they were before the
// ingest, every one of them, none of the writes.
func TestExportPrices_snapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exportData(t, e)
	before := pgxRows(t, e.pool, []string{"AAA", "BBB", "CCC"}, day0.AddDate(-1, 0, 0), day0.AddDate(1, 0, 0))
	for _, f := range []stockv1.ExportFormat{protoFormat, arrowFormat} {
		t.Run(f.String(), func(t *testing.T) {
			stream, err := e.client.ExportPrices(t.Context(), &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, BatchSize: 1, Format: f})
			if err != nil {
				t.Fatal(err)
			}
			first, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			// The workers have read a few batches ahead at most (bounded queues): the rest
			// is read after these writes commit.
			changeBars(t, e)
			msgs := []*stockv1.ExportPricesResponse{first}
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, m)
			}
			got := protoRows(t, msgs)
			if f == arrowFormat {
				got, _ = arrowRows(t, msgs)
			}
			if diff := cmp.Diff(before, got); diff != "" {
				t.Errorf("rows mismatch (-before the ingest +export):\n%s", diff)
			}
		})
		before = pgxRows(t, e.pool, []string{"AAA", "AAB", "BBB", "CCC"}, day0.AddDate(-1, 0, 0), day0.AddDate(1, 0, 0))
	}
}

// TestExportPrices_pointInTime: each row carries the latest prediction of the source with
// predict_time at or before the bar's time, never a later one: not one made after the bar,
// nor one recorded later with an earlier predict_time (until that time), nor another
// source's, nor another symbol's.
func TestExportPrices_pointInTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exportData(t, e)
	at := func(day int, hours int) *timestamppb.Timestamp {
		return timestamppb.New(day0.AddDate(0, 0, day).Add(time.Duration(hours) * time.Hour))
	}
	recs := func(rs ...*stockv1.Recommendation) {
		t.Helper()
		if _, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: rs}); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(sym, source string, a stockv1.Action, pt *timestamppb.Timestamp, version string) *stockv1.Recommendation {
		return &stockv1.Recommendation{Symbol: sym, Source: source, Action: a, TargetPrice: "12.5", Confidence: 0.75, ModelVersion: version, PredictTime: pt}
	}
	// Bars are at midnight of days 0-6. In the order they are recorded:
	recs(rec("AAA", "model", stockv1.Action_ACTION_BUY, at(1, 0), "v1"))  // exactly at bar 1
	recs(rec("AAA", "model", stockv1.Action_ACTION_SELL, at(3, 5), "v2"), // after bar 3, before bar 4
		rec("AAA", "other", stockv1.Action_ACTION_STRONG_BUY, at(0, 0), "x"), // another source
		rec("BBB", "model", stockv1.Action_ACTION_HOLD, at(0, -1), "b1"))     // before BBB's first bar
	recs(rec("AAA", "model", stockv1.Action_ACTION_STRONG_SELL, at(6, 1), "v3")) // after the last bar
	// Recorded last, but made before v2: it is the known prediction for bars 2 and 3.
	recs(rec("AAA", "model", stockv1.Action_ACTION_HOLD, at(2, -2), "v1b"))

	want := map[string][]string{ // per symbol, per day: the model version expected ("" none)
		"AAA": {"", "v1", "v1b", "v1b", "v2", "v2", "v2"},
		"BBB": {"b1", "b1", "b1", "b1", "b1", "b1", "b1"},
		"CCC": {"", "", "", "", "", "", ""},
	}
	wantPT := map[string]*timestamppb.Timestamp{"v1": at(1, 0), "v1b": at(2, -2), "v2": at(3, 5), "b1": at(0, -1)}
	wantAction := map[string]string{"v1": "ACTION_BUY", "v1b": "ACTION_HOLD", "v2": "ACTION_SELL", "b1": "ACTION_HOLD"}
	for _, f := range []stockv1.ExportFormat{protoFormat, arrowFormat} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			msgs := mustExport(t, e.client, &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, Format: f, BatchSize: 4, RecommendationSource: "model"})
			got := protoRows(t, msgs)
			if f == arrowFormat {
				got, _ = arrowRows(t, msgs)
			}
			if len(got) != 21 {
				t.Fatalf("rows = %d, want 21", len(got))
			}
			for _, r := range got {
				day := int(r.Time.Sub(day0) / (24 * time.Hour))
				v := want[r.Symbol][day]
				if r.RecModel != v {
					t.Errorf("%s day %d: model_version %q, want %q", r.Symbol, day, r.RecModel, v)
					continue
				}
				if v == "" {
					if r.RecAction != "" || !r.RecPredict.IsZero() {
						t.Errorf("%s day %d: a recommendation %+v, want none", r.Symbol, day, r)
					}
					continue
				}
				if r.RecPredict.After(r.Time) {
					t.Errorf("%s day %d: look-ahead: predict_time %v after the bar", r.Symbol, day, r.RecPredict)
				}
				if !r.RecPredict.Equal(wantPT[v].AsTime()) || r.RecAction != wantAction[v] || r.RecTarget != "12.500000" || r.RecConfidence != 0.75 {
					t.Errorf("%s day %d: recommendation %+v, want %s at %v", r.Symbol, day, r, wantAction[v], wantPT[v].AsTime())
				}
			}
		})
	}
}

// TestExportPrices_tokens: a token of another request or not a token at all is
// INVALID_ARGUMENT (EXPORT_TOKEN_INVALID); one whose snapshot is gone, after
// EXPORT_RESUME_WINDOW or let go to keep EXPORT_MAX_HELD, is FAILED_PRECONDITION
// (EXPORT_SNAPSHOT_EXPIRED).
func TestExportPrices_tokens(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, map[string]string{"EXPORT_MAX_HELD": "1", "EXPORT_RESUME_WINDOW": "1h"})
	exportData(t, e)
	req := &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, BatchSize: 2}
	resume := func(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest, token string) error {
		t.Helper()
		r := proto.CloneOf(req)
		r.ResumeToken = token
		_, err := export(t, client, r)
		return err
	}
	t.Run("another request's token", func(t *testing.T) {
		token := cutAfter(t, e.client, req, 1)
		for _, change := range []func(r *stockv1.ExportPricesRequest){
			func(r *stockv1.ExportPricesRequest) { r.Filter = `sector = "Energy"` },
			func(r *stockv1.ExportPricesRequest) { r.BatchSize = 3 },
			func(r *stockv1.ExportPricesRequest) { r.Format = arrowFormat },
			func(r *stockv1.ExportPricesRequest) { r.RecommendationSource = "model" },
			func(r *stockv1.ExportPricesRequest) { r.EndTime = timestamppb.New(day0.AddDate(0, 0, 3)) },
		} {
			other := proto.CloneOf(req)
			change(other)
			err := resume(t, e.client, other, token)
			apptest.WantCode(t, err, codes.InvalidArgument)
			apptest.WantReason(t, err, apierr.ExportTokenInvalid, nil)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, token := range []string{"garbage", "eyJ2IjoxfQ", "e30"} {
			err := resume(t, e.client, req, token)
			apptest.WantCode(t, err, codes.InvalidArgument)
			apptest.WantReason(t, err, apierr.ExportTokenInvalid, nil)
		}
	})
	t.Run("let go past EXPORT_MAX_HELD, the oldest first", func(t *testing.T) {
		first := cutAfter(t, e.client, req, 1)
		eventually(t, func() bool { return slices.Equal(e.srv.HeldExports(), []string{tokenSnapshot(t, first)}) })
		second := cutAfter(t, e.client, req, 2)
		eventually(t, func() bool { return slices.Equal(e.srv.HeldExports(), []string{tokenSnapshot(t, second)}) })
		err := resume(t, e.client, req, first)
		apptest.WantCode(t, err, codes.FailedPrecondition)
		apptest.WantReason(t, err, apierr.ExportSnapshotExpired, nil)
		if err := resume(t, e.client, req, second); err != nil {
			t.Errorf("resume of the snapshot held: %v", err)
		}
	})
	t.Run("EXPORT_RESUME_WINDOW passed", func(t *testing.T) {
		short := newEnvWith(t, map[string]string{"DATABASE_URL": e.pool.Config().ConnString(), "EXPORT_RESUME_WINDOW": "1ms"})
		token := cutAfter(t, short.client, req, 1)
		// The window's end closes the transaction that exported the snapshot: wait until
		// PostgreSQL refuses to import it.
		snap := tokenSnapshot(t, token)
		eventually(t, func() bool {
			tx, err := e.pool.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(t.Context()) //nolint:errcheck // read only
			_, err = tx.Exec(t.Context(), "SET TRANSACTION SNAPSHOT '"+snap+"'")
			return err != nil
		})
		err := resume(t, short.client, req, token)
		apptest.WantCode(t, err, codes.FailedPrecondition)
		apptest.WantReason(t, err, apierr.ExportSnapshotExpired, nil)
	})
}

// tokenSnapshot returns the snapshot id a resume token names (its JSON, base64url).
func tokenSnapshot(t *testing.T, token string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Snap string `json:"snap"`
	}
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	return tok.Snap
}

// eventually waits until cond holds, asking again every millisecond, or fails when the
// test's context ends.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		case <-time.After(time.Millisecond):
		}
	}
}

// TestExportPrices_badInput: every bad field is INVALID_ARGUMENT with a violation on it,
// before any snapshot is taken.
func TestExportPrices_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ts := func(d int) *timestamppb.Timestamp { return timestamppb.New(day0.AddDate(0, 0, d)) }
	tests := []struct {
		name  string
		req   *stockv1.ExportPricesRequest
		field string
	}{
		{"filter syntax", &stockv1.ExportPricesRequest{Filter: `sector = `}, "filter"},
		{"unknown filter field", &stockv1.ExportPricesRequest{Filter: `color = "red"`}, "filter"},
		{"end before start", &stockv1.ExportPricesRequest{StartTime: ts(2), EndTime: ts(1)}, "end_time"},
		{"end at start", &stockv1.ExportPricesRequest{StartTime: ts(2), EndTime: ts(2)}, "end_time"},
		{"invalid start", &stockv1.ExportPricesRequest{StartTime: &timestamppb.Timestamp{Seconds: -1 << 62}}, "start_time"},
		{"negative batch_size", &stockv1.ExportPricesRequest{BatchSize: -1}, "batch_size"},
		{"batch_size too large", &stockv1.ExportPricesRequest{BatchSize: 100001}, "batch_size"},
		{"unknown format", &stockv1.ExportPricesRequest{Format: 7}, "format"},
		{"recommendation_source too long", &stockv1.ExportPricesRequest{RecommendationSource: strings.Repeat("s", 201)}, "recommendation_source"},
		{"recommendation_source with NUL", &stockv1.ExportPricesRequest{RecommendationSource: "a\x00b"}, "recommendation_source"},
		{"resume_token too long", &stockv1.ExportPricesRequest{ResumeToken: strings.Repeat("A", 2000)}, "resume_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := export(t, e.client, tt.req)
			wantFieldViolation(t, err, tt.field)
		})
	}
}

// FuzzExportPrices sends fuzzed filters, sources, tokens and sizes through the real server.
func FuzzExportPrices(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	for _, s := range append(fuzzStrings, `sector = "Technology"`, "eyJ2IjoxfQ") {
		f.Add(s, s, s, int32(0), int32(0))
	}
	for _, n := range []int32{-1, 1, 100000, 100001, 1<<31 - 1} {
		f.Add("", "", "", n, n)
	}
	f.Fuzz(func(t *testing.T, filter, source, token string, size, format int32) {
		stream, err := e.client.ExportPrices(t.Context(), &stockv1.ExportPricesRequest{Filter: filter, RecommendationSource: source,
			ResumeToken: token, BatchSize: size, Format: stockv1.ExportFormat(format)}, fuzzRaw)
		for err == nil {
			_, err = stream.Recv()
		}
		if !errors.Is(err, io.EOF) {
			wantGoodAnswer(t, "ExportPrices", err)
		}
	})
}

// TestExportPrices_metrics: rows and bytes sent are counted by format, and the snapshots held
// for resumes (a complete export's too) are a gauge.
func TestExportPrices_metrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exportData(t, e)
	msgs := mustExport(t, e.client, &stockv1.ExportPricesRequest{Filter: `sector = "Technology"`, BatchSize: 5})
	size := 0
	for _, m := range msgs {
		size += proto.Size(m)
	}
	arrow := mustExport(t, e.client, &stockv1.ExportPricesRequest{Filter: `symbol = "EEE"`, Format: arrowFormat})
	arrowSize := 0
	for _, m := range arrow {
		arrowSize += len(m.GetArrowIpc())
	}
	eventually(t, func() bool { return len(e.srv.HeldExports()) == 2 })
	body := metricstest.Scrape(t, metricstest.Serve(t, e.reg))
	metricstest.WantLine(t, body, `pgfleet_export_rows_total{format="proto"} 21`)
	metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_export_bytes_total{format="proto"} %d`, size))
	metricstest.WantLine(t, body, `pgfleet_export_rows_total{format="arrow"} 7`)
	metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_export_bytes_total{format="arrow"} %d`, arrowSize))
	metricstest.WantLine(t, body, `pgfleet_export_snapshots_held 2`)
}
