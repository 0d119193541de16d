package main

import (
	"context"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// upstreams are the connections to the services, in the order /health lists them.
type upstreams struct {
	list    []gateway.Upstream
	clients []*client.Client
}

// dialUpstreams connects (lazily, as grpc.NewClient does) to every service. The generated
// Register*HandlerClient functions route each REST path to its service; DatabaseMonitor's
// generated /v1/database/status is left out, because that one path could name only one of
// the three services: /monitoring/database asks them all.
func dialUpstreams(cfg config, reg prometheus.Registerer) (*upstreams, error) {
	specs := []struct {
		name     string
		cfg      client.Config
		register func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error
	}{
		{"stock", cfg.Stock, func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return stockv1.RegisterStockServiceHandlerClient(ctx, mux, stockv1.NewStockServiceClient(cc))
		}},
		{"portfolio", cfg.Portfolio, func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return portfoliov1.RegisterPortfolioServiceHandlerClient(ctx, mux, portfoliov1.NewPortfolioServiceClient(cc))
		}},
		{"interview", cfg.Interview, func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			if err := interviewv1.RegisterQuestionBankServiceHandlerClient(ctx, mux, interviewv1.NewQuestionBankServiceClient(cc)); err != nil {
				return err
			}
			return interviewv1.RegisterInterviewServiceHandlerClient(ctx, mux, interviewv1.NewInterviewServiceClient(cc))
		}},
	}
	u := &upstreams{}
	for _, s := range specs {
		c, err := client.Dial(s.name, s.cfg, reg)
		if err != nil {
			u.close()
			return nil, err
		}
		u.clients = append(u.clients, c)
		u.list = append(u.list, gateway.Upstream{
			Name:     s.name,
			Conn:     streamDeadline{ClientConnInterface: c, timeout: cfg.StreamTimeout},
			Register: s.register,
		})
	}
	return u, nil
}

func (u *upstreams) close() {
	for _, c := range u.clients {
		c.Close()
	}
}

// streamDeadline gives each stream opened through it a deadline (STREAM_TIMEOUT), or keeps
// the caller's if that is sooner. pkg/client gives a stream its short unary TIMEOUT only when
// the caller set no deadline, which would cut a long NDJSON export; no deadline at all would
// let a stalled one run forever.
type streamDeadline struct {
	grpc.ClientConnInterface
	timeout time.Duration
}

func (s streamDeadline) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	cs, err := s.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	context.AfterFunc(cs.Context(), cancel) // gRPC ends the stream's context when it is over
	return cs, nil
}
