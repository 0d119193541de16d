package api

import (
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// lists holds the whitelist of every list method: the only fields filter and order_by may
// name, the columns they map to and where a row holds their values. Each sort column has an
// index ending in the key.
type lists struct {
	stocks          query.Schema[store.Stock]
	recommendations query.Schema[store.Recommendation]
	prices          query.Schema[store.Price]
	bars            query.Schema[store.Bar]
	history         query.Schema[store.PastRecommendation]
	jobs            query.Schema[store.IngestionJob]
	runs            query.Schema[store.IngestionRun]
	rejects         query.Schema[store.IngestionReject]
	// scoreboard is GetRecommendationScoreboard's filter: the history's fields as r.*.
	scoreboard query.Schema[store.PastRecommendation]
}

func newLists(tokenKey string) lists {
	type (
		st   = store.Stock
		rec  = store.Recommendation
		past = store.PastRecommendation
		job  = store.IngestionJob
		run  = store.IngestionRun
		rej  = store.IngestionReject
	)
	return lists{
		// Jobs page by job_id (the primary key); no filter: a deployment has tens of jobs.
		jobs: query.Schema[job]{
			Fields:   []query.Field[job]{{Name: "job_id", Column: "job_id", Type: query.String, Value: func(j job) any { return j.JobID }}},
			Key:      []string{"job_id"},
			TokenKey: tokenKey,
		},
		// Runs: newest first by run_id, on the primary key or (job_id, run_id) under a job.
		// state and trigger are stored in lower case; the filter takes the enums' value names.
		runs: query.Schema[run]{
			Fields: []query.Field[run]{
				{Name: "run_id", Column: "run_id", Type: query.Int, Value: func(r run) any { return r.RunID }},
				{Name: "job_id", Column: "job_id", Type: query.String},
				{Name: "state", Column: "('INGESTION_RUN_STATE_' || upper(state))", Type: query.Enum, Enum: stockv1.IngestionRunState(0).Type()},
				{Name: "trigger", Column: "('INGESTION_TRIGGER_' || upper(trigger))", Type: query.Enum, Enum: stockv1.IngestionTrigger(0).Type()},
				{Name: "start_time", Column: "start_time", Type: query.Timestamp},
			},
			Key:          []string{"run_id"},
			DefaultOrder: "run_id desc",
			TokenKey:     tokenKey,
		},
		// A run's rejects in the order it refused them, on the primary key (run_id, seq).
		rejects: query.Schema[rej]{
			Fields:   []query.Field[rej]{{Name: "seq", Column: "seq", Type: query.Int, Value: func(r rej) any { return r.Seq }}},
			Key:      []string{"seq"},
			TokenKey: tokenKey,
		},
		stocks: query.Schema[st]{
			Fields: []query.Field[st]{
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true, Value: func(s st) any { return s.Symbol }},
				{Name: "name", Column: "name", Type: query.String, Sortable: true, Value: func(s st) any { return s.Name }},
				{Name: "sector", Column: "sector", Type: query.String, Sortable: true, Value: func(s st) any { return s.Sector }},
				{Name: "industry", Column: "industry", Type: query.String, Sortable: true, Value: func(s st) any { return s.Industry }},
				{Name: "exchange", Column: "exchange", Type: query.String, Sortable: true, Value: func(s st) any { return s.Exchange }},
				{Name: "currency", Column: "currency", Type: query.String, Sortable: true, Value: func(s st) any { return s.Currency }},
				{Name: "market_cap", Column: "market_cap", Type: query.Int, Sortable: true, Value: func(s st) any { return s.MarketCap }},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true, Value: func(s st) any { return s.CreateTime }},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true, Value: func(s st) any { return s.UpdateTime }},
			},
			Key:      []string{"symbol"},
			TokenKey: tokenKey,
		},
		recommendations: query.Schema[rec]{
			Fields: []query.Field[rec]{
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true, Value: func(r rec) any { return r.Symbol }},
				{Name: "source", Column: "source", Type: query.String, Sortable: true, Value: func(r rec) any { return r.Source }},
				{Name: "action", Column: "action", Type: query.Enum, Enum: stockv1.Action(0).Type(), Sortable: true, Value: func(r rec) any { return r.Action }},
				{Name: "confidence", Column: "confidence", Type: query.Float, Sortable: true, Value: func(r rec) any { return r.Confidence }},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true, Value: func(r rec) any { return r.CreateTime }},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true, Value: func(r rec) any { return r.UpdateTime }},
			},
			Key:      []string{"symbol", "source"},
			TokenKey: tokenKey,
		},
		// History walks time: predict_time is the only order (the key's index, or the symbol's or
		// source's (x, predict_time, y) index under a filter on x); the key is unique.
		history: query.Schema[past]{
			Fields: []query.Field[past]{
				{Name: "predict_time", Column: "predict_time", Type: query.Timestamp, Sortable: true, Value: func(r past) any { return r.PredictTime }},
				{Name: "symbol", Column: "symbol", Type: query.String, Value: func(r past) any { return r.Symbol }},
				{Name: "source", Column: "source", Type: query.String, Value: func(r past) any { return r.Source }},
				{Name: "model_version", Column: "model_version", Type: query.String},
				{Name: "action", Column: "action", Type: query.Enum, Enum: stockv1.Action(0).Type()},
			},
			Key:          []string{"predict_time", "symbol", "source"},
			DefaultOrder: "predict_time desc",
			TokenKey:     tokenKey,
		},
		// The scoreboard's filter only: no order, no pages (the Key is the history's).
		scoreboard: query.Schema[past]{
			Fields: []query.Field[past]{
				{Name: "source", Column: "r.source", Type: query.String, Value: func(r past) any { return r.Source }},
				{Name: "model_version", Column: "r.model_version", Type: query.String},
				{Name: "symbol", Column: "r.symbol", Type: query.String, Value: func(r past) any { return r.Symbol }},
				{Name: "predict_time", Column: "r.predict_time", Type: query.Timestamp, Value: func(r past) any { return r.PredictTime }},
			},
			Key:      []string{"predict_time", "symbol", "source"},
			TokenKey: tokenKey,
		},
		// Prices have no filter: the request names the symbol and range, and pages walk time.
		prices: query.Schema[store.Price]{
			Fields: []query.Field[store.Price]{
				{Name: "time", Column: "ts", Type: query.Timestamp, Sortable: true, Value: func(p store.Price) any { return p.Time }},
			},
			Key:      []string{"time"},
			TokenKey: tokenKey,
		},
		// Bars, like prices, have no filter; pages walk the bars' start times.
		bars: query.Schema[store.Bar]{
			Fields: []query.Field[store.Bar]{
				{Name: "start_time", Column: "bucket", Type: query.Timestamp, Sortable: true, Value: func(b store.Bar) any { return b.Start }},
			},
			Key:      []string{"start_time"},
			TokenKey: tokenKey,
		},
	}
}
