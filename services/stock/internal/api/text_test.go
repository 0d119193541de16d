package api_test

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// TestText_refused: text with a NUL byte (which PostgreSQL refuses in text: SQLSTATE 22021,
// an INTERNAL error) or another control character is INVALID_ARGUMENT with a violation on
// its field, and writes nothing; a rationale may span lines.
func TestText_refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "AAPL", Name: "Apple Inc."})
	stock := func(edit func(*stockv1.Stock)) func() error {
		return func() error {
			s := &stockv1.Stock{Symbol: "ZZZ", Name: "Z Corp."}
			edit(s)
			_, err := e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{s}})
			return err
		}
	}
	rec := func(edit func(*stockv1.Recommendation)) func() error {
		return func() error {
			r := &stockv1.Recommendation{Symbol: "AAPL", Source: "desk", Action: stockv1.Action_ACTION_BUY}
			edit(r)
			_, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{r}})
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"name_nul", stock(func(s *stockv1.Stock) { s.Name = "a\x00b" }), "stocks[0].name"},
		{"sector_nul", stock(func(s *stockv1.Stock) { s.Sector = "\x00" }), "stocks[0].sector"},
		{"industry_escape", stock(func(s *stockv1.Stock) { s.Industry = "\x1b[31mred" }), "stocks[0].industry"},
		{"exchange_newline", stock(func(s *stockv1.Stock) { s.Exchange = "NYSE\n" }), "stocks[0].exchange"},
		{"source_nul", rec(func(r *stockv1.Recommendation) { r.Source = "a\x00" }), "recommendations[0].source"},
		{"source_del", rec(func(r *stockv1.Recommendation) { r.Source = "a\x7f" }), "recommendations[0].source"},
		{"rationale_nul", rec(func(r *stockv1.Recommendation) { r.Rationale = "Strong\x00 demand" }), "recommendations[0].rationale"},
		{"rationale_control", rec(func(r *stockv1.Recommendation) { r.Rationale = "\x01" }), "recommendations[0].rationale"},
		{"model_version_nul", rec(func(r *stockv1.Recommendation) { r.ModelVersion = "1.0\x00" }), "recommendations[0].model_version"},
		{"model_version_newline", rec(func(r *stockv1.Recommendation) { r.ModelVersion = "1.0\n2" }), "recommendations[0].model_version"},
		{"schedule_nul", func() error {
			_, err := e.client.CreateIngestionJob(t.Context(), &stockv1.CreateIngestionJobRequest{Job: &stockv1.IngestionJob{
				JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_FILES, Schedule: "@daily\x00"}})
			return err
		}, "job.schedule"},
		{"run_request_id_nul", func() error {
			_, err := e.client.RunIngestionJob(t.Context(), &stockv1.RunIngestionJobRequest{JobId: "j", RequestId: "a\x00"})
			return err
		}, "request_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFieldViolation(t, tt.call(), tt.field)
		})
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM stock.stocks) + (SELECT count(*) FROM stock.recommendations)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("stocks and recommendations = %d, want only AAPL", n)
	}
	if err := rec(func(r *stockv1.Recommendation) { r.Rationale = "Strong demand.\n\tMargins up." })(); err != nil {
		t.Errorf("a rationale of two lines: %v", err)
	}
}

// wantFieldViolation fails unless err is INVALID_ARGUMENT with a BadRequest violation on
// field.
func wantFieldViolation(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want code InvalidArgument", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Fatalf("error = %v, want a violation on %q", err, field)
}
