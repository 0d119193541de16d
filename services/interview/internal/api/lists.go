package api

import (
	"fmt"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// lists holds the whitelist of every list method.
type lists struct {
	questions, sessions query.Schema
}

func newLists(tokenKey string) lists {
	return lists{
		questions: query.Schema{
			Fields: []query.Field{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true},
				{Name: "key", Column: "key", Type: query.String, Sortable: true},
				{Name: "category", Column: "category", Type: query.String, Sortable: true},
				{Name: "difficulty", Column: "difficulty", Type: query.Int, Sortable: true},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true},
				{Name: "tags", Column: "tags", Type: query.StringList}, // tags:"sql", GIN index
				{Name: "text", Column: "search", Type: query.Text},     // text:"outer join", GIN index on the tsvector
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		sessions: query.Schema{
			Fields: []query.Field{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true},
				{Name: "candidate", Column: "candidate", Type: query.String, Sortable: true},
				{Name: "state", Column: "state", Type: query.Enum, Enum: interviewv1.SessionState(0).Type(), Sortable: true},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
	}
}

func questionValue(q store.Question, field string) any {
	switch field {
	case "id":
		return q.ID
	case "key":
		return q.Key
	case "category":
		return q.Category
	case "difficulty":
		return int64(q.Difficulty)
	case "create_time":
		return q.CreateTime
	case "update_time":
		return q.UpdateTime
	}
	panic(fmt.Sprintf("question field %q is sortable but has no value", field))
}

func sessionValue(s store.Session, field string) any {
	switch field {
	case "id":
		return s.ID
	case "candidate":
		return s.Candidate
	case "state":
		return s.State
	case "create_time":
		return s.CreateTime
	}
	panic(fmt.Sprintf("session field %q is sortable but has no value", field))
}
