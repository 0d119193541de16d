// Package client dials another pgfleet service the way every caller should: a deadline on
// every call, gRPC's own retries for UNAVAILABLE, and a circuit breaker that fails fast
// while the peer is down.
//
// gRPC retries a call that failed with UNAVAILABLE even when the peer may have run part of
// it, so it retries only the methods whose proto says a retry is safe: idempotency_level
// NO_SIDE_EFFECTS or IDEMPOTENT (see Retryable). Any other method is tried once.
package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// Backoff between gRPC's retry attempts: 50ms, 100ms, 200ms ... at most 1s, each
// randomized by gRPC.
const (
	initialBackoff    = 50 * time.Millisecond
	maxBackoff        = time.Second
	backoffMultiplier = 2
)

// Config is how a service reaches one peer. A service embeds one per peer under an env
// prefix: the field tag Stock client.Config `env:", prefix=STOCK_"` reads STOCK_ADDR,
// STOCK_TIMEOUT and so on.
type Config struct {
	// Addr is the peer's host:port (any grpc.NewClient target works).
	Addr string `env:"ADDR, required" help:"the peer service's gRPC target, host:port (dns:///name:port balances over replicas)"`
	// Timeout is the deadline of a unary call whose caller set none or a later one. A
	// stream gets it only when its caller set no deadline, so that long streams stay possible.
	Timeout time.Duration `env:"TIMEOUT, default=2s" help:"deadline of each unary call to the peer"`
	// MaxAttempts bounds gRPC's attempts per call (first try included) on UNAVAILABLE, for
	// the methods that may be retried (Retryable); 1 turns retries off.
	MaxAttempts int `env:"RETRY_MAX_ATTEMPTS, default=3" help:"gRPC attempts on UNAVAILABLE of an RPC whose proto declares an idempotency_level; 1: no retries"`

	// Breaker opens on the share of calls that found the peer unavailable (<PEER>_BREAKER_*);
	// unset, MinRequests and OpenTimeout are BreakerDefaults.
	Breaker breaker.Config `env:", prefix=BREAKER_"`

	// TLSCAFile turns TLS on: the peer's certificate must chain to this PEM bundle. Empty
	// means plaintext, the default for local runs.
	TLSCAFile string `env:"TLS_CA_FILE" help:"PEM bundle the peer's certificate must chain to; turns TLS on; empty: plaintext"`
	// TLSServerName overrides the name checked in the peer's certificate (default: Addr's host).
	TLSServerName string `env:"TLS_SERVER_NAME" help:"name checked in the peer's certificate (default: the address's host)"`
}

func (cfg Config) validate() error {
	switch {
	case cfg.Addr == "":
		return errors.New("missing Addr")
	case cfg.Timeout <= 0:
		return fmt.Errorf("want Timeout > 0, got %v", cfg.Timeout)
	case cfg.MaxAttempts < 1:
		return fmt.Errorf("want MaxAttempts >= 1, got %d", cfg.MaxAttempts)
	}
	return cfg.Breaker.With(BreakerDefaults).Validate()
}

// BreakerDefaults are a peer breaker's <PEER>_BREAKER_MIN_REQUESTS (5) and
// <PEER>_BREAKER_OPEN_TIMEOUT (5s) when unset.
var BreakerDefaults = breaker.Defaults{MinRequests: 5, OpenTimeout: 5 * time.Second}

// EnvDefaults are BreakerDefaults as settings under the peer's prefix, for --help (see
// app.Settings).
func (Config) EnvDefaults() map[string]string { return BreakerDefaults.Env("BREAKER_") }

// Client is a connection to one peer. It embeds *grpc.ClientConn, so it can be passed to
// generated New*Client functions and closed with Close.
type Client struct {
	*grpc.ClientConn

	timeout  time.Duration
	breaker  *gobreaker.CircuitBreaker[struct{}]
	rejected error // returned while the breaker is open
	m        *metrics
}

