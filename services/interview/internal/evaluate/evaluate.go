// Package evaluate scores an interview answer against its question's rubric: a built-in
// rubric evaluator that always works, and an optional remote evaluator (an AI service over
// HTTP) behind a deadline and a circuit breaker, falling back to the rubric.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/pgfleet/pgfleet/pkg/breaker"
)

// Values of Result.Evaluator.
const (
	EvaluatorRubric = "rubric"
	EvaluatorRemote = "remote"
)

// Values of Result.Fallback other than "" (the remote evaluator answered) and those
// starting with FallbackErrorPrefix.
const (
	FallbackNotConfigured = "not configured" // Config.URL is empty
	FallbackCircuitOpen   = "circuit open"   // recent remote calls failed; none was made
	FallbackTimeout       = "timeout"        // no answer within Config.Timeout
)

// FallbackErrorPrefix starts Result.Fallback when the remote call failed otherwise. The
// rest is one of "connection refused", "connection failed", "DNS lookup failed",
// "status N", "response over 1 MiB", "bad JSON", "bad JSON: wrong type for F",
// "response has no score", "response has no met", "score S out of range [0, 100]",
// "met index I out of range [0, N)", "duplicate met index I" or (never seen in practice)
// "cannot encode request" or "cannot build request": never an address, never the remote's
// own words.
const FallbackErrorPrefix = "error: "

// Request is one answer to score.
type Request struct {
	QuestionID int64
	Question   string
	Category   string
	Rubric     Rubric
	Answer     string
}

// Result is an answer's score and how it was reached.
type Result struct {
	// Score is in [0, 100], rounded to two decimals.
	Score float64
	// Met and Missed are the indexes of the rubric's points, ascending; together they hold
	// each index once. Never nil.
	Met    []int
	Missed []int
	// Evaluator is EvaluatorRemote or EvaluatorRubric.
	Evaluator string
	// Fallback says why the remote evaluator was not used: "" when it was, else
	// FallbackNotConfigured, FallbackCircuitOpen, FallbackTimeout or FallbackErrorPrefix
	// plus the cause; fit to show to candidates.
	Fallback string
	// Feedback is the remote evaluator's text, or the rubric's summary, e.g.
	// `met 1 of 2 points: "uses an index"; missed: "mentions EXPLAIN"`.
	Feedback string
}

// Evaluator scores answers.
type Evaluator interface {
	// Evaluate scores r.Answer. It fails only when r's rubric is invalid (ErrInvalidRubric)
	// or ctx ends before a result is ready (ctx.Err()).
	Evaluate(ctx context.Context, r Request) (Result, error)
}

// Config sets up the remote evaluator. With URL empty the other fields are ignored.
type Config struct {
	// URL is the remote evaluator's endpoint (http or https), which gets a POST per answer.
	// Empty: rubric only.
	URL string `env:"EVALUATOR_URL" help:"remote answer evaluator, an http(s) endpoint that gets a POST per answer; empty: rubric only" secret:"password"`
	// Timeout bounds each remote call, or less when the caller's deadline is sooner. Keep
	// it well under callers' deadlines: a caller whose deadline passes first gets an error,
	// not the rubric's result.
	Timeout time.Duration `env:"EVALUATOR_TIMEOUT, default=3s" help:"deadline of each remote evaluation (keep it well under callers' deadlines)"`

	// Breaker opens on the share of remote calls that failed; unset, MinRequests and
	// OpenTimeout are BreakerDefaults.
	Breaker breaker.Config `env:", prefix=EVALUATOR_BREAKER_"`
}

// BreakerDefaults are the evaluator breaker's EVALUATOR_BREAKER_MIN_REQUESTS (3) and
// EVALUATOR_BREAKER_OPEN_TIMEOUT (10s) when unset.
var BreakerDefaults = breaker.Defaults{MinRequests: 3, OpenTimeout: 10 * time.Second}

// EnvDefaults are BreakerDefaults as settings, for --help (see app.Settings).
func (Config) EnvDefaults() map[string]string { return BreakerDefaults.Env("EVALUATOR_BREAKER_") }

