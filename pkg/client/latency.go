package client

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/latency"
)

// NewCallDuration returns pgfleet_client_call_duration_seconds for calls to one peer, by
// method and code, in the fleet's latency buckets. The peer is a constant label, as on the
// other client metrics, so that every peer's histogram registers on one registry. Dial
// makes one per gRPC peer; callers of other protocols (the interview service's HTTP
// evaluator) make their own and label code with the HTTP status or an error class.
func NewCallDuration(peer string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pgfleet_client_call_duration_seconds",
		Help: "Outbound calls that went out to the peer (breaker rejections excluded), from start to " +
			"final status, retries included, by method and code: gRPC code, HTTP status or error class.",
		ConstLabels: prometheus.Labels{"peer": peer},
		Buckets:     latency.Buckets,
	}, []string{"method", "code"})
}

// timeUnary times one unary call. It runs inside unary, so it sees only the calls the
// breaker let through, under their deadline; gRPC's retry attempts happen inside invoker
// and count as one call.
func (c *Client) timeUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	c.observe(method, start, err)
	return err
}

// timeStream times a stream from its start to its final status, as gRPC reports it to
// OnFinish: read to the end, failed, or cancelled by its caller's context. A stream its
// caller neither reads out nor cancels is never recorded (gRPC leaks such a stream too).
func (c *Client) timeStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	var once sync.Once
	done := func(err error) { once.Do(func() { c.observe(method, start, err) }) }
	cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.OnFinish(done))...)
	if err != nil {
		done(err) // an interceptor inside this one may fail before gRPC sees the call
		return nil, err
	}
	return cs, nil
}

func (c *Client) observe(method string, start time.Time, err error) {
	c.m.duration.WithLabelValues(strings.TrimPrefix(method, "/"), callCode(err)).
		Observe(time.Since(start).Seconds())
}

// callCode is the gRPC code name of err, "OK" for nil; a context error maps as gRPC maps it.
func callCode(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if _, ok := status.FromError(err); !ok {
			return status.FromContextError(err).Code().String()
		}
	}
	return status.Code(err).String()
}
