package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// The gRPC bad-input table (issue 12, "What to build"; the REST side is testBadInput): every
// method of every service in the generated descriptors (stock, portfolio, interview and the
// DatabaseMonitor each of them serves) is called on the real service processes, on their
// own databases, with requests built from the message descriptors alone:
//
//   - the method's valid request (rpcFixtures; a method without one fails the test), which
//     must succeed as an admin, so that the variants below reach validation and handlers;
//   - variants of it, one thing wrong in each, for every field, nested ones and the first
//     element of repeated ones too, set or not in the valid request: strings with a NUL,
//     control characters, 10,000 characters or 1 MiB, and not UTF-8 (only as raw bytes: no
//     generated client can send them); boundary decimals in decimal fields; broken filters,
//     orderings and page tokens; huge, negative and zero numbers, NaN and infinities;
//     enum values out of range; timestamps out of range; unset and empty messages; empty,
//     duplicated and oversized repeated fields; and the whole message as bytes that are not
//     protobuf. The valid request and a subset of variants are also sent without a token.
//
// Every answer must be OK or an error that is not INTERNAL, UNKNOWN, DATA_LOSS, UNAVAILABLE
// or DEADLINE_EXCEEDED (the fleet is up and idle), carrying exactly one ErrorInfo of domain
// pgfleet.dev whose reason is one apierr defines for that code; bytes that are not protobuf,
// or a string that is not UTF-8, must be INVALID_ARGUMENT MALFORMED_REQUEST. A request to a
// method that writes is bracketed by checksums of every table of its service's database: an
// error must leave them as they were (a variant the service takes may change them; each
// carries a request_id of its own, so that the business checks are reached, not a repeat).
// Nothing is random; failures are reported as one table.

// rpcService is one service process of the table, its database and a connection to it.
type rpcService struct {
	name string
	proc *apptest.Process
	db   *pgxpool.Pool
	conn *grpc.ClientConn
	// snapshotSQL checksums every table of the service's schema in one round trip.
	snapshotSQL string
}

// rpcFleet is the three services of the table, each on a database the test can read.
type rpcFleet struct {
	stock, portfolio, interview *rpcService
}

func startRPCFleet(t *testing.T, binDir string) *rpcFleet {
	t.Helper()
	start := func(name string, env ...string) *rpcService {
		url := pgtest.NewDBURL(t)
		s := &rpcService{name: name}
		s.proc = apptest.StartProcess(t, binDir+"/"+name, append([]string{"DATABASE_URL=" + url}, env...)...)
		var err error
		if s.db, err = pgxpool.New(t.Context(), url); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.db.Close)
		s.conn = apptest.Dial(t, s.proc.Addr)
		// Tables, not partitions (the parent reads them); goose's bookkeeping is not data. The
		// outbox counts by its events' ids alone: the sequencer numbers a valid write's events
		// after its commit, on its own time (position, outbox_head), while a refused write must
		// add no event.
		err = s.db.QueryRow(t.Context(), `
			SELECT string_agg(format('SELECT %L, count(*), coalesce(md5(string_agg(%s::text, %L ORDER BY %s::text)), %L) FROM %I.%I x',
				n.nspname || '.' || c.relname, col, E'\n', col, '', n.nspname, c.relname), ' UNION ALL ' ORDER BY n.nspname, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
				LATERAL (SELECT CASE c.relname WHEN 'outbox' THEN 'x.id' ELSE 'x' END AS col) k
			WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT IN ('goose_db_version', 'outbox_head')
				AND n.nspname NOT IN ('information_schema', 'public') AND n.nspname NOT LIKE 'pg\_%'`).Scan(&s.snapshotSQL)
		if err != nil || s.snapshotSQL == "" {
			t.Fatalf("%s: list tables: %v (%q)", name, err, s.snapshotSQL)
		}
		return s
	}
	f := &rpcFleet{stock: start("stock")}
	f.portfolio = start("portfolio", "STOCK_ADDR="+f.stock.proc.Addr, "STOCK_TIMEOUT=10s")
	f.interview = start("interview")
	return f
}