// Dial returns a Client for the peer at cfg.Addr; like grpc.NewClient it connects lazily.
// name (e.g. "stock") labels the metrics and starts the breaker's error message. The
// metrics are registered on reg unless it is nil; one registry takes any number of peers,
// each name once. opts come after Dial's own, e.g. grpc.WithPerRPCCredentials for the
// caller's service token.
//
// Calls are balanced round-robin over every address the target resolves to, so a
// "dns:///stock-headless:50051" target spreads calls across all replicas behind a headless
// Kubernetes Service instead of pinning one.
func Dial(name string, cfg Config, reg prometheus.Registerer, opts ...grpc.DialOption) (*Client, error) {
	if name == "" {
		return nil, errors.New("client: name is required")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("client %q: %w", name, err)
	}
	sc, err := serviceConfig(cfg.MaxAttempts, retryable())
	if err != nil {
		return nil, fmt.Errorf("client %q: %w", name, err)
	}

	bc := cfg.Breaker.With(BreakerDefaults)
	c := &Client{
		timeout: cfg.Timeout,
		rejected: apierr.Newf(apierr.PeerUnavailable, map[string]string{"peer": name, "breaker": "open"},
			"%s unavailable: circuit breaker open after repeated failures, retry in a few seconds", name).
			WithRetry(*bc.OpenTimeout), // when the breaker lets a probe through
	}
	c.breaker = breaker.New(name, bc, nil, func(err error) bool { return errors.Is(err, errCallerGone) })
	c.m = newMetrics(name, c.breaker.State)

	creds := insecure.NewCredentials()
	if cfg.TLSCAFile != "" {
		if creds, err = credentials.NewClientTLSFromFile(cfg.TLSCAFile, cfg.TLSServerName); err != nil {
			return nil, fmt.Errorf("client %q: TLS_CA_FILE: %w", name, err)
		}
	}
	own := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Our retry and balancing policy, not one a resolver (DNS TXT records) might supply.
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithChainUnaryInterceptor(c.unary, c.timeUnary),
		grpc.WithChainStreamInterceptor(c.stream, c.timeStream),
	}
	if cfg.MaxAttempts > 1 {
		own = append(own, grpc.WithMaxCallAttempts(cfg.MaxAttempts)) // else gRPC caps the policy at 5
	}
	own = append(own, telemetry.ClientDialOptions()...) // client spans and traceparent, when tracing is on
	conn, err := grpc.NewClient(cfg.Addr, append(own, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client %q: %w", name, err)
	}
	c.ClientConn = conn
	if reg != nil {
		if err := c.m.register(reg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("client %q: register metrics: %w", name, err)
		}
	}
	return c, nil
}

// BreakerState returns "closed", "half-open" or "open", for the ops API.
func (c *Client) BreakerState() string { return c.breaker.State().String() }

var (
	// errPeerDown and errCallerGone tell the breaker how a call ended; callers never see them.
	errPeerDown   = errors.New("peer unavailable")
	errCallerGone = errors.New("caller gave up")
)

// unary runs one call, gRPC's retries included, under the deadline and through the breaker.
func (c *Client) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = withRequestID(ctx)
	callCtx, cancel := ctx, context.CancelFunc(func() {})
	d, ok := ctx.Deadline()
	ours := !ok || time.Until(d) > c.timeout
	if ours {
		callCtx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()

	var err error
	ran := false
	_, _ = c.breaker.Execute(func() (struct{}, error) {
		ran = true
		err = invoker(callCtx, method, req, reply, cc, opts...)
		return struct{}{}, outcome(ctx, ours, err)
	})
	if !ran { // open, or half-open with its probe in flight
		c.m.rejections.Inc()
		c.rejectedEvent(ctx)
		err = c.rejected
	}
	c.m.calls.WithLabelValues(status.Code(err).String()).Inc()
	return err
}

// outcome classifies a finished call for the breaker, given the caller's own context and
// whether the deadline in force was ours.
func outcome(caller context.Context, ours bool, err error) error {
	if err == nil {
		return nil
	}
	// A caller that cancels, or runs out of a deadline shorter than Timeout, says nothing
	// about the peer. The deadline is judged by whose it was, not by caller.Err(): the
	// peer's DeadlineExceeded can arrive just before the caller's timer fires.
	if caller.Err() != nil || (!ours && status.Code(err) == codes.DeadlineExceeded) {
		return errCallerGone
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return errPeerDown
	}
	return nil // NotFound, InvalidArgument...: the peer is up and answering
}

