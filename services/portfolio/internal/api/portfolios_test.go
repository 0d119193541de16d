package api_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/query/querytest"
)

// TestCreatePortfolio_idempotency: with a request_id, a repeat of CreatePortfolio by the
// same user returns the first portfolio and creates nothing, however many race; the same
// request_id for another name or currency is ALREADY_EXISTS; without one, each call creates.
func TestCreatePortfolio_idempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const clients = 16

	// register creates a user that calls as itself, and returns its call option and id.
	register := func(t *testing.T, email string) (grpc.CallOption, int64) {
		t.Helper()
		as := authtest.As(t, email)
		u, err := e.user.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: email}, as)
		if err != nil {
			t.Fatalf("CreateUser(%s): %v", email, err)
		}
		return as, u.GetUser().GetId()
	}
	countPortfolios := func(t *testing.T, uid int64) int {
		return e.count(t, `SELECT count(*) FROM portfolio.portfolios WHERE user_id = $1`, uid)
	}
	req := func(name, currency, rid string) *portfoliov1.CreatePortfolioRequest {
		return &portfoliov1.CreatePortfolioRequest{Name: name, Currency: currency, RequestId: rid}
	}

	t.Run("repeated", func(t *testing.T) {
		t.Parallel()
		as, uid := register(t, "create-repeated@example.com")
		first, err := e.user.CreatePortfolio(t.Context(), req("main", "", "open-main"), as)
		if err != nil {
			t.Fatalf("CreatePortfolio: %v", err)
		}
		// A deposit between the calls: a repeat returns the portfolio as it is now.
		pid := first.GetPortfolio().GetId()
		if _, err := e.user.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "5", RequestId: "d"}, as); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*portfoliov1.CreatePortfolioRequest{
			req("main", "", "open-main"),
			req("main", "USD", "open-main"), // the default spelled out is the same request
			{UserId: uid, Name: "main", RequestId: "open-main"},
		} {
			again, err := e.user.CreatePortfolio(t.Context(), r, as)
			if err != nil {
				t.Fatalf("CreatePortfolio(%v) again: %v", r, err)
			}
			if got := again.GetPortfolio(); got.GetId() != pid || got.GetCash() != "5" {
				t.Errorf("CreatePortfolio(%v) again = portfolio %d with cash %q, want the first, %d, with cash 5",
					r, got.GetId(), got.GetCash(), pid)
			}
		}
		// An admin creating for the user shares the user's request_ids.
		byAdmin, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "main", RequestId: "open-main"})
		if err != nil || byAdmin.GetPortfolio().GetId() != pid {
			t.Errorf("admin's CreatePortfolio for the user = %v, %v; want portfolio %d", byAdmin.GetPortfolio(), err, pid)
		}
		if n := countPortfolios(t, uid); n != 1 {
			t.Errorf("%d portfolios after repeats, want 1", n)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		as, uid := register(t, "create-concurrent@example.com")
		resps, errs := concurrently(clients, func() (*portfoliov1.CreatePortfolioResponse, error) {
			return e.user.CreatePortfolio(t.Context(), req("main", "EUR", "open-main"), as)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: CreatePortfolio = %v", i, err)
			}
			if diff := cmp.Diff(resps[0], resps[i], protocmp.Transform()); diff != "" {
				t.Errorf("call %d answered another portfolio than call 0 (-0 +%d):\n%s", i, i, diff)
			}
		}
		if n := countPortfolios(t, uid); n != 1 {
			t.Errorf("%d portfolios after %d concurrent calls with one request_id, want 1", n, clients)
		}
	})

	t.Run("reused_for_another_request", func(t *testing.T) {
		t.Parallel()
		as, uid := register(t, "create-reused@example.com")
		if _, err := e.user.CreatePortfolio(t.Context(), req("main", "USD", "open"), as); err != nil {
			t.Fatalf("CreatePortfolio: %v", err)
		}
		for _, r := range []*portfoliov1.CreatePortfolioRequest{req("other", "USD", "open"), req("main", "EUR", "open")} {
			_, err := e.user.CreatePortfolio(t.Context(), r, as)
			apptest.WantCode(t, err, codes.AlreadyExists)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, `request_id "open"`) {
				t.Errorf("CreatePortfolio(%v) message = %q, want it to name the reused request_id", r, msg)
			}
			apptest.WantReason(t, err, apierr.RequestIDReused, map[string]string{"request_id": "open"})
		}
		// A name already taken, with a request_id not used yet, is the name's conflict.
		_, err := e.user.CreatePortfolio(t.Context(), req("main", "USD", "fresh"), as)
		apptest.WantCode(t, err, codes.AlreadyExists)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, `"main"`) {
			t.Errorf("CreatePortfolio(taken name) message = %q, want it to name the portfolio", msg)
		}
		apptest.WantReason(t, err, apierr.PortfolioAlreadyExists, map[string]string{"name": "main", "user_id": strconv.FormatInt(uid, 10)})
		if n := countPortfolios(t, uid); n != 1 {
			t.Errorf("%d portfolios, want 1", n)
		}
	})

	t.Run("scoped_to_the_user", func(t *testing.T) {
		t.Parallel()
		ada, adaID := register(t, "create-scope-ada@example.com")
		bob, bobID := register(t, "create-scope-bob@example.com")
		a, err := e.user.CreatePortfolio(t.Context(), req("main", "", "open"), ada)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.user.CreatePortfolio(t.Context(), req("main", "", "open"), bob)
		if err != nil {
			t.Fatalf("bob's CreatePortfolio with ada's request_id: %v", err)
		}
		if a.GetPortfolio().GetId() == b.GetPortfolio().GetId() || b.GetPortfolio().GetUserId() != bobID {
			t.Errorf("bob's portfolio = %v, want a new one of his own (ada's is %v)", b.GetPortfolio(), a.GetPortfolio())
		}
		if n := countPortfolios(t, adaID) + countPortfolios(t, bobID); n != 2 {
			t.Errorf("%d portfolios, want 2", n)
		}
	})

	t.Run("without_request_id", func(t *testing.T) {
		t.Parallel()
		as, uid := register(t, "create-no-rid@example.com")
		for _, name := range []string{"one", "two"} {
			if _, err := e.user.CreatePortfolio(t.Context(), req(name, "", ""), as); err != nil {
				t.Fatalf("CreatePortfolio(%s): %v", name, err)
			}
		}
		_, err := e.user.CreatePortfolio(t.Context(), req("one", "", ""), as)
		apptest.WantCode(t, err, codes.AlreadyExists) // the name, as before request_ids
		if n := countPortfolios(t, uid); n != 2 {
			t.Errorf("%d portfolios after two creations without request_id, want 2", n)
		}
	})
}

