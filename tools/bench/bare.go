package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served on its own loopback listener, for -profile
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// getStockSQL is the stock service's point read (services/stock/internal/store GetStock),
// used by every GetStock baseline.
const getStockSQL = `SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time FROM stock.stocks WHERE symbol = $1`

// runBare is `bench bare`: the thinnest servers of GetStock on pgx, in a process of their
// own as each service is, so neither shares the load generator's scheduler and GC. A bare
// gRPC server (the generated interface, one handler, no interceptors) and a bare net/http
// JSON handler on one pool, plus net/http/pprof on a third listener.
func runBare(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	dbURL := fs.String("db", "", "database URL")
	poolSize := fs.Int("pool", 20, "max connections")
	grpcAddr := fs.String("grpc", "127.0.0.1:0", "gRPC listen address")
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	pprofAddr := fs.String("pprof", "127.0.0.1:0", "pprof listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	pc, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		return err
	}
	pc.MaxConns = int32(*poolSize)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()

	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	stockv1.RegisterStockServiceServer(gs, &bareStock{pool: pool})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stocks/{symbol}", func(w http.ResponseWriter, r *http.Request) {
		st, err := getStock(r.Context(), pool, r.PathValue("symbol"))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, `{"message":"internal error"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct { //nolint:errchkjson // the client went away
			Stock jsonStock `json:"stock"`
		}{st})
	})
	hs := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", *pprofAddr)
	if err != nil {
		return err
	}
	ps := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(gl) }()
	go func() { errc <- hs.Serve(hl) }()
	go func() { errc <- ps.Serve(pl) }()
	fmt.Printf("bare: grpc %s http %s pprof %s\n", gl.Addr(), hl.Addr(), pl.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	gs.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx) //nolint:errcheck // exiting anyway
	_ = ps.Shutdown(sctx) //nolint:errcheck // exiting anyway
	return nil
}

// jsonStock is a stock as the gateway renders it (protojson: lowerCamel names, int64 as a
// string, RFC 3339 times).
type jsonStock struct {
	Symbol     string    `json:"symbol"`
	Name       string    `json:"name"`
	Sector     string    `json:"sector"`
	Industry   string    `json:"industry"`
	Exchange   string    `json:"exchange"`
	Currency   string    `json:"currency"`
	MarketCap  int64     `json:"marketCap,string"`
	CreateTime time.Time `json:"createTime"`
	UpdateTime time.Time `json:"updateTime"`
}

func getStock(ctx context.Context, pool *pgxpool.Pool, symbol string) (jsonStock, error) {
	var s jsonStock
	err := pool.QueryRow(ctx, getStockSQL, symbol).Scan(&s.Symbol, &s.Name, &s.Sector, &s.Industry,
		&s.Exchange, &s.Currency, &s.MarketCap, &s.CreateTime, &s.UpdateTime)
	return s, err
}

// bareStock is the thinnest StockService: GetStock only.
type bareStock struct {
	stockv1.UnimplementedStockServiceServer
	pool *pgxpool.Pool
}

func (b *bareStock) GetStock(ctx context.Context, req *stockv1.GetStockRequest) (*stockv1.GetStockResponse, error) {
	s, err := getStock(ctx, b.pool, req.GetSymbol())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, status.Error(codes.NotFound, "not found")
	}
	if err != nil {
		return nil, status.Error(codes.Internal, "internal error")
	}
	return &stockv1.GetStockResponse{Stock: &stockv1.Stock{
		Symbol: s.Symbol, Name: s.Name, Sector: s.Sector, Industry: s.Industry, Exchange: s.Exchange,
		Currency: s.Currency, MarketCap: s.MarketCap,
		CreateTime: timestamppb.New(s.CreateTime), UpdateTime: timestamppb.New(s.UpdateTime),
	}}, nil
}