// snapshot returns each table's row count and checksum.
func (s *rpcService) snapshot(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.Query(ctx, s.snapshotSQL)
	if err != nil {
		return nil, fmt.Errorf("%s: snapshot: %w", s.name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var table, sum string
		var n int64
		if err := rows.Scan(&table, &n, &sum); err != nil {
			return nil, fmt.Errorf("%s: snapshot: %w", s.name, err)
		}
		out[table] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: snapshot: %w", s.name, err)
	}
	return out, nil
}

// rpcFixture is the data the valid requests name, made through the APIs as an admin.
type rpcFixture struct {
	userID, portfolio         int64
	question, questionChanged int64 // a seed question read; one updated
	questionDeleted           int64
	session, sessionQuestion  int64 // in progress, with a question not answered yet
	sessionCompleted          int64 // completed by the valid CompleteSession
}

// rpcAdmin is the subject of the table's admin token.
const rpcAdmin = "rpc-admin@pgfleet.test"

func newRPCFixture(t *testing.T, f *rpcFleet) *rpcFixture {
	t.Helper()
	ctx := t.Context()
	admin := authtest.As(t, rpcAdmin, auth.RoleAdmin)
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %s: %v", what, err)
		}
	}

	sc := stockv1.NewStockServiceClient(f.stock.conn)
	_, err := sc.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{
		{Symbol: "AAPL", Name: "Apple Inc.", Sector: "Technology", Industry: "Consumer Electronics", Exchange: "NASDAQ", Currency: "USD", MarketCap: 3e12},
		{Symbol: "MSFT", Name: "Microsoft Corp.", Sector: "Technology", Industry: "Software", Exchange: "NASDAQ", Currency: "USD", MarketCap: 2e12},
		{Symbol: "JPM", Name: "JPMorgan Chase & Co.", Sector: "Financials", Exchange: "NYSE", Currency: "USD", MarketCap: 6e11},
		{Symbol: "ZZRPC", Name: "RPC Corp.", Currency: "USD"},
		{Symbol: "ZZDEL", Name: "Deleted Corp.", Currency: "USD"},
	}}, admin)
	must(err, "stocks")
	ingest, err := sc.IngestPrices(ctx, admin)
	must(err, "prices")
	var bars []*stockv1.Price
	for _, sym := range []string{"AAPL", "MSFT", "ZZDEL"} {
		for d := range 5 {
			c := fmt.Sprintf("%d.25", 150+d)
			bars = append(bars, &stockv1.Price{Symbol: sym, Time: rpcDay(d - 5),
				Open: c, High: c, Low: c, Close: c, Volume: int64(1000 + d)})
		}
	}
	must(ingest.Send(&stockv1.IngestPricesRequest{Prices: bars}), "send prices")
	_, err = ingest.CloseAndRecv()
	must(err, "prices")
	_, err = sc.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{
		{Symbol: "AAPL", Source: "analyst-1", Action: stockv1.Action_ACTION_BUY, TargetPrice: "200", Confidence: 0.7, Rationale: "Services."},
		{Symbol: "MSFT", Source: "analyst-1", Action: stockv1.Action_ACTION_HOLD, Confidence: 0.5},
	}}, admin)
	must(err, "recommendations")

	fx := &rpcFixture{}
	pc := portfoliov1.NewPortfolioServiceClient(f.portfolio.conn)
	u, err := pc.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "rpc-user@example.com", DisplayName: "RPC User"}, admin)
	must(err, "user")
	fx.userID = u.GetUser().GetId()
	p, err := pc.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: fx.userID, Name: "RPC", Currency: "USD"}, admin)
	must(err, "portfolio")
	fx.portfolio = p.GetPortfolio().GetId()
	_, err = pc.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: fx.portfolio, Amount: "100000", RequestId: "seed-deposit"}, admin)
	must(err, "deposit")
	for i := range 2 {
		_, err = pc.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: fx.portfolio, Symbol: "AAPL",
			Side: portfoliov1.Side_SIDE_BUY, Quantity: "2", RequestId: fmt.Sprintf("seed-trade-%d", i)}, admin)
		must(err, "trade")
	}

	qc := interviewv1.NewQuestionBankServiceClient(f.interview.conn)
	question := func(key, category string) *interviewv1.Question {
		return &interviewv1.Question{Key: key, Text: "What does an inner join return? (" + key + ")", Category: category, Difficulty: 1,
			Tags: []string{"joins"}, Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
				{Description: "Only matching rows", Weight: 1, Keywords: []string{"matching rows"}}}}}
	}
	var ids []int64
	for _, key := range []string{"rpc-seed-1", "rpc-seed-2", "rpc-seed-3", "rpc-changed", "rpc-deleted"} {
		category := "SQL"
		if key == "rpc-deleted" {
			category = "Unused" // in no session, so that it can be deleted
		}
		q, err := qc.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: question(key, category)}, admin)
		must(err, "question "+key)
		ids = append(ids, q.GetQuestion().GetId())
	}
	fx.question, fx.questionChanged, fx.questionDeleted = ids[0], ids[3], ids[4]
	ic := interviewv1.NewInterviewServiceClient(f.interview.conn)
	start := func() *interviewv1.Session {
		s, err := ic.StartSession(ctx, &interviewv1.StartSessionRequest{Criteria: &interviewv1.Criteria{Categories: []string{"SQL"}, Count: 3}}, admin)
		must(err, "session")
		return s.GetSession()
	}
	s := start()
	fx.session = s.GetId()
	_, err = ic.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: fx.session, QuestionId: s.GetQuestions()[0].GetQuestionId(),
		Answer: "Only the matching rows"}, admin)
	must(err, "answer")
	fx.sessionQuestion = s.GetQuestions()[1].GetQuestionId()
	fx.sessionCompleted = start().GetId()
	return fx
}

// rpcDay is midnight UTC d days from today: prices must be recent for trades (MAX_PRICE_AGE).
func rpcDay(d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, d))
}

