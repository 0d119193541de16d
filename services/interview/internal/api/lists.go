package api

import (
	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// lists holds the whitelist of every list method, with where a row holds each field's value.
type lists struct {
	questions query.Schema[store.Question]
	sessions  query.Schema[store.Session]
}

func newLists(tokenKey string) lists {
	type (
		qn = store.Question
		ss = store.Session
	)
	return lists{
		questions: query.Schema[qn]{
			Fields: []query.Field[qn]{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true, Value: func(q qn) any { return q.ID }},
				{Name: "key", Column: "key", Type: query.String, Sortable: true, Value: func(q qn) any { return q.Key }},
				{Name: "category", Column: "category", Type: query.String, Sortable: true, Value: func(q qn) any { return q.Category }},
				{Name: "difficulty", Column: "difficulty", Type: query.Int, Sortable: true, Value: func(q qn) any { return int64(q.Difficulty) }},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true, Value: func(q qn) any { return q.CreateTime }},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true, Value: func(q qn) any { return q.UpdateTime }},
				{Name: "tags", Column: "tags", Type: query.StringList}, // tags:"sql", GIN index
				{Name: "text", Column: "search", Type: query.Text},     // text:"outer join", GIN index on the tsvector
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		sessions: query.Schema[ss]{
			Fields: []query.Field[ss]{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true, Value: func(s ss) any { return s.ID }},
				{Name: "candidate", Column: "candidate", Type: query.String, Sortable: true, Value: func(s ss) any { return s.Candidate }},
				{Name: "state", Column: "state", Type: query.Enum, Enum: interviewv1.SessionState(0).Type(), Sortable: true, Value: func(s ss) any { return s.State }},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true, Value: func(s ss) any { return s.CreateTime }},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
	}
}