// TestValidate_requestID: a request_id PostgreSQL cannot store (a NUL byte) or that holds
// control characters is a field violation, never INTERNAL, on every call that takes one.
func TestValidate_requestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "request-id@example.com", "1000")
	calls := map[string]func(ctx context.Context, rid string) error{
		"CreatePortfolio": func(ctx context.Context, rid string) error {
			_, err := e.client.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: 1, Name: "second", RequestId: rid})
			return err
		},
		"Deposit": func(ctx context.Context, rid string) error {
			_, err := e.client.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "1", RequestId: rid})
			return err
		},
		"Withdraw": func(ctx context.Context, rid string) error {
			_, err := e.client.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "1", RequestId: rid})
			return err
		},
		"ExecuteTrade": func(ctx context.Context, rid string) error {
			_, err := e.client.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
				Side: buy, Quantity: "1", RequestId: rid})
			return err
		},
	}
	ids := map[string]string{
		"nul":      "retry\x00-1",
		"newline":  "retry\n1",
		"escape":   "\x1b[31m",
		"too_long": strings.Repeat("r", 101),
	}
	t.Run("refused", func(t *testing.T) { // returns once its parallel subtests are done
		for method, call := range calls {
			for name, rid := range ids {
				t.Run(method+"_"+name, func(t *testing.T) {
					t.Parallel()
					err := call(t.Context(), rid)
					apptest.WantCode(t, err, codes.InvalidArgument)
					var fields []string
					for _, d := range status.Convert(err).Details() {
						if br, ok := d.(*errdetails.BadRequest); ok {
							for _, v := range br.GetFieldViolations() {
								fields = append(fields, v.GetField())
							}
						}
					}
					if diff := cmp.Diff([]string{"request_id"}, fields); diff != "" {
						t.Errorf("field violations of %v mismatch (-want +got):\n%s", err, diff)
					}
				})
			}
		}
	})
	if n := e.count(t, `SELECT count(*) FROM portfolio.portfolios`); n != 1 {
		t.Errorf("%d portfolios after refused calls, want 1", n)
	}
	e.wantNothingWritten(t)
}

// TestList_everyOrderPages walks ListPortfolios and ListTrades in small pages under every
// order they accept: the page tokens hold each sort field's value of the last row.
func TestList_everyOrderPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var pid int64
	for i := range 8 {
		u, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: fmt.Sprintf("u%d@example.com", i)})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		for j := range 2 {
			p, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(),
				Name: fmt.Sprintf("p%d", (i*3+j)%5), Currency: []string{"USD", "EUR"}[(i+j)%2]})
			if err != nil {
				t.Fatalf("CreatePortfolio: %v", err)
			}
			pid = p.GetPortfolio().GetId()
		}
	}
	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "100000", RequestId: "cash"}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	for i, symbol := range []string{"AAPL", "MSFT", "XOM", "AAPL", "MSFT", "AAPL", "XOM", "AAPL"} {
		e.mustTrade(t, pid, buy, symbol, "2", fmt.Sprintf("buy%d", i))
		if i%3 == 1 {
			e.mustTrade(t, pid, sell, symbol, "1", fmt.Sprintf("sell%d", i))
		}
	}

	t.Run("portfolios", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			key := func(p *portfoliov1.Portfolio) string { return strconv.FormatInt(p.GetId(), 10) }
			return querytest.Keys(resp.GetPortfolios(), key), resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 3, "id", "user_id", "name", "currency", "create_time", "update_time")
	})
	t.Run("trades", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: orderBy, PageToken: token, PageSize: size})
			key := func(t *portfoliov1.Trade) string { return strconv.FormatInt(t.GetId(), 10) }
			return querytest.Keys(resp.GetTrades(), key), resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 3, "id", "symbol", "side", "execute_time")
	})
}