// rpcFixtures are the valid requests by method: reads of the seed data, and writes of rows
// made for them (a stock, questions and a session to change or delete).
func rpcFixtures(fx *rpcFixture) map[string]func() proto.Message {
	question := func(key string) *interviewv1.Question {
		return &interviewv1.Question{Key: key, Text: "What does a left join return?", Category: "SQL", Difficulty: 2,
			Tags: []string{"joins", "outer"}, Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
				{Description: "Unmatched rows too", Weight: 2, Keywords: []string{"unmatched", "null"}}}}}
	}
	status := func() proto.Message { return &opsv1.GetDatabaseStatusRequest{} }
	return map[string]func() proto.Message{
		stockv1.StockService_GetStock_FullMethodName: func() proto.Message { return &stockv1.GetStockRequest{Symbol: "AAPL"} },
		stockv1.StockService_ListStocks_FullMethodName: func() proto.Message {
			return &stockv1.ListStocksRequest{Filter: `sector = "Technology"`, OrderBy: "market_cap desc", PageSize: 1}
		},
		stockv1.StockService_BatchGetStocks_FullMethodName: func() proto.Message {
			return &stockv1.BatchGetStocksRequest{Symbols: []string{"AAPL", "MSFT"}}
		},
		stockv1.StockService_UpsertStocks_FullMethodName: func() proto.Message {
			return &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "ZZRPC", Name: "RPC Corp.", Sector: "Technology",
				Industry: "Software", Exchange: "NASDAQ", Currency: "USD", MarketCap: 1e9}}}
		},
		stockv1.StockService_DeleteStock_FullMethodName: func() proto.Message { return &stockv1.DeleteStockRequest{Symbol: "ZZDEL"} },
		stockv1.StockService_IngestPrices_FullMethodName: func() proto.Message {
			return &stockv1.IngestPricesRequest{Prices: []*stockv1.Price{{Symbol: "ZZRPC", Time: rpcDay(0),
				Open: "1.5", High: "2", Low: "1.25", Close: "1.75", Volume: 10}}}
		},
		stockv1.StockService_ListPrices_FullMethodName: func() proto.Message {
			return &stockv1.ListPricesRequest{Symbol: "AAPL", StartTime: rpcDay(-30), EndTime: rpcDay(1), PageSize: 2}
		},
		stockv1.StockService_ListBars_FullMethodName: func() proto.Message {
			return &stockv1.ListBarsRequest{Symbol: "AAPL", Interval: stockv1.Interval_INTERVAL_WEEK, StartTime: rpcDay(-30), EndTime: rpcDay(1), PageSize: 2}
		},
		stockv1.StockService_StreamPrices_FullMethodName: func() proto.Message {
			return &stockv1.StreamPricesRequest{Symbol: "AAPL", StartTime: rpcDay(-30), EndTime: rpcDay(1), BatchSize: 2}
		},
		stockv1.StockService_ExportPrices_FullMethodName: func() proto.Message {
			return &stockv1.ExportPricesRequest{Filter: `symbol = "AAPL"`, StartTime: rpcDay(-30), EndTime: rpcDay(1), BatchSize: 2}
		},
		stockv1.StockService_WatchLatestPrices_FullMethodName: func() proto.Message {
			return &stockv1.WatchLatestPricesRequest{Symbols: []string{"AAPL", "MSFT"}}
		},
		stockv1.StockService_WatchStockEvents_FullMethodName: func() proto.Message {
			return &stockv1.WatchStockEventsRequest{Types: []string{"pgfleet.stock.v1.LatestPriceChanged"}}
		},
		portfoliov1.PortfolioService_WatchPortfolio_FullMethodName: func() proto.Message {
			return &portfoliov1.WatchPortfolioRequest{PortfolioId: fx.portfolio}
		},
		portfoliov1.PortfolioService_WatchPortfolioEvents_FullMethodName: func() proto.Message {
			return &portfoliov1.WatchPortfolioEventsRequest{FromOldest: true}
		},
		interviewv1.InterviewService_WatchSession_FullMethodName: func() proto.Message {
			return &interviewv1.WatchSessionRequest{SessionId: fx.session}
		},
		interviewv1.InterviewService_WatchInterviewEvents_FullMethodName: func() proto.Message {
			return &interviewv1.WatchInterviewEventsRequest{}
		},
		stockv1.StockService_GetLatestPrices_FullMethodName: func() proto.Message {
			return &stockv1.GetLatestPricesRequest{Symbols: []string{"AAPL", "MSFT"}}
		},
		stockv1.StockService_ListRecommendations_FullMethodName: func() proto.Message {
			return &stockv1.ListRecommendationsRequest{Filter: `action = "ACTION_BUY" OR confidence > 0.1`, OrderBy: "confidence desc", PageSize: 1}
		},
		stockv1.StockService_ListRecommendationHistory_FullMethodName: func() proto.Message {
			return &stockv1.ListRecommendationHistoryRequest{Filter: `symbol = "AAPL" AND predict_time >= "2000-01-01T00:00:00Z"`, OrderBy: "predict_time", PageSize: 1}
		},
		stockv1.StockService_UpsertRecommendations_FullMethodName: func() proto.Message {
			return &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{{Symbol: "AAPL", Source: "rpc-analyst",
				Action: stockv1.Action_ACTION_BUY, TargetPrice: "200.5", Confidence: 0.8, Rationale: "Services grow.\nMargins hold."}}}
		},

		portfoliov1.PortfolioService_CreateUser_FullMethodName: func() proto.Message {
			return &portfoliov1.CreateUserRequest{Email: "rpc-new@example.com", DisplayName: "RPC New"}
		},
		portfoliov1.PortfolioService_GetUser_FullMethodName: func() proto.Message {
			return &portfoliov1.GetUserRequest{UserId: fx.userID}
		},
		portfoliov1.PortfolioService_CreatePortfolio_FullMethodName: func() proto.Message {
			return &portfoliov1.CreatePortfolioRequest{UserId: fx.userID, Name: "RPC second", Currency: "USD", RequestId: "rpc-create-portfolio"}
		},
		portfoliov1.PortfolioService_GetPortfolio_FullMethodName: func() proto.Message {
			return &portfoliov1.GetPortfolioRequest{PortfolioId: fx.portfolio}
		},
		portfoliov1.PortfolioService_ListPortfolios_FullMethodName: func() proto.Message {
			return &portfoliov1.ListPortfoliosRequest{Filter: `currency = "USD"`, OrderBy: "name desc", PageSize: 1}
		},
		portfoliov1.PortfolioService_Deposit_FullMethodName: func() proto.Message {
			return &portfoliov1.DepositRequest{PortfolioId: fx.portfolio, Amount: "10.5", RequestId: "rpc-deposit"}
		},
		portfoliov1.PortfolioService_Withdraw_FullMethodName: func() proto.Message {
			return &portfoliov1.WithdrawRequest{PortfolioId: fx.portfolio, Amount: "1", RequestId: "rpc-withdraw"}
		},
		portfoliov1.PortfolioService_ExecuteTrade_FullMethodName: func() proto.Message {
			return &portfoliov1.ExecuteTradeRequest{PortfolioId: fx.portfolio, Symbol: "AAPL", Side: portfoliov1.Side_SIDE_BUY,
				Quantity: "1", LimitPrice: "1000", RequestId: "rpc-trade"}
		},
		portfoliov1.PortfolioService_ListTrades_FullMethodName: func() proto.Message {
			return &portfoliov1.ListTradesRequest{PortfolioId: fx.portfolio, Filter: `symbol = "AAPL"`, OrderBy: "execute_time desc", PageSize: 1}
		},
		portfoliov1.PortfolioService_ListCashMovements_FullMethodName: func() proto.Message {
			return &portfoliov1.ListCashMovementsRequest{PortfolioId: fx.portfolio, PageSize: 1}
		},

		interviewv1.QuestionBankService_CreateQuestion_FullMethodName: func() proto.Message {
			return &interviewv1.CreateQuestionRequest{Question: question("rpc-created"), RequestId: "rpc-create-question"}
		},
		interviewv1.QuestionBankService_GetQuestion_FullMethodName: func() proto.Message {
			return &interviewv1.GetQuestionRequest{QuestionId: fx.question}
		},
		interviewv1.QuestionBankService_UpdateQuestion_FullMethodName: func() proto.Message {
			return &interviewv1.UpdateQuestionRequest{Question: &interviewv1.Question{Id: fx.questionChanged, Text: "Changed?"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}}}
		},
		interviewv1.QuestionBankService_DeleteQuestion_FullMethodName: func() proto.Message {
			return &interviewv1.DeleteQuestionRequest{QuestionId: fx.questionDeleted}
		},
		interviewv1.QuestionBankService_ListQuestions_FullMethodName: func() proto.Message {
			return &interviewv1.ListQuestionsRequest{Filter: `category = "SQL" AND tags:"joins"`, OrderBy: "difficulty desc", PageSize: 1}
		},
		interviewv1.QuestionBankService_BulkImportQuestions_FullMethodName: func() proto.Message {
			return &interviewv1.BulkImportQuestionsRequest{Questions: []*interviewv1.Question{question("rpc-imported")}}
		},
		interviewv1.InterviewService_StartSession_FullMethodName: func() proto.Message {
			return &interviewv1.StartSessionRequest{Candidate: rpcAdmin, RequestId: "rpc-start-session",
				Criteria: &interviewv1.Criteria{Categories: []string{"SQL"}, MinDifficulty: 1, MaxDifficulty: 3, Count: 1}}
		},
		interviewv1.InterviewService_GetSession_FullMethodName: func() proto.Message {
			return &interviewv1.GetSessionRequest{SessionId: fx.session}
		},
		interviewv1.InterviewService_ListSessions_FullMethodName: func() proto.Message {
			return &interviewv1.ListSessionsRequest{Filter: `state = SESSION_STATE_IN_PROGRESS`, OrderBy: "create_time desc", PageSize: 1}
		},
		interviewv1.InterviewService_NextQuestion_FullMethodName: func() proto.Message {
			return &interviewv1.NextQuestionRequest{SessionId: fx.session}
		},
		interviewv1.InterviewService_SubmitAnswer_FullMethodName: func() proto.Message {
			return &interviewv1.SubmitAnswerRequest{SessionId: fx.session, QuestionId: fx.sessionQuestion, Answer: "Matching rows only."}
		},
		interviewv1.InterviewService_CompleteSession_FullMethodName: func() proto.Message {
			return &interviewv1.CompleteSessionRequest{SessionId: fx.sessionCompleted}
		},

		opsv1.DatabaseMonitor_GetDatabaseStatus_FullMethodName: status,
	}
}

