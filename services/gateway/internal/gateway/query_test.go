package gateway

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	_ "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1" // registers the descriptors checkQuery reads
)

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	const listPrices = "/pgfleet.stock.v1.StockService/ListPrices"
	tests := []struct {
		name   string
		method string
		query  string
		want   []string // fields of the violations, in order; nil: accepted
	}{
		{"no_query", listPrices, "", nil},
		{"proto_names", listPrices, "page_size=2&page_token=x&start_time=2024-01-01T00:00:00Z", nil},
		{"json_names", listPrices, "pageSize=2&endTime=2024-01-01T00:00:00Z", nil},
		{"path_field_repeated", listPrices, "symbol=AAPL", nil},
		{"into_a_message", listPrices, "start_time.seconds=0", nil},
		{"misspelt", listPrices, "page_sise=2", []string{"page_sise"}},
		{"every_unknown_named", listPrices, "b=1&page_size=2&a=1", []string{"a", "b"}},
		{"past_a_scalar", listPrices, "page_size.x=1", []string{"page_size.x"}},
		{"no_such_subfield", listPrices, "start_time.minutes=1", []string{"start_time.minutes"}},
		{"map_syntax_on_unknown", listPrices, "tags[a]=b", []string{"tags[a]"}},
		{"stream", "/pgfleet.stock.v1.StockService/StreamPrices", "batch_size=5&batch_sise=5", []string{"batch_sise"}},
		{"query_free_request", "/pgfleet.stock.v1.StockService/GetStock", "verbose=1", []string{"verbose"}},
		{"unknown_method", "/no.Such/Method", "x=1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.WithValue(t.Context(), queryKey{}, tt.query)
			err := checkQuery(ctx, tt.method)
			if tt.want == nil {
				if err != nil {
					t.Errorf("checkQuery(%q, %s) = %v, want nil", tt.query, tt.method, err)
				}
				return
			}
			st := status.Convert(err)
			var got []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						got = append(got, v.GetField())
					}
				}
			}
			var reason string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reason = info.GetReason()
				}
			}
			if st.Code() != codes.InvalidArgument || reason != "MALFORMED_REQUEST" {
				t.Errorf("checkQuery(%q, %s) = %v, reason %q; want InvalidArgument, MALFORMED_REQUEST", tt.query, tt.method, st.Code(), reason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("checkQuery(%q, %s) violations mismatch (-want +got):\n%s", tt.query, tt.method, diff)
			}
		})
	}
}