// stream fails fast while the breaker is open but does not feed it: how a stream ends says
// little about the peer at any one moment, and connection recycling cuts long streams.
func (c *Client) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.breaker.State() == gobreaker.StateOpen {
		c.m.rejections.Inc()
		c.rejectedEvent(ctx)
		return nil, c.rejected
	}
	ctx = withRequestID(ctx)
	if _, ok := ctx.Deadline(); ok {
		return streamer(ctx, desc, cc, method, opts...)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	// gRPC cancels the stream's context once the stream is over.
	context.AfterFunc(cs.Context(), cancel)
	return cs, nil
}

// rejectedEvent notes on the caller's span that the breaker refused the call.
func (c *Client) rejectedEvent(ctx context.Context) {
	if telemetry.IsRecording(ctx) {
		telemetry.Event(ctx, "breaker rejected", attribute.String("breaker", c.breaker.Name()),
			attribute.String("breaker.state", c.breaker.State().String()))
	}
}

// withRequestID sends the request id of the call being served (see pkg/server) to the peer.
func withRequestID(ctx context.Context) context.Context {
	id := telemetry.RequestID(ctx)
	if id == "" {
		return ctx
	}
	// No check for an x-request-id the caller set itself: reading the outgoing metadata copies
	// it all (11 allocations, 0.5 µs a call); the server takes the first value, the caller's.
	return metadata.AppendToOutgoingContext(ctx, telemetry.RequestIDKey, id)
}

type jsonServiceConfig struct {
	LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
	MethodConfig        []jsonMethodConfig    `json:"methodConfig,omitempty"`
}

func (sc jsonServiceConfig) encode() (string, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("encode service config: %w", err)
	}
	return string(b), nil
}

type jsonMethodConfig struct {
	Name        []jsonName      `json:"name"`
	RetryPolicy jsonRetryPolicy `json:"retryPolicy"`
}

type jsonName struct {
	Service string `json:"service,omitempty"`
	Method  string `json:"method,omitempty"`
}

type jsonRetryPolicy struct {
	MaxAttempts          int      `json:"maxAttempts"`
	InitialBackoff       string   `json:"initialBackoff"`
	MaxBackoff           string   `json:"maxBackoff"`
	BackoffMultiplier    float64  `json:"backoffMultiplier"`
	RetryableStatusCodes []string `json:"retryableStatusCodes"`
}

// serviceConfig returns the gRPC service config JSON: round-robin balancing, and a retry
// policy for the methods named, unless maxAttempts is 1 (gRPC rejects a policy with fewer
// than 2 attempts). A method named in no policy is never retried.
func serviceConfig(maxAttempts int, methods []jsonName) (string, error) {
	sc := jsonServiceConfig{LoadBalancingConfig: []map[string]struct{}{{"round_robin": {}}}}
	if maxAttempts < 2 || len(methods) == 0 {
		return sc.encode()
	}
	sc.MethodConfig = []jsonMethodConfig{{
		Name: methods,
		RetryPolicy: jsonRetryPolicy{
			MaxAttempts:          maxAttempts,
			InitialBackoff:       seconds(initialBackoff),
			MaxBackoff:           seconds(maxBackoff),
			BackoffMultiplier:    backoffMultiplier,
			RetryableStatusCodes: []string{"UNAVAILABLE"},
		},
	}}
	return sc.encode()
}

// seconds formats d as the service config's JSON duration, e.g. "0.05s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// Retryable reports whether a retry of m is safe, as its proto declares: idempotency_level
// NO_SIDE_EFFECTS (a read) or IDEMPOTENT (a write whose repeat changes nothing more). The
// protos say which of their writes are (an upsert by key, a required request_id).
func Retryable(m protoreflect.MethodDescriptor) bool {
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	return ok && opts.GetIdempotencyLevel() != descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
}

// retryable names every Retryable method of the services linked into the binary: a
// generated package registers its descriptors when it is imported, which calling its client
// takes. Sorted, so that the service config reads the same on every Dial.
func retryable() []jsonName {
	var names []jsonName
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				if m := svc.Methods().Get(j); Retryable(m) {
					names = append(names, jsonName{Service: string(svc.FullName()), Method: string(m.Name())})
				}
			}
		}
		return true
	})
	slices.SortFunc(names, func(a, b jsonName) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Method, b.Method))
	})
	return names
}