// rpcMethod is one method of one service process.
type rpcMethod struct {
	svc   *rpcService
	desc  protoreflect.MethodDescriptor
	name  string // full method name, "/pkg.Service/Method"
	valid func() proto.Message
	write bool // may change rows: everything but Get*, List*, BatchGet*, Stream*

	pageToken string // a next_page_token of the valid request, for methods that page
}

// rpcMethods walks every method of every service in the generated files; f names the
// process that serves each service.
func rpcMethods(t *testing.T, f *rpcFleet, fixtures map[string]func() proto.Message) []*rpcMethod {
	t.Helper()
	serving := map[string][]*rpcService{
		stockv1.StockService_ServiceDesc.ServiceName:            {f.stock},
		portfoliov1.PortfolioService_ServiceDesc.ServiceName:    {f.portfolio},
		interviewv1.QuestionBankService_ServiceDesc.ServiceName: {f.interview},
		interviewv1.InterviewService_ServiceDesc.ServiceName:    {f.interview},
		opsv1.DatabaseMonitor_ServiceDesc.ServiceName:           {f.stock, f.portfolio, f.interview},
	}
	var out []*rpcMethod
	for _, file := range []protoreflect.FileDescriptor{stockv1.File_pgfleet_stock_v1_stock_proto,
		portfoliov1.File_pgfleet_portfolio_v1_portfolio_proto, interviewv1.File_pgfleet_interview_v1_interview_proto,
		opsv1.File_pgfleet_ops_v1_ops_proto} {
		for i := range file.Services().Len() {
			sd := file.Services().Get(i)
			svcs := serving[string(sd.FullName())]
			if len(svcs) == 0 {
				t.Errorf("service %s: no process serves it in the table; add it to rpcMethods", sd.FullName())
			}
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				name := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
				valid := fixtures[name]
				if valid == nil {
					t.Errorf("%s: no valid request in rpcFixtures; every method needs one", name)
					continue
				}
				read := false
				for _, p := range []string{"Get", "List", "BatchGet", "Stream"} {
					read = read || strings.HasPrefix(string(md.Name()), p)
				}
				for _, s := range svcs {
					out = append(out, &rpcMethod{svc: s, desc: md, name: name, valid: valid, write: !read})
				}
			}
		}
	}
	return out
}

// rpcCall is one request of the table.
type rpcCall struct {
	m       *rpcMethod
	variant string   // "valid", or what is wrong
	msgs    [][]byte // the request's messages (more than one only for a client stream)
	anon    bool     // sent without a token
	want    string   // "ok", "malformed" (INVALID_ARGUMENT MALFORMED_REQUEST) or "" (any answer that keeps the rules)
}

// rpcOutcome is the answer to a call and what is wrong with it ("" for nothing).
type rpcOutcome struct {
	c       *rpcCall
	st      *status.Status
	problem string
}

// rpcMaxStatus bounds the size of an error status (message and details): a 1 MiB field
// quoted whole, or a violation for each of 10,001 elements, made megabytes of trailers.
const rpcMaxStatus = 64 << 10

// rpcRaw sends the bytes it is given as the message: a client that sends what no generated
// client would. Answers are decoded as protobuf.
type rpcRaw struct{}

func (rpcRaw) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rpcRaw) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (rpcRaw) Name() string { return "proto" }

// send makes the call and returns its status (OK for success).
func (c *rpcCall) send(ctx context.Context, admin grpc.CallOption) *status.Status {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := []grpc.CallOption{grpc.ForceCodec(rpcRaw{})}
	if !c.anon {
		opts = append(opts, admin)
	}
	md := c.m.desc
	out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return status.New(codes.Internal, "test: "+err.Error())
	}
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Convert(c.m.svc.conn.Invoke(ctx, c.m.name, c.msgs[0], out.New().Interface(), opts...))
	}
	stream, err := c.m.svc.conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: md.IsStreamingClient(),
		ServerStreams: md.IsStreamingServer()}, c.m.name, opts...)
	if err != nil {
		return status.Convert(err)
	}
	for _, m := range c.msgs {
		if err := stream.SendMsg(m); err != nil {
			break // the server has answered; RecvMsg below reads it
		}
	}
	if err := stream.CloseSend(); err != nil {
		return status.Convert(err)
	}
	for {
		err := stream.RecvMsg(out.New().Interface())
		if errors.Is(err, io.EOF) {
			return status.New(codes.OK, "")
		}
		if err != nil {
			return status.Convert(err)
		}
		if !md.IsStreamingServer() || gateway.IsWatchMethod(md) { // a Watch stream never ends: its first message will do
			return status.New(codes.OK, "")
		}
	}
}

