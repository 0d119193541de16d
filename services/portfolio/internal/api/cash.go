package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/ledger"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// Deposit adds cash to a portfolio.
func (s *Server) Deposit(ctx context.Context, req *portfoliov1.DepositRequest) (*portfoliov1.DepositResponse, error) {
	p, m, err := s.moveCash(ctx, req.GetPortfolioId(), req.GetAmount(), req.GetRequestId(), portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_DEPOSIT)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.DepositResponse{Portfolio: toPortfolio(p), Movement: toMovement(m)}, nil
}

// Withdraw takes cash out of a portfolio.
func (s *Server) Withdraw(ctx context.Context, req *portfoliov1.WithdrawRequest) (*portfoliov1.WithdrawResponse, error) {
	p, m, err := s.moveCash(ctx, req.GetPortfolioId(), req.GetAmount(), req.GetRequestId(), portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_WITHDRAWAL)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.WithdrawResponse{Portfolio: toPortfolio(p), Movement: toMovement(m)}, nil
}

// moveCash deposits or withdraws once per request_id: a repeat returns the first answer, the
// movement and the portfolio as it left it, whatever happened since.
func (s *Server) moveCash(ctx context.Context, portfolioID int64, amountText, requestID string, kind portfoliov1.CashMovementKind) (store.Portfolio, store.CashMovement, error) {
	amount, err := decimal.Parse(amountText)
	if err != nil { // Validate has checked it; keep the store safe anyway
		return store.Portfolio{}, store.CashMovement{}, fmt.Errorf("amount: %w", err)
	}
	hash := requestHash(kind.String(), decimal.Format(amount))

	// A repeat of a request answered long ago is found without waiting for the lock; the
	// same round trip checks that the caller may act on the portfolio.
	prev, found, err := s.previousMovement(ctx, portfolioID, requestID)
	if err != nil {
		return store.Portfolio{}, store.CashMovement{}, err
	}
	if found {
		return repeatedMovement(ctx, s.store, prev, hash)
	}

	apply, signed := ledger.Deposit, amount
	if kind == portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_WITHDRAWAL {
		apply, signed = ledger.Withdraw, decimal.Neg(amount)
	}
	var p store.Portfolio
	var m store.CashMovement
	appended := false
	err = s.write(ctx, portfolioID, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		appended = false // a retry starts over
		// A concurrent copy of this request may have moved the cash while this one waited for
		// the lock: it is recognised here, under the lock and before any business check, so
		// it gets the first answer rather than a refusal of a second withdrawal.
		prev, err := st.MovementByRequest(ctx, portfolioID, requestID)
		if err == nil {
			p, m, err = repeatedMovement(ctx, st, prev, hash)
			return err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if p, err = st.GetPortfolio(ctx, portfolioID); err != nil {
			return err
		}
		cash, err := decimal.Parse(p.Cash)
		if err != nil {
			return fmt.Errorf("portfolio %d cash %q: %w", portfolioID, p.Cash, err)
		}
		after, err := apply(portfolioID, cash, amount)
		if err != nil {
			return err
		}
		p, m, err = st.MoveCash(ctx, store.CashMovement{PortfolioID: portfolioID, Kind: kind.String(),
			Amount: decimal.Format(signed), RequestID: requestID, RequestHash: hash}, decimal.Format(after))
		if err != nil {
			return err
		}
		if err := s.appendEvent(ctx, tx, portfolioID, &portfoliov1.CashMoved{Movement: toMovement(m), Cash: decimal.Trim(p.Cash)}); err != nil {
			return err
		}
		appended = true
		return nil
	})
	if err == nil && appended {
		s.outbox.Committed()
	}
	if errors.Is(err, store.ErrRepeat) { // only a writer without the lock gets here: tests' weakened server
		if m, err = s.store.MovementByRequest(ctx, portfolioID, requestID); err != nil {
			return store.Portfolio{}, store.CashMovement{}, err
		}
		return repeatedMovement(ctx, s.store, m, hash)
	}
	return p, m, err
}

// repeatedMovement answers a request_id seen before: the first answer if the request is the
// same, a conflict if the id was used for another request.
func repeatedMovement(ctx context.Context, st *store.Store, prev store.CashMovement, hash []byte) (store.Portfolio, store.CashMovement, error) {
	if !bytes.Equal(prev.RequestHash, hash) {
		return store.Portfolio{}, store.CashMovement{}, reusedRequestID(prev.RequestID)
	}
	p, err := st.PortfolioAfter(ctx, prev)
	if err != nil {
		return store.Portfolio{}, store.CashMovement{}, err
	}
	return p, prev, nil
}

// reusedRequestID is the error for a request_id already used for a different request.
func reusedRequestID(id string) error {
	return apierr.Newf(apierr.RequestIDReused, map[string]string{"request_id": id},
		"request_id %q was already used for a different request", id)
}

// ListCashMovements returns a page of a portfolio's ledger, oldest first.
func (s *Server) ListCashMovements(ctx context.Context, req *portfoliov1.ListCashMovementsRequest) (*portfoliov1.ListCashMovementsResponse, error) {
	pid := req.GetPortfolioId()
	if err := s.requireOwner(ctx, pid); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	page := query.Request{PageToken: req.GetPageToken(), PageSize: req.GetPageSize(), Extra: strconv.FormatInt(pid, 10)}
	read := func(ctx context.Context, q *query.Query) ([]store.CashMovement, error) {
		return s.store.ListCashMovements(ctx, pid, q)
	}
	movements, next, err := query.List(ctx, s.retry, &s.lists.movements, page, read, toMovement)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.ListCashMovementsResponse{Movements: movements, NextPageToken: next}, nil
}
