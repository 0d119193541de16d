package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// IngestBars writes one batch of an ingestion run (package ingest) through IngestPrices'
// own path: the bars are checked with IngestPrices' row rules (priceRow), then merged (or, if
// appendOnly, appended) in one transaction under their symbols' write locks, with the same
// LatestPriceChanged events. A bar that breaks a rule, names an unknown stock, or (appendOnly)
// is not later than its symbol's latest stored bar is not written but returned as a Reject
// with the reason, so one bad bar never fails the batch. record, if set, runs in the batch's
// transaction before it commits, with the count written and the rejects: the run's progress
// and quarantine commit with its rows.
func (s *Server) IngestBars(ctx context.Context, bars []source.Bar, appendOnly bool,
	record func(ctx context.Context, tx pgx.Tx, accepted int64, rejects []source.Reject) error) (int64, []source.Reject, error) {
	good, rejects := checkBars(bars)
	for attempt := 0; ; attempt++ {
		var err error
		if good, rejects, err = s.knownBars(ctx, good, rejects, appendOnly); err != nil {
			return 0, nil, err
		}
		accepted, err := s.writeBars(ctx, good, appendOnly, rejects, record)
		var unknown *store.UnknownStocksError
		if errors.As(err, &unknown) && attempt == 0 {
			continue // a stock deleted since knownBars looked: look again, once
		}
		return accepted, rejects, err
	}
}

// writeBars writes checked bars in one transaction, or only runs record if none are left.
func (s *Server) writeBars(ctx context.Context, checked []checkedBar, appendOnly bool, rejects []source.Reject,
	record func(context.Context, pgx.Tx, int64, []source.Reject) error) (int64, error) {
	var accepted int64
	also := func(ctx context.Context, tx pgx.Tx) error {
		if record == nil {
			return nil
		}
		return record(ctx, tx, accepted, rejects)
	}
	if len(checked) == 0 {
		return 0, pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return also(ctx, tx) })
	}
	good := make([]*stockv1.Price, len(checked))
	for i, c := range checked {
		good[i] = c.p
	}
	msgs := &barMessages{prices: good}
	if appendOnly {
		msgs.appendOnly = &stockv1.AppendOnly{Symbols: distinctSymbols(good)}
	}
	// accepted is known once the rows are in, before also runs: ingestWith calls also last.
	var resp *stockv1.IngestPricesResponse
	resp, err := s.ingestWith(ctx, msgs, func(ctx context.Context, tx pgx.Tx) error {
		accepted = int64(len(good))
		return also(ctx, tx)
	})
	if err != nil {
		return 0, err
	}
	return resp.GetReceivedCount(), nil
}

// checkBars splits bars into the ones that pass IngestPrices' row rules, as Prices, and
// rejects saying why the others do not.
func checkBars(bars []source.Bar) ([]checkedBar, []source.Reject) {
	good := make([]checkedBar, 0, len(bars))
	var rejects []source.Reject
	for i := range bars {
		b := &bars[i]
		pr := &stockv1.Price{Symbol: b.Symbol, Time: timestamppb.New(b.Time), Open: b.Open, High: b.High,
			Low: b.Low, Close: b.Close, Volume: b.Volume}
		if _, err := priceRow(pr, 0); err != nil {
			rejects = append(rejects, barReject(b, rowReason(err)))
			continue
		}
		good = append(good, checkedBar{p: pr, ref: b.Ref})
	}
	return good, rejects
}

// rowReason says why priceRow refused a row, for a person: "low: must not exceed high (...)".
func rowReason(err error) string {
	var bad *validate.Error
	if !errors.As(err, &bad) {
		return err.Error()
	}
	parts := make([]string, len(bad.Violations))
	for i, v := range bad.Violations {
		parts[i] = strings.TrimPrefix(v.GetField(), "prices[0].") + ": " + v.GetDescription()
	}
	return strings.Join(parts, "; ")
}