// check returns what is wrong with the answer st to c, or "".
func (c *rpcCall) check(st *status.Status) string {
	switch {
	case c.want == "ok" && st.Code() != codes.OK:
		return "valid request failed (fix the fixture, or the variants test nothing)"
	case c.want == "malformed" && (st.Code() != codes.InvalidArgument || apierr.ReasonOf(st.Err()) != apierr.MalformedRequest):
		return "not protobuf: want INVALID_ARGUMENT MALFORMED_REQUEST"
	case c.want == "malformed or token" && apierr.ReasonOf(st.Err()) != apierr.MalformedRequest && apierr.ReasonOf(st.Err()) != apierr.TokenMissing:
		return "not protobuf, without a token: want INVALID_ARGUMENT MALFORMED_REQUEST or UNAUTHENTICATED TOKEN_MISSING"
	case st.Code() == codes.OK:
		return ""
	case proto.Size(st.Proto()) > rpcMaxStatus:
		return fmt.Sprintf("oversized: a status of %d bytes (an error's size must not follow the request's)", proto.Size(st.Proto()))
	}
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded:
		return "code " + st.Code().String()
	}
	if n := apierr.Count(st); n != 1 {
		return fmt.Sprintf("%d ErrorInfos, want 1", n)
	}
	info := apierr.Info(st)
	if info.GetDomain() != apierr.Domain {
		return fmt.Sprintf("ErrorInfo domain %q", info.GetDomain())
	}
	if r := apierr.Reason(info.GetReason()); r.Code() != st.Code() {
		return fmt.Sprintf("reason %s is not one apierr defines for %v", r, st.Code())
	}
	return ""
}

// testBadInputGRPC runs the gRPC bad-input table (see the comment at the top of the file)
// against a fleet of its own, whose databases only it writes, started from e's binaries.
func testBadInputGRPC(t *testing.T, e *env) {
	f := startRPCFleet(t, e.binDir)
	fx := newRPCFixture(t, f)
	methods := rpcMethods(t, f, rpcFixtures(fx))
	if t.Failed() {
		t.FailNow()
	}
	admin := authtest.As(t, rpcAdmin, auth.RoleAdmin)

	// The valid requests first, one at a time in descriptor order: they must succeed, and
	// lists leave a page token for the variants to damage. Each service's valid writes add
	// rows, which its checksums must see, or they could not see a variant's either.
	before := map[*rpcService]map[string]string{}
	for _, s := range []*rpcService{f.stock, f.portfolio, f.interview} {
		snap, err := s.snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		before[s] = snap
	}
	var valid []rpcOutcome
	for _, m := range methods {
		b, err := proto.Marshal(m.valid())
		if err != nil {
			t.Fatal(err)
		}
		c := &rpcCall{m: m, variant: "valid", msgs: [][]byte{b}, want: "ok"}
		st := c.send(t.Context(), admin)
		valid = append(valid, rpcOutcome{c: c, st: st, problem: c.check(st)})
		if st.Code() == codes.OK && m.desc.Output().Fields().ByName("next_page_token") != nil {
			m.pageToken = nextPageToken(t, m, b, admin)
		}
	}
	for _, o := range valid {
		if o.problem != "" {
			t.Errorf("valid %s on %s = %v %q: %s", o.c.m.name, o.c.m.svc.name, o.st.Code(), o.st.Message(), o.problem)
		}
	}
	for s, snap := range before {
		after, err := s.snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Equal(snap, after) {
			t.Errorf("%s: the valid writes changed no checksum: the snapshot sees nothing", s.name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The variants, each service's in order on a goroutine of its own: a write's checksums
	// before and after must see no other request to the database.
	bySvc := map[*rpcService][]*rpcCall{}
	var order []*rpcService
	for _, m := range methods {
		if _, ok := bySvc[m.svc]; !ok {
			order = append(order, m.svc)
		}
		bySvc[m.svc] = append(bySvc[m.svc], rpcVariants(t, m)...)
	}
	results := make([][]rpcOutcome, len(order))
	var wg sync.WaitGroup
	for i, s := range order {
		wg.Go(func() {
			var before map[string]string
			for _, c := range bySvc[s] {
				var err error
				if c.m.write && before == nil {
					if before, err = s.snapshot(t.Context()); err != nil {
						t.Error(err)
						return
					}
				}
				st := c.send(t.Context(), admin)
				o := rpcOutcome{c: c, st: st, problem: c.check(st)}
				if c.m.write {
					after, err := s.snapshot(t.Context())
					if err != nil {
						t.Error(err)
						return
					}
					if diff := cmp.Diff(before, after); diff != "" && st.Code() != codes.OK && o.problem == "" {
						o.problem = "changed rows: " + strings.Join(strings.Fields(diff), " ")
					}
					before = after
				}
				results[i] = append(results[i], o)
			}
		})
	}
	wg.Wait()
	reportRPCBadInput(t, len(methods), slices.Concat(append([][]rpcOutcome{valid}, results...)...))
}

// nextPageToken returns the next_page_token the valid list request b answers with at page
// size 1, or "" if it has none.
func nextPageToken(t *testing.T, m *rpcMethod, b []byte, admin grpc.CallOption) string {
	t.Helper()
	req := m.valid()
	if err := proto.Unmarshal(b, req); err != nil {
		t.Fatal(err)
	}
	r := req.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName("page_size"); fd != nil {
		r.Set(fd, protoreflect.ValueOfInt32(1))
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.desc.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	resp := mt.New().Interface()
	if err := m.svc.conn.Invoke(t.Context(), m.name, req, resp, admin); err != nil {
		t.Fatalf("%s at page size 1: %v", m.name, err)
	}
	return resp.ProtoReflect().Get(resp.ProtoReflect().Descriptor().Fields().ByName("next_page_token")).String()
}

// reportRPCBadInput logs the table's figures and fails with one table of every bad answer.
func reportRPCBadInput(t *testing.T, nmethods int, all []rpcOutcome) {
	t.Helper()
	byCode := map[codes.Code]int{}
	byReason := map[string]int{}
	anon := 0
	kinds := map[string]int{}
	var bad []rpcOutcome
	for _, o := range all {
		byCode[o.st.Code()]++
		if o.st.Code() != codes.OK {
			byReason[string(apierr.ReasonOf(o.st.Err()))]++
		}
		if o.c.anon {
			anon++
		}
		if o.problem != "" {
			bad = append(bad, o)
			kind, _, _ := strings.Cut(o.problem, ":")
			kinds[kind]++
		}
	}
	var codesSeen, reasonsSeen []string
	for _, c := range slices.Sorted(maps.Keys(byCode)) {
		codesSeen = append(codesSeen, fmt.Sprintf("%v %d", c, byCode[c]))
	}
	for _, r := range slices.Sorted(maps.Keys(byReason)) {
		reasonsSeen = append(reasonsSeen, fmt.Sprintf("%s %d", r, byReason[r]))
	}
	t.Logf("gRPC bad-input table: %d requests over %d methods (%d without a token); by code: %s; by reason: %s",
		len(all), nmethods, anon, strings.Join(codesSeen, ", "), strings.Join(reasonsSeen, ", "))
	if len(bad) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d answers are wrong (%v):\n", len(bad), len(all), kinds)
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVICE\tMETHOD\tVARIANT\tTOKEN\tCODE\tREASON\tPROBLEM\tMESSAGE")
	const maxRows = 300
	for i, o := range bad {
		if i == maxRows {
			fmt.Fprintf(w, "... and %d more\n", len(bad)-maxRows)
			break
		}
		token := "admin"
		if o.c.anon {
			token = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%.70s\t%s\t%v\t%s\t%.100s\t%.120q\n", o.c.m.svc.name, o.c.m.desc.Name(), o.c.variant, token,
			o.st.Code(), apierr.ReasonOf(o.st.Err()), o.problem, o.st.Message())
	}
	w.Flush()
	t.Error(b.String())
}

// Values that are wrong, or at a boundary, by kind.
var (
	rpcBadStrings = []struct{ name, v string }{
		{"empty", ""},
		{"NUL", "\x00"},
		{"embedded NUL", "a\x00b"},
		{"U+0001", "\x01"},
		{"escape sequence", "\x1b[31mred"},
		{"DEL", "\x7f"},
		{"C1 U+0085", "\u0085"},
		{"line separator U+2028", "a\u2028b"},
		{"spaces", "   "},
		{"10000 characters", strings.Repeat("A", 10000)},
		{"1 MiB", strings.Repeat("x", 1<<20)},
	}
	// rpcNotUTF8 replace the first bytes of rpcUTF8Placeholder in the encoded message: the
	// length prefix stays right, the string is no longer UTF-8.
	rpcNotUTF8 = []struct{ name, bytes string }{
		{"not UTF-8 FF", "\xff"},
		{"not UTF-8 C328", "\xc3\x28"},
		{"not UTF-8 surrogate", "\xed\xa0\x80"},
		{"not UTF-8 truncated", "a\xe2\x82"},
	}
	rpcDecimals = []string{"99999999999999.999999", "100000000000000", "99999999999999999999.9999999", "1e400", "-0",
		"0", "-1", "0.0000001", "1e5", "NaN", "Infinity", "-Infinity", "1,5", " 1", "1 ", "+1", "0x10", ".", "1.", "1.2.3",
		"٣", "１", "1_000", "--1"}
	rpcInt64s  = []int64{-1, 0, math.MinInt64, math.MaxInt64, 1<<53 + 1, math.MaxInt32 + 1}
	rpcInt32s  = []int32{-1, 0, math.MinInt32, math.MaxInt32, 100001}
	rpcDoubles = []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 2, math.MaxFloat64, math.Copysign(0, -1), 5e-324}
	rpcEnums   = []protoreflect.EnumNumber{0, -1, 999, math.MaxInt32, math.MinInt32}
	rpcTimes   = []struct {
		name string
		ts   *timestamppb.Timestamp
	}{
		{"epoch", &timestamppb.Timestamp{}},
		{"year 0", &timestamppb.Timestamp{Seconds: -62167219200}},
		{"year 10000", &timestamppb.Timestamp{Seconds: 253402300800}},
		{"max seconds", &timestamppb.Timestamp{Seconds: math.MaxInt64}},
		{"min seconds", &timestamppb.Timestamp{Seconds: math.MinInt64}},
		{"nanos -1", &timestamppb.Timestamp{Seconds: 1, Nanos: -1}},
		{"nanos 1e9", &timestamppb.Timestamp{Seconds: 1, Nanos: 1e9}},
		{"far future", timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC))},
	}
	// rpcMalformed are whole messages that are not protobuf, after the valid message's bytes.
	rpcMalformed = []struct{ name, bytes string }{
		{"truncated varint", "\x10\x80"},
		{"wire type 6", "\x0e"},
		{"wire type 7", "\x0f"},
		{"field number 0", "\x00"},
		{"truncated length", "\x0a\x05a"},
		{"length past the end", "\x0a\xff\xff\xff\xff\x0f"},
		{"group never ended", "\x0b"},
		{"trailing 0xFF", "\xff"},
	}
	// rpcOddProtobuf are valid protobuf a generated client would not send: answered as
	// the service sees fit.
	rpcOddProtobuf = []struct{ name, bytes string }{
		{"unknown field", "\xf8\x06\x01"},
		{"field 1 as fixed64", "\x09\x01\x02\x03\x04\x05\x06\x07\x08"},
		{"field 1 as varint", "\x08\x96\x01"},
		{"max field number", "\xf8\xff\xff\xff\x0f\x01"},
	}
	rpcDecimalFields = map[protoreflect.Name]bool{"amount": true, "quantity": true, "limit_price": true, "open": true,
		"high": true, "low": true, "close": true, "target_price": true}
)

// rpcUTF8Placeholder is set in a string field where an invalid UTF-8 variant goes; the
// encoded bytes are then edited.
const rpcUTF8Placeholder = "~pgfleet-not-utf8~"

// rpcPath is where a field is in a request: a field of the message at the end of steps, or
// with elem, the first element of that repeated field.
type rpcPath struct {
	steps []rpcStep
	fd    protoreflect.FieldDescriptor
	elem  bool
}

type rpcStep struct {
	fd    protoreflect.FieldDescriptor
	index int // for a repeated message field; -1 for a singular one
}

func (p rpcPath) String() string {
	var b strings.Builder
	for _, s := range p.steps {
		b.WriteString(string(s.fd.Name()))
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
		}
		b.WriteByte('.')
	}
	b.WriteString(string(p.fd.Name()))
	if p.elem {
		b.WriteString("[0]")
	}
	return b.String()
}

