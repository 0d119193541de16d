package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// day is 2026-01-01 plus d days, midnight UTC.
func day(d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2026, 1, 1+d, 0, 0, 0, 0, time.UTC))
}

// prediction is a model's recommendation of symbol made on day d.
func prediction(symbol, source, version string, d int, action stockv1.Action, conf float64) *stockv1.Recommendation {
	return &stockv1.Recommendation{Symbol: symbol, Source: source, ModelVersion: version, PredictTime: day(d),
		Action: action, Confidence: conf, TargetPrice: fmt.Sprint(100 + d), Rationale: fmt.Sprintf("day %d", d)}
}

// past is the history row a prediction appends.
func past(r *stockv1.Recommendation) *stockv1.PastRecommendation {
	return &stockv1.PastRecommendation{Symbol: r.GetSymbol(), Source: r.GetSource(), ModelVersion: r.GetModelVersion(),
		Action: r.GetAction(), TargetPrice: r.GetTargetPrice(), Confidence: r.GetConfidence(), Rationale: r.GetRationale(),
		PredictTime: r.GetPredictTime()}
}

func (e env) upsertRecs(t *testing.T, recs ...*stockv1.Recommendation) *stockv1.UpsertRecommendationsResponse {
	t.Helper()
	resp, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: recs})
	if err != nil {
		t.Fatalf("UpsertRecommendations: %v", err)
	}
	return resp
}

// allHistory reads every page of a history request.
func allHistory(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ListRecommendationHistoryRequest) []*stockv1.PastRecommendation {
	t.Helper()
	return allPages(t, func(token string) ([]*stockv1.PastRecommendation, string, error) {
		req.PageToken = token
		resp, err := client.ListRecommendationHistory(t.Context(), req)
		return resp.GetRecommendations(), resp.GetNextPageToken(), err
	})
}

