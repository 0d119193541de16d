package api

import (
	"context"
	"errors"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// Policy: every method needs a token; whose users and portfolios it reaches is checked by
// the handlers against the caller's subject, their email address. WatchPortfolioEvents
// carries every user's trades and cash: the fleet's services and admins only.
var Policy = auth.Policy{
	portfoliov1.PortfolioService_ServiceDesc.ServiceName:             auth.Authenticated,
	portfoliov1.PortfolioService_WatchPortfolioEvents_FullMethodName: auth.Roles(auth.RoleService, auth.RoleAdmin),
}

// requireOwner returns an error wrapping store.ErrNotFound unless the portfolio exists and
// the caller may act on it: its owner, or an admin. Someone else's portfolio is refused
// exactly as a missing one is, so ids reveal nothing. A portfolio never changes owner, so
// checking before the transaction is as good as inside it.
func (s *Server) requireOwner(ctx context.Context, portfolioID int64) error {
	owner := ownerFilter(auth.Caller(ctx))
	return s.retry.Do(ctx, func(ctx context.Context) error { return s.store.CheckOwner(ctx, portfolioID, owner) })
}

// ownerFilter is the email whose portfolios p may reach: its own, or "" (anyone's) for an admin.
func ownerFilter(p auth.Principal) string {
	if p.Admin() {
		return ""
	}
	return p.Subject
}

// previousTrade returns the trade the portfolio made for request_id (found false: none yet),
// after checking in the same round trip that the caller may act on the portfolio, as
// requireOwner does: another's trade is never shown.
func (s *Server) previousTrade(ctx context.Context, portfolioID int64, requestID string) (t store.Trade, found bool, err error) {
	owner := ownerFilter(auth.Caller(ctx))
	err = s.retry.Do(ctx, func(ctx context.Context) (err error) {
		t, found, err = s.store.OwnedTradeByRequest(ctx, portfolioID, owner, requestID)
		return err
	})
	return t, found, err
}

// ownerID is the user a new portfolio belongs to: the caller's own user, which requested
// (0: unset) may only name again; an admin may name any user.
func (s *Server) ownerID(ctx context.Context, requested int64) (int64, error) {
	p := auth.Caller(ctx)
	if p.Admin() {
		if requested == 0 {
			return 0, validate.Field("user_id", "is required when an admin creates a portfolio")
		}
		return requested, nil
	}
	var u store.User
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		u, err = s.store.UserByEmail(ctx, p.Subject)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, apierr.Newf(apierr.UserNotRegistered, map[string]string{"email": p.Subject},
			"no user with email %q (the token's subject): create it with CreateUser first", p.Subject)
	}
	if err != nil {
		return 0, err
	}
	if requested != 0 && requested != u.ID {
		return 0, &store.NotFoundError{Kind: "user", Field: "user_id", Key: requested} // someone else's, or no one's
	}
	return u.ID, nil
}

// previousMovement is previousTrade for deposits and withdrawals.
func (s *Server) previousMovement(ctx context.Context, portfolioID int64, requestID string) (m store.CashMovement, found bool, err error) {
	owner := ownerFilter(auth.Caller(ctx))
	err = s.retry.Do(ctx, func(ctx context.Context) (err error) {
		m, found, err = s.store.OwnedMovementByRequest(ctx, portfolioID, owner, requestID)
		return err
	})
	return m, found, err
}