// at returns the message holding p's field in root, creating the messages on the way.
func (p rpcPath) at(root proto.Message) protoreflect.Message {
	m := root.ProtoReflect()
	for _, s := range p.steps {
		if s.index < 0 {
			m = m.Mutable(s.fd).Message()
			continue
		}
		l := m.Mutable(s.fd).List()
		for l.Len() <= s.index {
			l.Append(l.NewElement())
		}
		m = l.Get(s.index).Message()
	}
	return m
}

// rpcVariants returns the method's variants: per field, then whole messages.
func rpcVariants(t *testing.T, m *rpcMethod) []*rpcCall {
	t.Helper()
	valid, err := proto.Marshal(m.valid())
	if err != nil {
		t.Fatal(err)
	}
	var out []*rpcCall
	n := 0
	// adder returns a function that adds a variant of the field at at (nil: of the whole
	// message) as an admin, and without a token too if anonToo.
	adder := func(at *rpcPath) rpcAdd {
		return func(variant string, anonToo bool, want string, edit func(root proto.Message), raw func([]byte) []byte) {
			n++
			req := m.valid()
			if fd := req.ProtoReflect().Descriptor().Fields().ByName("request_id"); fd != nil && req.ProtoReflect().Has(fd) {
				// A request_id of its own, so a variant reaches the business checks: a
				// repeat of the valid request's would be answered as that request was.
				req.ProtoReflect().Set(fd, protoreflect.ValueOfString(fmt.Sprintf("rpc-%s-%d", m.desc.Name(), n)))
			}
			if edit != nil {
				edit(req)
			}
			if at != nil {
				rpcMask(req, *at)
			}
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
			if err != nil {
				t.Fatalf("%s %s: %v", m.name, variant, err)
			}
			if raw != nil {
				b = raw(b)
			}
			out = append(out, &rpcCall{m: m, variant: variant, msgs: [][]byte{b}, want: want})
			if anonToo {
				switch {
				case m.desc.IsStreamingClient():
					want = "" // refused for its token before a message is read: TOKEN_MISSING
				case m.desc.IsStreamingServer() && want == "malformed":
					// A stream's token is checked before its request is read: malformed, or
					// TOKEN_MISSING where the method needs a token (WatchPortfolio).
					want = "malformed or token"
				}
				out = append(out, &rpcCall{m: m, variant: variant, msgs: [][]byte{b}, anon: true, want: want})
			}
		}
	}

	var walk func(steps []rpcStep, md protoreflect.MessageDescriptor, depth int)
	walk = func(steps []rpcStep, md protoreflect.MessageDescriptor, depth int) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			p := rpcPath{steps: slices.Clone(steps), fd: fd}
			add := adder(&p)
			anon := len(steps) == 0 // the token-less subset: top-level fields
			setMessage := func(v proto.Message) func(proto.Message) {
				return func(root proto.Message) {
					p.at(root).Set(fd, protoreflect.ValueOfMessage(proto.Clone(v).ProtoReflect()))
				}
			}
			if fd.IsList() {
				rpcListVariants(p, add)
				if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
					if depth < 4 {
						walk(append(slices.Clone(steps), rpcStep{fd: fd, index: 0}), fd.Message(), depth+1)
					}
					continue
				}
				p.elem = true // the first element's values, as a singular field's
			}
			scalar := func(name string, v protoreflect.Value, anon bool, want string) {
				add(p.String()+": "+name, anon, want, func(root proto.Message) { rpcSet(p, root, v) }, nil)
			}
			switch fd.Kind() {
			case protoreflect.StringKind:
				for _, s := range rpcStringVariants(m, fd) {
					scalar(fmt.Sprintf("%.60q", s), protoreflect.ValueOfString(s), anon && s == "a\x00b", "")
				}
				for _, bad := range rpcNotUTF8 {
					add(p.String()+": "+bad.name, anon && bad.name == rpcNotUTF8[0].name, "malformed",
						func(root proto.Message) { rpcSet(p, root, protoreflect.ValueOfString(rpcUTF8Placeholder)) },
						func(b []byte) []byte {
							repl := []byte(rpcUTF8Placeholder)
							copy(repl, bad.bytes)
							return bytes.Replace(b, []byte(rpcUTF8Placeholder), repl, 1)
						})
				}
			case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
				for _, v := range rpcInt64s {
					scalar(fmt.Sprint(v), protoreflect.ValueOfInt64(v), false, "")
				}
			case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
				for _, v := range rpcInt32s {
					scalar(fmt.Sprint(v), protoreflect.ValueOfInt32(v), false, "")
				}
			case protoreflect.DoubleKind:
				for _, v := range rpcDoubles {
					scalar(fmt.Sprint(v), protoreflect.ValueOfFloat64(v), false, "")
				}
			case protoreflect.EnumKind:
				for _, v := range rpcEnums {
					scalar(fmt.Sprintf("enum %d", v), protoreflect.ValueOfEnum(v), false, "")
				}
			case protoreflect.BoolKind:
				scalar("true", protoreflect.ValueOfBool(true), false, "")
			case protoreflect.MessageKind:
				switch fd.Message().FullName() {
				case "google.protobuf.Timestamp":
					for _, ts := range rpcTimes {
						add(p.String()+": "+ts.name, false, "", setMessage(ts.ts), nil)
					}
				case "google.protobuf.FieldMask":
					for _, paths := range [][]string{{}, {""}, {"\x00"}, {"nope"}, {"text", "text"}, {"question.text"}, {"id"},
						{"rubric.points"}, {"*"}, {strings.Repeat("a", 10000)}} {
						add(fmt.Sprintf("%s: paths %.40q", p, paths), false, "", setMessage(&fieldmaskpb.FieldMask{Paths: paths}), nil)
					}
				}
				add(p.String()+": unset", anon, "", func(root proto.Message) { p.at(root).Clear(fd) }, nil)
				add(p.String()+": empty", false, "", func(root proto.Message) {
					r := p.at(root)
					r.Set(fd, r.NewField(fd))
				}, nil)
				if depth < 4 && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
					walk(append(slices.Clone(steps), rpcStep{fd: fd, index: -1}), fd.Message(), depth+1)
				}
			}
		}
	}
	walk(nil, m.desc.Input(), 0)

	add := adder(nil)

	for _, bad := range rpcMalformed {
		add("message: "+bad.name, true, "malformed", nil, func(b []byte) []byte { return append(b, bad.bytes...) })
	}
	for _, odd := range rpcOddProtobuf {
		add("message: "+odd.name, false, "", nil, func(b []byte) []byte { return append(b, odd.bytes...) })
	}
	add("message: empty", false, "", func(root proto.Message) { proto.Reset(root) }, nil)
	out = append(out, &rpcCall{m: m, variant: "valid", msgs: [][]byte{valid}, anon: true})

	if m.desc.IsStreamingClient() {
		// The valid message, then a bad one: the stream fails whole.
		var more []*rpcCall
		for _, c := range out {
			if c.want == "malformed" || strings.Contains(c.variant, `"\x00"`) {
				more = append(more, &rpcCall{m: m, variant: "second message, " + c.variant, msgs: [][]byte{valid, c.msgs[0]},
					anon: c.anon, want: c.want})
			}
		}
		out = append(out, more...)
	}
	return out
}

