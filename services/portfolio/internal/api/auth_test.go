package api_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

// TestOwnership: a user reaches only their own user and portfolios; someone else's
// portfolio is refused exactly as a missing one is; the owner comes from the token.
func TestOwnership(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	ada, bob := authtest.As(t, "ada@example.com"), authtest.As(t, "bob@example.com")

	adaUser, err := e.user.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "Ada@Example.com", DisplayName: "Ada"}, ada)
	if err != nil {
		t.Fatalf("ada registers herself (email in another case): %v", err)
	}
	_, err = e.user.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "carol@example.com"}, bob)
	apptest.WantCode(t, err, codes.PermissionDenied) // bob cannot register someone else
	_, err = e.user.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{Name: "main"}, bob)
	apptest.WantCode(t, err, codes.FailedPrecondition) // bob has no user yet
	if _, err := e.user.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "bob@example.com"}, bob); err != nil {
		t.Fatal(err)
	}

	p, err := e.user.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{Name: "main"}, ada)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.GetPortfolio().GetUserId(), adaUser.GetUser().GetId(); got != want {
		t.Fatalf("portfolio owner = %d, want ada's id %d (from her token)", got, want)
	}
	pid := p.GetPortfolio().GetId()
	_, err = e.user.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: adaUser.GetUser().GetId(), Name: "bobs"}, bob)
	apptest.WantCode(t, err, codes.NotFound) // bob cannot open a portfolio in ada's name
	bobP, err := e.user.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{Name: "main"}, bob)
	if err != nil {
		t.Fatal(err)
	}

	// Every portfolio call: ada's own works; bob gets on ada's portfolio exactly what he gets
	// on one that does not exist; without a token, Unauthenticated.
	calls := map[string]func(ctx context.Context, pid int64, opt grpc.CallOption) error{
		"Deposit": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "1000", RequestId: "d1"}, opt)
			return err
		},
		"ExecuteTrade": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
				Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: "t1"}, opt)
			return err
		},
		"Withdraw": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "1", RequestId: "w1"}, opt)
			return err
		},
		"GetPortfolio": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.GetPortfolio(ctx, &portfoliov1.GetPortfolioRequest{PortfolioId: pid}, opt)
			return err
		},
		"ListTrades": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: pid}, opt)
			return err
		},
		"ListCashMovements": func(ctx context.Context, pid int64, opt grpc.CallOption) error {
			_, err := e.user.ListCashMovements(ctx, &portfoliov1.ListCashMovementsRequest{PortfolioId: pid}, opt)
			return err
		},
	}
	const missing = 1 << 40
	// In order, so that ada's trade has her deposit to pay with.
	for _, name := range []string{"Deposit", "ExecuteTrade", "Withdraw", "GetPortfolio", "ListTrades", "ListCashMovements"} {
		call := calls[name]
		if err := call(ctx, pid, ada); err != nil {
			t.Errorf("%s by the owner: %v", name, err)
		}
		other := status.Convert(call(ctx, pid, bob))
		absent := status.Convert(call(ctx, missing, bob))
		if other.Code() != codes.NotFound || absent.Code() != codes.NotFound {
			t.Errorf("%s by another user: %v; on a missing portfolio: %v; want NotFound for both", name, other.Err(), absent.Err())
		}
		if got, want := other.Message(), strings.ReplaceAll(absent.Message(), strconv.Itoa(missing), strconv.FormatInt(pid, 10)); got != want {
			t.Errorf("%s: another's portfolio says %q, a missing one %q: they must not differ", name, got, absent.Message())
		}
		// Nor may the machine-readable part differ.
		apptest.WantReason(t, other.Err(), apierr.PortfolioNotFound, map[string]string{"portfolio_id": strconv.FormatInt(pid, 10)})
		apptest.WantReason(t, absent.Err(), apierr.PortfolioNotFound, map[string]string{"portfolio_id": strconv.Itoa(missing)})
		apptest.WantCode(t, call(ctx, pid, grpc.EmptyCallOption{}), codes.Unauthenticated)
	}
	if n := e.count(t, `SELECT count(*) FROM portfolio.cash_movements WHERE request_id <> 't1'`); n != 2 {
		t.Errorf("%d deposits and withdrawals, want ada's 2 (bob's were all refused)", n)
	}

	// GetUser: oneself only.
	_, err = e.user.GetUser(ctx, &portfoliov1.GetUserRequest{UserId: adaUser.GetUser().GetId()}, bob)
	apptest.WantCode(t, err, codes.NotFound)
	if _, err := e.user.GetUser(ctx, &portfoliov1.GetUserRequest{UserId: adaUser.GetUser().GetId()}, ada); err != nil {
		t.Errorf("GetUser of oneself: %v", err)
	}

	// ListPortfolios: each user sees their own, even when filtering for another's; an admin sees all.
	list := func(opt grpc.CallOption, filter string) []int64 {
		t.Helper()
		resp, err := e.user.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{Filter: filter}, opt)
		if err != nil {
			t.Fatalf("ListPortfolios: %v", err)
		}
		var ids []int64
		for _, p := range resp.GetPortfolios() {
			ids = append(ids, p.GetId())
		}
		return ids
	}
	bobPid := bobP.GetPortfolio().GetId()
	adaFilter := "user_id = " + strconv.FormatInt(adaUser.GetUser().GetId(), 10)
	for _, tc := range []struct {
		name string
		opt  grpc.CallOption
		flt  string
		want []int64
	}{
		{"ada", ada, "", []int64{pid}},
		{"bob", bob, "", []int64{bobPid}},
		{"bob filtering for ada's", bob, adaFilter, nil},
		{"admin", authtest.As(t, "ops@example.com", "admin"), "", []int64{pid, bobPid}},
	} {
		if got := list(tc.opt, tc.flt); !slices.Equal(got, tc.want) {
			t.Errorf("ListPortfolios as %s = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestValidate_everyMethod does for validation what Policy does for access: every RPC of the
// service has a case in Validate (an empty one when there is nothing to check), and a
// request without one is refused.
func TestValidate_everyMethod(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, api.Validate, portfoliov1.File_pgfleet_portfolio_v1_portfolio_proto)
}

// TestRoutes_everyMethod: every RPC says where it reads, and no write reads on a replica.
func TestRoutes_everyMethod(t *testing.T) {
	t.Parallel()
	if err := api.Routes.Check(portfoliov1.File_pgfleet_portfolio_v1_portfolio_proto); err != nil {
		t.Error(err)
	}
}
