package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// maxResponseBytes bounds the remote evaluator's response body.
const maxResponseBytes = 1 << 20

var (
	// errCircuitOpen, errTimeout and errCallerGone classify remote calls; callers never see them.
	errCircuitOpen = errors.New("circuit open")
	errTimeout     = errors.New("timeout")
	errCallerGone  = errors.New("caller gave up")
)

// The remote evaluator's JSON, request and response.
type (
	remoteRequest struct {
		QuestionID int64        `json:"question_id"`
		Question   string       `json:"question"`
		Category   string       `json:"category"`
		Rubric     remoteRubric `json:"rubric"`
		Answer     string       `json:"answer"`
	}
	remoteRubric struct {
		Points []remotePoint `json:"points"`
	}
	remotePoint struct {
		Description string   `json:"description"`
		Weight      int      `json:"weight"`
		Keywords    []string `json:"keywords"`
	}
	remoteResponse struct {
		// Pointers tell a missing field from a zero one.
		Score    *float64 `json:"score"`
		Met      *[]int   `json:"met"`
		Feedback string   `json:"feedback"`
	}
)

// remote asks the remote evaluator through the breaker, under the deadline.
func (h *Hybrid) remote(ctx context.Context, r Request) (Result, error) {
	body, err := json.Marshal(toRemote(r))
	if err != nil {
		return Result{}, &failure{reason: "cannot encode request", err: err}
	}
	callCtx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()

	var (
		res     Result
		postErr error
		ran     bool
	)
	_, _ = h.breaker.Execute(func() (struct{}, error) {
		ran = true
		res, postErr = h.post(callCtx, body, len(r.Rubric.Points))
		if postErr != nil && ctx.Err() != nil {
			return struct{}{}, errCallerGone // says nothing about the remote evaluator
		}
		return struct{}{}, postErr
	})
	if !ran { // open, or half-open with its probe in flight
		if telemetry.IsRecording(ctx) {
			telemetry.Event(ctx, "breaker rejected", attribute.String("breaker", h.breaker.Name()),
				attribute.String("breaker.state", h.breaker.State().String()))
		}
		return Result{}, errCircuitOpen
	}
	return res, postErr
}

func toRemote(r Request) remoteRequest {
	points := make([]remotePoint, len(r.Rubric.Points))
	for i, p := range r.Rubric.Points {
		points[i] = remotePoint(p)
		if p.Keywords == nil {
			points[i].Keywords = []string{} // [], not null
		}
	}
	return remoteRequest{
		QuestionID: r.QuestionID,
		Question:   r.Question,
		Category:   r.Category,
		Rubric:     remoteRubric{Points: points},
		Answer:     r.Answer,
	}
}

// failure is a failed remote call whose message, unlike err's, is ours: it becomes
// Result.Fallback, which callers store and show, so it must not carry addresses or the
// remote's words. Errors made with errors.New or fmt.Errorf here are ours too.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.reason }
func (f *failure) Unwrap() error { return f.err }

// post makes one call, timed as pgfleet_client_call_duration_seconds{peer="evaluator"},
// and checks the answer against a rubric of n points.
func (h *Hybrid) post(ctx context.Context, body []byte, n int) (_ Result, err error) {
	start, code := time.Now(), ""
	defer func() { h.m.observeCall(ctx, start, code, err) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, &failure{reason: "cannot build request", err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return Result{}, transportError(ctx, err)
	}
	code = strconv.Itoa(resp.StatusCode)
	defer func() {
		// Draining lets the connection be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return Result{}, &failure{reason: fmt.Sprintf("status %d", resp.StatusCode)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return Result{}, transportError(ctx, err)
	}
	if len(b) > maxResponseBytes {
		return Result{}, &failure{reason: "response over 1 MiB"}
	}
	var rr remoteResponse
	if err := json.Unmarshal(b, &rr); err != nil {
		reason := "bad JSON"
		if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
			reason = "bad JSON: wrong type for " + te.Field
		}
		return Result{}, &failure{reason: reason, err: err}
	}
	return rr.result(n)
}

// transportError classifies a failure to send the request or read the response: a
// timeout when the call's deadline, or the http.Client's own timeout, caused it.
func transportError(ctx context.Context, err error) error {
	var (
		ne  net.Error
		dns *net.DNSError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) || ctx.Err() != nil:
		return fmt.Errorf("%w: %w", errTimeout, err)
	case errors.As(err, &dns):
		return &failure{reason: "DNS lookup failed", err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &failure{reason: "connection refused", err: err}
	default:
		return &failure{reason: "connection failed", err: err}
	}
}

// result validates the response against a rubric of n points.
func (rr remoteResponse) result(n int) (Result, error) {
	switch {
	case rr.Score == nil:
		return Result{}, errors.New("response has no score")
	case rr.Met == nil:
		return Result{}, errors.New("response has no met")
	case !(*rr.Score >= 0 && *rr.Score <= 100):
		return Result{}, fmt.Errorf("score %v out of range [0, 100]", *rr.Score)
	}
	met := slices.Clone(*rr.Met)
	if met == nil {
		met = []int{}
	}
	slices.Sort(met)
	for i, m := range met {
		if m < 0 || m >= n {
			return Result{}, fmt.Errorf("met index %d out of range [0, %d)", m, n)
		}
		if i > 0 && met[i-1] == m {
			return Result{}, fmt.Errorf("duplicate met index %d", m)
		}
	}
	missed := make([]int, 0, n-len(met))
	for i := range n {
		if _, found := slices.BinarySearch(met, i); !found {
			missed = append(missed, i)
		}
	}
	return Result{
		Score:     round2(*rr.Score),
		Met:       met,
		Missed:    missed,
		Evaluator: EvaluatorRemote,
		Feedback:  rr.Feedback,
	}, nil
}
