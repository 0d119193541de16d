package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// interceptors returns the unary and stream chains, outermost first: request id (so that
// every line logged for the call carries it), metrics, logging,
// reasons, malformed requests (before anything reads a request), recovery, default deadline
// (unary only), authorization, per-caller limits (after authorization, which names the
// caller, and inside the deadline a unary call waits in line within), validation, and for
// streams the end of health watches on shutdown. Recovery sits inside logging and metrics so
// that a panic is logged and counted like any other Internal; reasons sits outside all that
// can fail, so every status leaves with an ErrorInfo.
func (s *Server) interceptors(panics prometheus.Counter) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		s.log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall), // one line per call
		// Successful calls at debug: at thousands of calls a second an info line each costs
		// a tenth of the CPU and tens of MB of log a second. Failures keep their levels.
		logging.WithLevels(func(code codes.Code) logging.Level {
			if code == codes.OK {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(code)
		}),
		logging.WithDurationField(func(d time.Duration) logging.Fields {
			return logging.Fields{"grpc.time_ms", float64(d.Microseconds()) / 1000}
		}),
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		panics.Inc()
		// Logging put the call's fields (service, method, peer) in ctx; this line shares them.
		// The handler runs in the panicking goroutine before it unwinds, so the stack is the panic's.
		fields := append(logging.ExtractFields(ctx), "panic", p, "stack", string(debug.Stack()))
		s.log.ErrorContext(ctx, "panic in handler", fields...)
		return apierr.New(apierr.Internal, "internal error", nil) // never the panic text
	})
	// Latency samples of sampled calls carry their trace id as an exemplar.
	exemplar := grpcprom.WithExemplarFromContext(exemplarFromContext)
	unary := []grpc.UnaryServerInterceptor{
		requestIDUnary,
		s.metrics.UnaryServerInterceptor(exemplar),
		logging.UnaryServerInterceptor(logger, logOpts...),
		s.reasonUnary,
		malformedUnary,
		recovery.UnaryServerInterceptor(recoverOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		requestIDStream,
		s.metrics.StreamServerInterceptor(exemplar),
		logging.StreamServerInterceptor(logger, logOpts...),
		s.reasonStream,
		malformedStream,
		recovery.StreamServerInterceptor(recoverOpt),
	}
	if s.opts.DefaultTimeout > 0 {
		unary = append(unary, defaultDeadline(s.opts.DefaultTimeout))
	}
	if s.opts.Authorize != nil {
		unary = append(unary, authorizeUnary(s.opts.Authorize))
		stream = append(stream, authorizeStream(s.opts.Authorize))
	}
	if s.limiter != nil {
		unary = append(unary, s.limiter.unary)
		stream = append(stream, s.limiter.stream)
	}
	if s.opts.Validate != nil {
		unary = append(unary, validateUnary(s.opts.Validate))
		stream = append(stream, validateStream(s.opts.Validate))
	}
	if s.opts.Unary != nil {
		unary = append(unary, s.opts.Unary)
	}
	if s.opts.Stream != nil {
		stream = append(stream, s.opts.Stream)
	}
	stream = append(stream, s.endWatches)
	return unary, stream
}

func (s *Server) reasonUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, s.ensureReason(ctx, info.FullMethod, err)
}

func (s *Server) reasonStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return s.ensureReason(ss.Context(), info.FullMethod, handler(srv, ss))
}

// ensureReason is the safety net behind "every error carries exactly one ErrorInfo"
// (AIP-193): a status without one, such as grpc's own or an unclassified error's, gets the
// reason its code stands for (apierr.Ensure), and the miss is counted and logged at debug
// so it can be given a reason of its own. Options.MissingReason hears of misses in our own
// services; grpc's health and reflection services answer without reasons.
func (s *Server) ensureReason(ctx context.Context, fullMethod string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	fixed, ok := apierr.Ensure(st)
	if ok {
		return err
	}
	s.withoutReason.WithLabelValues(fullMethod, st.Code().String()).Inc()
	s.log.DebugContext(ctx, "status without exactly one ErrorInfo", "grpc.method", fullMethod,
		"grpc.code", st.Code().String(), "err", st.Message(), "error_infos", apierr.Count(st))
	if s.opts.MissingReason != nil && !strings.HasPrefix(fullMethod, "/grpc.") {
		s.opts.MissingReason(ctx, fullMethod, st)
	}
	return fixed.Err()
}

// endWatches ends watch streams once shutdown begins: grpc.health.v1.Health/Watch, and the
// services' own Watch* methods (WatchLatestPrices, WatchStockEvents...). They never end on their
// own, so they would otherwise hold GracefulStop for the whole Drain on every shutdown. A
// service's watch ends UNAVAILABLE SHUTTING_DOWN: its client reconnects, to another replica,
// and resumes (from its cursor, or with a fresh snapshot).
func (s *Server) endWatches(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	own := isWatch(info.FullMethod)
	if info.FullMethod != healthgrpc.Health_Watch_FullMethodName && !own {
		return handler(srv, ss)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(s.draining, cancel)()
	err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	if own && s.draining.Err() != nil && ss.Context().Err() == nil {
		return apierr.New(apierr.ShuttingDown, "the server is shutting down: reconnect and resume", nil)
	}
	return err
}

// isWatch reports whether fullMethod ("/pkg.Service/Method") is one of the services' watch
// streams: a method named Watch..., outside grpc's own services.
func isWatch(fullMethod string) bool {
	if strings.HasPrefix(fullMethod, "/grpc.") {
		return false
	}
	i := strings.LastIndexByte(fullMethod, '/')
	return i >= 0 && strings.HasPrefix(fullMethod[i+1:], "Watch")
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// defaultDeadline gives calls without a deadline one of d, and leaves the caller's alone.
func defaultDeadline(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return handler(ctx, req)
	}
}

func authorizeUnary(authorize func(context.Context, string) (context.Context, error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func authorizeStream(authorize func(context.Context, string) (context.Context, error)) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

func validateUnary(validate func(any) error) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := validationError(info.FullMethod, validate(req)); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// validateStream checks the single request of server-streaming calls. Client streams are
// left alone: a batch's messages are checked by the service, which knows how to report them.
func validateStream(validate func(any) error) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.IsClientStream {
			return handler(srv, ss)
		}
		return handler(srv, &validatingStream{ServerStream: ss, validate: validate, method: info.FullMethod})
	}
}

type validatingStream struct {
	grpc.ServerStream
	validate func(any) error
	method   string
}

func (v *validatingStream) RecvMsg(m any) error {
	if err := v.ServerStream.RecvMsg(m); err != nil {
		// The generated handler returns this error as is: a client that cancels before its
		// request arrives gets grpc's CANCELLED, given its reason here.
		if st, ok := status.FromError(err); ok && err != io.EOF {
			fixed, _ := apierr.Ensure(st)
			return fixed.Err()
		}
		return err
	}
	return validationError(v.method, v.validate(m))
}

// validationError keeps an error that carries a status and makes any other InvalidArgument.
// A service's Validate fails closed on a request it has no case for (validate.NoRule); grpc's
// own services (health, reflection), which every server carries and no service's Validate
// knows, pass it, as pkg/auth leaves them open.
func validationError(fullMethod string, err error) error {
	if err == nil || (errors.Is(err, validate.ErrNoRule) && strings.HasPrefix(fullMethod, "/grpc.")) {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return apierr.New(apierr.InvalidArgument, err.Error(), nil)
}