// rpcAdd adds a variant: its name, whether it is sent without a token too, the answer it
// wants ("" for any that keeps the rules), how it changes the valid request, and how it
// changes the request's bytes (nil for neither).
type rpcAdd func(variant string, anonToo bool, want string, edit func(root proto.Message), raw func([]byte) []byte)

// rpcMask names the field a variant changes in the request's update_mask, if it has one and
// the field is in the resource it updates, so that the update reads the field (AIP-134: a
// field the mask leaves out is ignored).
func rpcMask(root proto.Message, p rpcPath) {
	r := root.ProtoReflect()
	mask := r.Descriptor().Fields().ByName("update_mask")
	if mask == nil || len(p.steps) == 0 || p.steps[0].fd.Kind() != protoreflect.MessageKind {
		return
	}
	field := p.fd.Name()
	if len(p.steps) > 1 {
		field = p.steps[1].fd.Name()
	}
	r.Set(mask, protoreflect.ValueOfMessage((&fieldmaskpb.FieldMask{Paths: []string{string(field)}}).ProtoReflect()))
}

// rpcSet sets p's field in root to v; with p.elem, the first element of the repeated field,
// added if the list is empty.
func rpcSet(p rpcPath, root proto.Message, v protoreflect.Value) {
	if p.elem {
		l := p.at(root).Mutable(p.fd).List()
		if l.Len() == 0 {
			l.Append(v)
		} else {
			l.Set(0, v)
		}
		return
	}
	p.at(root).Set(p.fd, v)
}