// Validate reports settings New would reject. An empty URL is valid whatever the rest.
func (cfg Config) Validate() error {
	if cfg.URL == "" {
		return nil
	}
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil:
		return fmt.Errorf("parse EVALUATOR_URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("EVALUATOR_URL scheme %q, want http or https", u.Scheme)
	case u.Host == "":
		return errors.New("EVALUATOR_URL has no host")
	case cfg.Timeout <= 0:
		return fmt.Errorf("want EVALUATOR_TIMEOUT > 0, got %v", cfg.Timeout)
	}
	return cfg.Breaker.With(BreakerDefaults).Validate()
}

// Hybrid is the Evaluator a service uses: the remote evaluator when one is configured
// and answering, else the rubric. It is safe for concurrent use.
type Hybrid struct {
	url     string
	timeout time.Duration
	client  *http.Client
	breaker *gobreaker.CircuitBreaker[struct{}] // nil without a remote evaluator
	m       *metrics
}

var _ Evaluator = (*Hybrid)(nil)

// New returns a Hybrid that calls cfg.URL through client (nil: http.DefaultClient), or
// scores by rubric only when cfg.URL is empty. Its metrics are registered on reg unless
// reg is nil; a registry takes one Hybrid.
//
// New panics if cfg is invalid or the metrics clash with ones already on reg, as
// prometheus.MustRegister does; call cfg.Validate first to get an error instead.
func New(cfg Config, client *http.Client, reg prometheus.Registerer) *Hybrid {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Errorf("evaluate.New: %w", err))
	}
	h := &Hybrid{url: cfg.URL, timeout: cfg.Timeout, client: client}
	if h.client == nil {
		h.client = http.DefaultClient
	}
	if cfg.URL == "" {
		h.m = newMetrics(nil)
	} else {
		h.breaker = breaker.New("evaluator", cfg.Breaker.With(BreakerDefaults), nil, func(err error) bool { return errors.Is(err, errCallerGone) })
		h.m = newMetrics(h.breaker.State)
	}
	if reg != nil {
		if err := h.m.register(reg); err != nil {
			panic(fmt.Errorf("evaluate.New: register metrics: %w", err))
		}
	}
	return h
}

// State returns the remote evaluator's circuit breaker state, for the ops API: "closed",
// "half-open" or "open", or "disabled" when no remote evaluator is configured.
func (h *Hybrid) State() string {
	if h.breaker == nil {
		return "disabled"
	}
	return h.breaker.State().String()
}

// Evaluate scores r by the remote evaluator if one is configured and its breaker is
// closed, else by ScoreRubric; any failure of the remote call falls back to the rubric
// too, with Result.Fallback saying why. Errors: ErrInvalidRubric, or ctx.Err() when ctx
// ends first.
func (h *Hybrid) Evaluate(ctx context.Context, r Request) (Result, error) {
	if err := ctx.Err(); err != nil {
		h.m.count(evaluatorNone, outcomeCanceled)
		return Result{}, fmt.Errorf("evaluate question %d: %w", r.QuestionID, err)
	}
	if err := r.Rubric.Validate(); err != nil {
		h.m.count(evaluatorNone, outcomeInvalid)
		return Result{}, fmt.Errorf("evaluate question %d: %w", r.QuestionID, err)
	}
	if h.breaker == nil {
		return h.fallback(r, FallbackNotConfigured, outcomeNotConfigured), nil
	}

	res, err := h.remote(ctx, r)
	switch {
	case err == nil:
		h.m.count(EvaluatorRemote, outcomeOK)
		return res, nil
	case ctx.Err() != nil:
		h.m.count(evaluatorNone, outcomeCanceled)
		return Result{}, fmt.Errorf("evaluate question %d: %w", r.QuestionID, ctx.Err())
	case errors.Is(err, errCircuitOpen):
		return h.fallback(r, FallbackCircuitOpen, outcomeCircuitOpen), nil
	case errors.Is(err, errTimeout):
		return h.fallback(r, FallbackTimeout, outcomeTimeout), nil
	default:
		return h.fallback(r, FallbackErrorPrefix+err.Error(), outcomeError), nil
	}
}

func (h *Hybrid) fallback(r Request, reason, outcome string) Result {
	h.m.count(EvaluatorRubric, outcome)
	res := ScoreRubric(r)
	res.Fallback = reason
	return res
}
