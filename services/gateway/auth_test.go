package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// newPortfolio registers email as a user through the gateway and opens a portfolio for it
// holding cash; it returns the portfolio's id.
func newPortfolio(tb testing.TB, e *env, email, cash string) string {
	tb.Helper()
	as := bearer(tb, email)
	if r := e.gw.do(tb, http.MethodPost, "/v1/users", fmt.Sprintf(`{"email":%q,"display_name":"Test"}`, email), as...); r.code != http.StatusOK {
		tb.Fatalf("POST /v1/users as %s = %v", email, r)
	}
	r := e.gw.do(tb, http.MethodPost, "/v1/portfolios", `{"name":"Main"}`, as...)
	id := decode[struct {
		Portfolio struct {
			ID string `json:"id"` // int64: a string in JSON
		} `json:"portfolio"`
	}](tb, r).Portfolio.ID
	if r.code != http.StatusOK || id == "" {
		tb.Fatalf("POST /v1/portfolios as %s = %v", email, r)
	}
	if r := e.gw.do(tb, http.MethodPost, "/v1/portfolios/"+id+":deposit",
		fmt.Sprintf(`{"amount":%q,"request_id":"seed"}`, cash), as...); r.code != http.StatusOK {
		tb.Fatalf("deposit as %s = %v", email, r)
	}
	return id
}

// testTradeNeedsToken: a trade goes through with its owner's token and is refused (401)
// without one or with a forged one.
func testTradeNeedsToken(t *testing.T, e *env) {
	const email = "trader@example.com"
	id := newPortfolio(t, e, email, "10000")
	path := "/v1/portfolios/" + id + "/trades"
	trade := `{"symbol":"AAPL","side":"SIDE_BUY","quantity":"10","request_id":"buy-1"}`

	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"no_token", nil, http.StatusUnauthorized},
		{"forged_token", []string{"Authorization", "Bearer " + forged(bearer(t, email)[1])}, http.StatusUnauthorized},
		{"not_bearer", []string{"Authorization", "Basic dHJhZGVyOnB3"}, http.StatusUnauthorized},
		{"owner", bearer(t, email), http.StatusOK},
	}
	for _, tt := range tests { // in order: the owner's trade comes last
		r := e.gw.do(t, http.MethodPost, path, trade, tt.headers...)
		if tt.want != http.StatusOK {
			wantError(t, r, tt.want, 16)
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", tt.name, got)
			}
			continue
		}
		got := decode[struct {
			Trade struct {
				Symbol   string `json:"symbol"`
				Quantity string `json:"quantity"`
				Price    string `json:"price"`
			} `json:"trade"`
		}](t, r).Trade
		if r.code != http.StatusOK || got.Symbol != "AAPL" || got.Quantity == "" || got.Price == "" {
			t.Errorf("%s: POST %s = %v, want the trade of 10 AAPL", tt.name, path, r)
		}
	}
}

// forged returns tok with its signature changed.
func forged(tok string) string {
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	return tok[:len(tok)-len(sig)] + strings.Repeat("A", len(sig))
}

// testOtherUsersData: another user's portfolio or interview session is refused exactly as a
// missing one is (404), so ids reveal nothing.
func testOtherUsersData(t *testing.T, e *env) {
	const alice, bob = "alice@example.com", "bob@example.com"
	id := newPortfolio(t, e, alice, "100")
	r := e.gw.do(t, http.MethodPost, "/v1/sessions", `{"criteria":{"categories":["SQL"],"count":2}}`, bearer(t, alice)...)
	session := decode[struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
	}](t, r).Session.ID
	if r.code != http.StatusOK || session == "" {
		t.Fatalf("POST /v1/sessions as %s = %v", alice, r)
	}

	tests := []struct {
		name         string
		method, path string
		body         string
		as           string
		want         int
	}{
		{"owner_reads_portfolio", http.MethodGet, "/v1/portfolios/" + id, "", alice, http.StatusOK},
		{"other_reads_portfolio", http.MethodGet, "/v1/portfolios/" + id, "", bob, http.StatusNotFound},
		{"other_reads_missing_portfolio", http.MethodGet, "/v1/portfolios/999999999", "", bob, http.StatusNotFound},
		{"other_trades_on_portfolio", http.MethodPost, "/v1/portfolios/" + id + "/trades",
			`{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1","request_id":"steal"}`, bob, http.StatusNotFound},
		{"other_lists_trades", http.MethodGet, "/v1/portfolios/" + id + "/trades", "", bob, http.StatusNotFound},
		{"owner_reads_session", http.MethodGet, "/v1/sessions/" + session, "", alice, http.StatusOK},
		{"other_reads_session", http.MethodGet, "/v1/sessions/" + session, "", bob, http.StatusNotFound},
		{"other_reads_missing_session", http.MethodGet, "/v1/sessions/999999999", "", bob, http.StatusNotFound},
		{"anonymous_reads_portfolio", http.MethodGet, "/v1/portfolios/" + id, "", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var headers []string
			if tt.as != "" {
				headers = bearer(t, tt.as)
			}
			r := e.gw.do(t, tt.method, tt.path, tt.body, headers...)
			switch tt.want {
			case http.StatusOK:
				if r.code != http.StatusOK {
					t.Errorf("%s %s as %q = %v, want 200", tt.method, tt.path, tt.as, r)
				}
			case http.StatusNotFound:
				wantError(t, r, tt.want, 5)
			default:
				wantError(t, r, tt.want, 16)
			}
		})
	}
}

// testForwardedHeaders: the caller's Authorization reaches the service as "authorization"
// metadata, and a Grpc-Metadata-* header cannot add a second identity.
func testForwardedHeaders(t *testing.T, e *env) {
	const carol = "carol@example.com"
	id := newPortfolio(t, e, carol, "1")
	headers := append(bearer(t, carol), "Grpc-Metadata-Authorization", bearer(t, "mallory@example.com")[1])
	if r := e.gw.do(t, http.MethodGet, "/v1/portfolios/"+id, "", headers...); r.code != http.StatusOK {
		t.Errorf("GET own portfolio with an extra Grpc-Metadata-Authorization = %v, want 200", r)
	}
}