// rpcStringVariants are the values tried in string field fd of m's request.
func rpcStringVariants(m *rpcMethod, fd protoreflect.FieldDescriptor) []string {
	var out []string
	for _, s := range rpcBadStrings {
		out = append(out, s.v)
	}
	switch name := fd.Name(); {
	case rpcDecimalFields[name]:
		out = append(out, rpcDecimals...)
	case name == "filter":
		out = append(out, rpcFilterVariants(m)...)
	case name == "order_by":
		out = append(out, "nope", "nope desc", "symbol desc desc", "symbol,,", ",", "desc", "symbol\x00", "symbol sideways",
			strings.Repeat("symbol, ", 1000)+"symbol")
		if listed := rpcListed(m); listed != nil {
			for i := range listed.Fields().Len() {
				f := string(listed.Fields().Get(i).Name())
				out = append(out, f+" desc", f+" asc", f+"\x00")
			}
		}
	case name == "page_token":
		out = append(out, "abc", "!!!", "AAAA", "====", strings.Repeat("A", 5000))
		if t := m.pageToken; len(t) > 4 {
			flip := []byte(t)
			flip[len(flip)/2] ^= 1
			out = append(out, t, t[:len(t)-1], t+"A", string(flip), t[:len(t)/2], t+"\x00")
		}
	case name == "symbol" || name == "symbols":
		out = append(out, "zzdel", "ZZDEL ", "A.", "-A", "ABCDEFGHIJK", "ZZZZ", "É")
	case name == "email" || name == "candidate":
		out = append(out, "no-at-sign", "a@b", "@", "A@EXAMPLE.COM", "a@b\x00c")
	case name == "currency":
		out = append(out, "usd", "US", "USDD", "XXX", "€")
	case name == "request_id":
		out = append(out, strings.Repeat("r", 101))
	}
	return out
}

// rpcListed returns the message type a list method lists: its response's repeated message.
func rpcListed(m *rpcMethod) protoreflect.MessageDescriptor {
	fields := m.desc.Output().Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); f.IsList() && f.Kind() == protoreflect.MessageKind {
			return f.Message()
		}
	}
	return nil
}

// rpcFilterVariants are filters that are wrong, or hold wrong literals for each field of
// the listed message.
func rpcFilterVariants(m *rpcMethod) []string {
	out := []string{"a AND", `symbol = "`, "(((", strings.Repeat("NOT ", 100) + "x", strings.Repeat("(", 40) + "x" + strings.Repeat(")", 40),
		strings.Repeat(`x = "a" AND `, 300) + `x = "a"`, `x = "\x00"`, `x = '` + "\x00" + `'`, "\x00 = 1"}
	listed := rpcListed(m)
	if listed == nil {
		return out
	}
	for i := range listed.Fields().Len() {
		fd := listed.Fields().Get(i)
		name := string(fd.Name())
		switch {
		case fd.IsList():
			out = append(out, name+`:"`+"\x00"+`"`, name+`:"`+strings.Repeat("A", 5000)+`"`)
		case fd.Kind() == protoreflect.EnumKind:
			out = append(out, name+" = NOPE", name+` = "a`+"\x00"+`"`, name+" = 999", name+" = -1")
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp":
			out = append(out, name+` > "abc"`, name+` > "10000-01-01T00:00:00Z"`, name+` > "0000-01-01T00:00:00Z"`,
				name+` > timestamp("`+"\x00"+`")`, name+` > "1e400"`)
		case fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Int32Kind:
			out = append(out, name+" > 99999999999999999999", name+" > -99999999999999999999", name+` = "`+"\x00"+`"`,
				name+" > 1e400", name+" = 1.5")
		case fd.Kind() == protoreflect.DoubleKind:
			out = append(out, name+" > 1e400", name+" > NaN", name+" > -1e400", name+` = "`+"\x00"+`"`)
		case fd.Kind() == protoreflect.StringKind:
			out = append(out, name+` = "a`+"\x00"+`b"`, name+` = "`+"\x00"+`*"`, name+` = "`+"\x01"+`"`,
				name+` = "`+strings.Repeat("A", 1900)+`"`, name+` : "`+"\x00"+`"`, name+` > 99999999999999999999.9999999`)
		}
	}
	return out
}

// rpcListVariants adds the variants of repeated field p as a whole: empty, two copies of its
// first element, and more elements than any method takes.
func rpcListVariants(p rpcPath, add rpcAdd) {
	fd := p.fd
	resize := func(n int) func(proto.Message) {
		return func(root proto.Message) {
			r := p.at(root)
			l := r.Mutable(fd).List()
			if l.Len() == 0 {
				if fd.Kind() != protoreflect.MessageKind {
					return // no element to copy: "empty" covers it
				}
				l.Append(l.NewElement())
			}
			first := l.Get(0)
			for l.Len() < n {
				if fd.Kind() == protoreflect.MessageKind {
					l.Append(protoreflect.ValueOfMessage(proto.Clone(first.Message().Interface()).ProtoReflect()))
				} else {
					l.Append(first)
				}
			}
			l.Truncate(n)
		}
	}
	add(p.String()+": no elements", len(p.steps) == 0, "", func(root proto.Message) { p.at(root).Clear(fd) }, nil)
	for _, n := range []int{2, 1001, 10001} {
		add(fmt.Sprintf("%s: %d copies of the first", p, n), false, "", resize(n), nil)
	}
}