// knownBars moves to rejects the bars of symbols that name no stock and, on an append-only
// run, the bars not later than their symbol's latest stored bar or than the bar before them.
// It looks without locks, which the write takes: a stock deleted meanwhile fails the write
// (IngestBars then looks again), a bar appended meanwhile makes the write APPEND_OUT_OF_ORDER.
func (s *Server) knownBars(ctx context.Context, good []checkedBar, rejects []source.Reject, appendOnly bool) ([]checkedBar, []source.Reject, error) {
	if len(good) == 0 {
		return good, rejects, nil
	}
	symbols := distinctSymbols(good)
	missing, err := s.store.MissingStocks(ctx, symbols)
	if err != nil {
		return nil, nil, err
	}
	var after map[string]time.Time
	if appendOnly {
		if after, err = s.store.LatestTimes(ctx, symbols); err != nil {
			return nil, nil, err
		}
		// Each symbol's bars in time order, as an append-only stream must send them.
		slices.SortStableFunc(good, func(a, b checkedBar) int {
			return cmp.Or(strings.Compare(a.p.GetSymbol(), b.p.GetSymbol()), a.p.GetTime().AsTime().Compare(b.p.GetTime().AsTime()))
		})
	}
	kept := good[:0]
	for _, c := range good {
		p := c.p
		t := p.GetTime().AsTime()
		if _, unknown := slices.BinarySearch(missing, p.GetSymbol()); unknown {
			rejects = append(rejects, priceReject(c, fmt.Sprintf("unknown stock %q", p.GetSymbol())))
			continue
		}
		if appendOnly {
			if last, ok := after[p.GetSymbol()]; ok && !t.After(last) {
				rejects = append(rejects, priceReject(c, fmt.Sprintf("not after %s's latest stored bar (%s): the job is append-only",
					p.GetSymbol(), last.Format(time.RFC3339))))
				continue
			}
			after[p.GetSymbol()] = t
		}
		kept = append(kept, c)
	}
	return kept, rejects, nil
}

// checkedBar is a bar that passed the row rules, as a Price, with where it came from.
type checkedBar struct {
	p   *stockv1.Price
	ref string
}

func (c checkedBar) GetSymbol() string { return c.p.GetSymbol() }

func distinctSymbols[T interface{ GetSymbol() string }](items []T) []string {
	symbols := make([]string, 0, 8)
	for _, it := range items {
		symbols = append(symbols, it.GetSymbol())
	}
	slices.Sort(symbols)
	return slices.Compact(symbols)
}

// barReject is the Reject of a bar the rules refused; its Raw is the bar as CSV.
func barReject(b *source.Bar, reason string) source.Reject {
	raw := strings.Join([]string{b.Symbol, b.Time.UTC().Format(time.RFC3339), b.Open, b.High, b.Low, b.Close,
		strconv.FormatInt(b.Volume, 10)}, ",")
	return source.Reject{Ref: b.Ref, Reason: reason, Raw: raw}
}

// priceReject is the Reject of a checked bar refused for its symbol or time.
func priceReject(c checkedBar, reason string) source.Reject {
	p := c.p
	b := source.Bar{Symbol: p.GetSymbol(), Time: p.GetTime().AsTime(), Open: p.GetOpen(), High: p.GetHigh(),
		Low: p.GetLow(), Close: p.GetClose(), Volume: p.GetVolume(), Ref: c.ref}
	return barReject(&b, reason)
}

// barMessages feeds checked bars to ingestWith as an IngestPrices stream: the append-only
// declaration first if any, then the bars in messages of at most maxIngestBatch.
type barMessages struct {
	appendOnly *stockv1.AppendOnly
	prices     []*stockv1.Price
	sent       bool
}

func (m *barMessages) Recv() (*stockv1.IngestPricesRequest, error) {
	if len(m.prices) == 0 && m.sent {
		return nil, io.EOF
	}
	n := min(len(m.prices), maxIngestBatch)
	msg := &stockv1.IngestPricesRequest{Prices: m.prices[:n]}
	if !m.sent {
		msg.AppendOnly = m.appendOnly
	}
	m.prices, m.sent = m.prices[n:], true
	return msg, nil
}