func historyCount(t *testing.T, e env) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM stock.recommendation_history`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var ignoreTimes = cmp.Options{protocmp.Transform(),
	protocmp.IgnoreFields(&stockv1.PastRecommendation{}, "record_time"),
	protocmp.IgnoreFields(&stockv1.Recommendation{}, "create_time", "update_time")}

// TestRecommendationHistory_keepsEveryPrediction: three days of a model's predictions of S000
// are all in the history, newest first, while ListRecommendations shows the latest per
// (symbol, source) only; a late prediction (older than the current one) goes to history only.
func TestRecommendationHistory_keepsEveryPrediction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2)
	buy, sell, hold := stockv1.Action_ACTION_BUY, stockv1.Action_ACTION_SELL, stockv1.Action_ACTION_HOLD
	d0 := []*stockv1.Recommendation{prediction("S000", "lgbm", "2026.1.0", 0, buy, 0.6), prediction("S001", "lgbm", "2026.1.0", 0, sell, 0.7)}
	d1 := []*stockv1.Recommendation{prediction("S000", "lgbm", "2026.1.1", 1, hold, 0.5)}
	d2 := []*stockv1.Recommendation{prediction("S000", "lgbm", "2026.1.1", 2, sell, 0.9), prediction("S000", "analyst", "", 2, buy, 0.4)}
	for _, recs := range [][]*stockv1.Recommendation{d0, d1, d2} {
		e.upsertRecs(t, recs...)
	}
	// A prediction of day 1 for S001 arrives after day 2's: history gains it, the current
	// view keeps day 0's (newer).
	late := prediction("S001", "lgbm", "2026.1.1", -1, buy, 0.1)
	if resp := e.upsertRecs(t, late); resp.GetInsertedCount()+resp.GetUpdatedCount() != 0 {
		t.Errorf("late prediction changed the current view: %v", resp)
	}

	got := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{PageSize: 2})
	want := []*stockv1.PastRecommendation{past(d2[0]), past(d2[1]), past(d1[0]), past(d0[1]), past(d0[0]), past(late)}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("history mismatch (-want +got):\n%s", diff)
	}
	for _, p := range got {
		if p.GetRecordTime() == nil || p.GetRecordTime().AsTime().Before(p.GetPredictTime().AsTime()) {
			t.Errorf("record_time %v before predict_time %v", p.GetRecordTime(), p.GetPredictTime())
		}
	}

	cur, err := e.client.ListRecommendations(t.Context(), &stockv1.ListRecommendationsRequest{})
	if err != nil {
		t.Fatalf("ListRecommendations: %v", err)
	}
	wantCur := []*stockv1.Recommendation{d2[1], d2[0], d0[1]} // symbol, source order
	if diff := cmp.Diff(wantCur, cur.GetRecommendations(), ignoreTimes); diff != "" {
		t.Errorf("current view mismatch (-want +got):\n%s", diff)
	}
}

// TestRecommendationHistory_retry: repeating an upsert, with or without predict_time, appends
// nothing and changes nothing; without predict_time a changed recommendation is appended at
// the write's time.
func TestRecommendationHistory_retry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)
	timed := prediction("S000", "lgbm", "v1", 0, stockv1.Action_ACTION_BUY, 0.5)
	untimed := &stockv1.Recommendation{Symbol: "S000", Source: "analyst", Action: stockv1.Action_ACTION_HOLD, Confidence: 0.3}
	e.upsertRecs(t, timed, untimed)
	if n := historyCount(t, e); n != 2 {
		t.Fatalf("history holds %d rows after the first upsert, want 2", n)
	}
	before := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{})
	for range 3 {
		if resp := e.upsertRecs(t, timed, untimed); resp.GetInsertedCount()+resp.GetUpdatedCount() != 0 {
			t.Errorf("repeat changed the current view: %v", resp)
		}
	}
	after := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{})
	if diff := cmp.Diff(before, after, protocmp.Transform()); diff != "" {
		t.Errorf("repeats changed the history (-before +after):\n%s", diff)
	}

	// The analyst changes advice without a predict_time: one new row, at the write's time.
	start := time.Now()
	untimed.Action = stockv1.Action_ACTION_SELL
	e.upsertRecs(t, untimed)
	got := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{Filter: `source = "analyst"`})
	if len(got) != 2 || got[0].GetAction() != stockv1.Action_ACTION_SELL || got[0].GetPredictTime().AsTime().Before(start.Add(-time.Minute)) {
		t.Errorf("analyst history = %v, want the SELL at the write's time, then the HOLD", got)
	}
}

// TestRecommendationHistory_failedUpsert: a batch with one unknown stock fails whole and
// appends no history row, for its good rows either.
func TestRecommendationHistory_failedUpsert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)
	_, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{
		prediction("S000", "lgbm", "v1", 0, stockv1.Action_ACTION_BUY, 0.5),
		prediction("NOPE", "lgbm", "v1", 0, stockv1.Action_ACTION_BUY, 0.5),
	}})
	apptest.WantCode(t, err, codes.InvalidArgument)
	if n := historyCount(t, e); n != 0 {
		t.Errorf("history holds %d rows after a failed upsert, want 0", n)
	}
}

// TestRecommendationHistory_filterOrderPaging: filters over each field, both orders, and pages
// of every size put together equal one page.
func TestRecommendationHistory_filterOrderPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 3)
	actions := []stockv1.Action{stockv1.Action_ACTION_BUY, stockv1.Action_ACTION_HOLD, stockv1.Action_ACTION_SELL}
	for d := range 6 {
		var recs []*stockv1.Recommendation
		for s := range 3 {
			for _, src := range []string{"lgbm", "arima"} {
				recs = append(recs, prediction(fmt.Sprintf("S%03d", s), src, fmt.Sprintf("v%d", d/3), d, actions[(d+s)%3], 0.5))
			}
		}
		e.upsertRecs(t, recs...)
	}
	whole, err := e.client.ListRecommendationHistory(t.Context(), &stockv1.ListRecommendationHistoryRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListRecommendationHistory: %v", err)
	}
	all := whole.GetRecommendations()
	if len(all) != 36 || whole.GetNextPageToken() != "" {
		t.Fatalf("got %d predictions, token %q; want 36, none", len(all), whole.GetNextPageToken())
	}
	// Default order: predict_time desc, then symbol desc, source desc.
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		at, bt := a.GetPredictTime().AsTime(), b.GetPredictTime().AsTime()
		if at.Before(bt) || (at.Equal(bt) && a.GetSymbol()+"/"+a.GetSource() < b.GetSymbol()+"/"+b.GetSource()) {
			t.Fatalf("rows %d and %d out of order: %v, %v", i-1, i, a, b)
		}
	}
	for _, size := range []int32{1, 5, 7, 36} {
		got := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{PageSize: size})
		if diff := cmp.Diff(all, got, protocmp.Transform()); diff != "" {
			t.Errorf("pages of %d differ from one page (-want +got):\n%s", size, diff)
		}
	}
	asc := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{OrderBy: "predict_time", PageSize: 4})
	for i := range asc {
		if !samePast(asc[i], all[len(all)-1-i]) {
			t.Fatalf("ascending row %d = %v, want %v", i, asc[i], all[len(all)-1-i])
		}
	}

	count := func(keep func(*stockv1.PastRecommendation) bool) int {
		n := 0
		for _, p := range all {
			if keep(p) {
				n++
			}
		}
		return n
	}
	for filter, keep := range map[string]func(*stockv1.PastRecommendation) bool{
		`symbol = "S001"`:                        func(p *stockv1.PastRecommendation) bool { return p.GetSymbol() == "S001" },
		`source = "arima"`:                       func(p *stockv1.PastRecommendation) bool { return p.GetSource() == "arima" },
		`model_version = "v1"`:                   func(p *stockv1.PastRecommendation) bool { return p.GetModelVersion() == "v1" },
		`action = ACTION_SELL`:                   func(p *stockv1.PastRecommendation) bool { return p.GetAction() == stockv1.Action_ACTION_SELL },
		`predict_time >= "2026-01-04T00:00:00Z"`: func(p *stockv1.PastRecommendation) bool { return !p.GetPredictTime().AsTime().Before(day(3).AsTime()) },
		`symbol = "S002" AND source = "lgbm" AND predict_time < "2026-01-03T00:00:00Z"`: func(p *stockv1.PastRecommendation) bool {
			return p.GetSymbol() == "S002" && p.GetSource() == "lgbm" && p.GetPredictTime().AsTime().Before(day(2).AsTime())
		},
	} {
		t.Run(filter, func(t *testing.T) {
			got := allHistory(t, e.client, &stockv1.ListRecommendationHistoryRequest{Filter: filter, PageSize: 3})
			if len(got) == 0 || len(got) != count(keep) {
				t.Errorf("%d rows, want %d", len(got), count(keep))
			}
			for _, p := range got {
				if !keep(p) {
					t.Errorf("row %v does not match", p)
				}
			}
		})
	}
}

func samePast(a, b *stockv1.PastRecommendation) bool {
	return cmp.Equal(a, b, protocmp.Transform())
}

// TestRecommendationHistory_badInput: INVALID_ARGUMENT for bad model versions and predict
// times on upsert, and for filters, orders and tokens the history does not take.
func TestRecommendationHistory_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)
	ok := func() *stockv1.Recommendation {
		return &stockv1.Recommendation{Symbol: "S000", Source: "lgbm", Action: stockv1.Action_ACTION_BUY, Confidence: 0.5}
	}
	for name, edit := range map[string]func(r *stockv1.Recommendation){
		"long model_version":         func(r *stockv1.Recommendation) { r.ModelVersion = strings.Repeat("v", 101) },
		"control in model_version":   func(r *stockv1.Recommendation) { r.ModelVersion = "v1\n" },
		"predict_time in the future": func(r *stockv1.Recommendation) { r.PredictTime = timestamppb.New(time.Now().Add(time.Hour)) },
		"predict_time before 1970": func(r *stockv1.Recommendation) {
			r.PredictTime = timestamppb.New(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))
		},
		"invalid predict_time": func(r *stockv1.Recommendation) { r.PredictTime = &timestamppb.Timestamp{Nanos: -1} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := ok()
			edit(r)
			_, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{r}})
			apptest.WantCode(t, err, codes.InvalidArgument)
		})
	}
	// At the limits: 100 bytes, 1970 itself, a minute ahead.
	r := ok()
	r.ModelVersion, r.PredictTime = strings.Repeat("v", 100), timestamppb.New(time.Unix(0, 0))
	r2 := ok()
	r2.Source, r2.PredictTime = "other", timestamppb.New(time.Now().Add(time.Minute))
	e.upsertRecs(t, r, r2)

	first, err := e.client.ListRecommendationHistory(t.Context(), &stockv1.ListRecommendationHistoryRequest{PageSize: 1})
	if err != nil {
		t.Fatalf("ListRecommendationHistory: %v", err)
	}
	for name, req := range map[string]*stockv1.ListRecommendationHistoryRequest{
		"unknown filter field":  {Filter: `confidence > 0.5`},
		"rationale filter":      {Filter: `rationale = "x"`},
		"bad action":            {Filter: `action = ACTION_MAYBE`},
		"bad time":              {Filter: `predict_time > "yesterday"`},
		"order by action":       {OrderBy: "action"},
		"order by record_time":  {OrderBy: "record_time desc"},
		"negative page size":    {PageSize: -1},
		"garbage token":         {PageToken: "nope"},
		"token of other filter": {Filter: `source = "lgbm"`, PageSize: 1, PageToken: first.GetNextPageToken()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := e.client.ListRecommendationHistory(t.Context(), req)
			apptest.WantCode(t, err, codes.InvalidArgument)
		})
	}
}
