// Command interview serves pgfleet.interview.v1's QuestionBankService and InterviewService,
// and pgfleet.ops.v1.DatabaseMonitor, over schema "interview".
package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/sethvargo/go-envconfig"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
	"github.com/pgfleet/pgfleet/services/interview/internal/api"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/migrations"
)

func main() {
	app.Main(app.Binary[config]{Name: "interview", Run: run, Load: loadConfig, Migrations: migrations.Set,
		About: "the interview service. It serves pgfleet.interview.v1's QuestionBankService and " +
			"InterviewService (questions, practice sessions, answers scored by rubric or by a remote " +
			"evaluator at EVALUATOR_URL) and pgfleet.ops.v1.DatabaseMonitor over gRPC, from schema " +
			"\"interview\" of its PostgreSQL database, which it migrates at start."})
}

// run serves until ctx ends; env supplies the configuration (the process environment, or
// a map in tests).
func run(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error {
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	svc, err := app.Start(ctx, cfg.App, app.Options{Name: "interview", GRPCAddr: cfg.GRPCAddr,
		MetricsAddr: cfg.MetricsAddr, Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}, log)
	if err != nil {
		return err
	}
	defer svc.Close() // after Run has drained

	deps := api.Deps{Base: svc.Base, Evaluator: evaluate.New(cfg.Evaluator,
		&http.Client{Transport: telemetry.HTTPTransport(nil)}, svc.Server.Registry())} // a span per call, when tracing is on
	interviewv1.RegisterQuestionBankServiceServer(svc.Server, api.NewQuestionBank(deps))
	interviewv1.RegisterInterviewServiceServer(svc.Server, api.NewInterviews(deps))
	return svc.Run(ctx, interviewv1.QuestionBankService_ServiceDesc.ServiceName, interviewv1.InterviewService_ServiceDesc.ServiceName)
}
