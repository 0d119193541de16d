package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
)

// The fuzz targets send fuzzed requests through a real server (the production interceptors,
// validation, handlers) into PostgreSQL, so they see what a parser's fuzz target cannot: a
// value validation lets through that the database refuses (a NUL in text) answers INTERNAL.
// Strings go as they are, UTF-8 or not (apptest.RawCodec). `go test` runs the seeds; to
// fuzz, from services/interview:
//
//	go test -run '^$' -fuzz '^FuzzCreateQuestion$' -fuzztime 1m ./internal/api/

// fuzzRaw sends a request as it is, strings that are not UTF-8 included.
var fuzzRaw = grpc.ForceCodec(apptest.RawCodec{})

// fuzzStrings are seeds every string field gets: what reached PostgreSQL raw before.
var fuzzStrings = []string{"", "\x00", "a\x00b", "\xff", "a\xc3\x28", "\x01", "\x1b[31m", "\u2028", "  ", "\t\n", strings.Repeat("a", 10000)}

// fuzzChecksum returns a checksum of the tables' rows, to show that a refused write changed none.
func fuzzChecksum(t *testing.T, pool *pgxpool.Pool, tables ...string) string {
	t.Helper()
	var out strings.Builder
	for _, table := range tables {
		var sum string
		if err := pool.QueryRow(t.Context(), "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM "+
			table+" t").Scan(&sum); err != nil {
			t.Fatal(err)
		}
		out.WriteString(sum + " ")
	}
	return out.String()
}

// wantGoodAnswer fails t if err is not an answer a service may give to any request.
func wantGoodAnswer(t *testing.T, what string, err error) {
	t.Helper()
	if bad := apptest.BadAnswer(err); bad != "" {
		t.Fatalf("%s = %s", what, bad)
	}
}

// fuzzQuestion is a valid question, the base the fuzz targets change.
func fuzzQuestion(key, category string) *interviewv1.Question {
	return &interviewv1.Question{Key: key, Text: "What does an inner join return?", Category: category, Difficulty: 2,
		Tags: []string{"joins"}, Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
			{Description: "Only matching rows", Weight: 1, Keywords: []string{"matching rows"}}}}}
}

// FuzzCreateQuestion sends a question's text fields and numbers; a refused question must
// change no row.
func FuzzCreateQuestion(f *testing.F) {
	e := newEnv(f)
	q := fuzzQuestion("k", "SQL")
	p := q.GetRubric().GetPoints()[0]
	add := func(key, text, category, tag, description, keyword string, difficulty, weight int32) {
		f.Add(key, text, category, tag, description, keyword, difficulty, weight, "r")
	}
	add(q.Key, q.Text, q.Category, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, p.Weight)
	for _, s := range fuzzStrings {
		add(s, q.Text, q.Category, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, p.Weight)
		add(q.Key, s, q.Category, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, p.Weight)
		add(q.Key, q.Text, s, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, p.Weight)
		add(q.Key, q.Text, q.Category, s, p.Description, p.Keywords[0], q.Difficulty, p.Weight)
		add(q.Key, q.Text, q.Category, q.Tags[0], s, p.Keywords[0], q.Difficulty, p.Weight)
		add(q.Key, q.Text, q.Category, q.Tags[0], p.Description, s, q.Difficulty, p.Weight)
		f.Add(q.Key, q.Text, q.Category, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, p.Weight, s)
	}
	for _, n := range []int32{-1, 0, 6, 101, 1<<31 - 1, -1 << 31} {
		add(q.Key, q.Text, q.Category, q.Tags[0], p.Description, p.Keywords[0], n, p.Weight)
		add(q.Key, q.Text, q.Category, q.Tags[0], p.Description, p.Keywords[0], q.Difficulty, n)
	}
	n := 0
	f.Fuzz(func(t *testing.T, key, text, category, tag, description, keyword string, difficulty, weight int32, requestID string) {
		n++
		if key == q.Key { // the seeds' own, so that each creates a question of its own
			key = fmt.Sprintf("fuzz-%d", n)
		}
		if requestID == "r" {
			requestID = fmt.Sprintf("fuzz-%d", n)
		}
		before := fuzzChecksum(t, e.pool, "interview.questions")
		_, err := e.bank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{RequestId: requestID,
			Question: &interviewv1.Question{Key: key, Text: text, Category: category, Difficulty: difficulty, Tags: []string{tag},
				Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{{Description: description, Weight: weight,
					Keywords: []string{keyword}}}}}}, fuzzRaw)
		wantGoodAnswer(t, "CreateQuestion", err)
		if err != nil && fuzzChecksum(t, e.pool, "interview.questions") != before {
			t.Fatalf("CreateQuestion = %v, and changed interview.questions", err)
		}
	})
}

// FuzzStartSession sends a session's candidate and criteria over a bank of SQL questions; a
// refused session must change no row.
func FuzzStartSession(f *testing.F) {
	e := newEnv(f)
	var bank []*interviewv1.Question
	for i := range 6 {
		bank = append(bank, fuzzQuestion(fmt.Sprintf("sql-%d", i), "SQL"))
	}
	if _, err := e.bank.BulkImportQuestions(f.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: bank}); err != nil {
		f.Fatal(err)
	}
	f.Add("", "SQL", int32(1), int32(3), int32(2), "r")
	for _, s := range fuzzStrings {
		f.Add(s, "SQL", int32(1), int32(3), int32(2), "r")
		f.Add("", s, int32(1), int32(3), int32(2), "r")
		f.Add("", "SQL", int32(1), int32(3), int32(2), s)
	}
	for _, n := range []int32{-1, 0, 6, 51, 1<<31 - 1, -1 << 31} {
		f.Add("", "SQL", n, int32(3), int32(2), "r")
		f.Add("", "SQL", int32(1), n, int32(2), "r")
		f.Add("", "SQL", int32(1), int32(3), n, "r")
	}
	f.Add("someone@example.com", "SQL", int32(1), int32(3), int32(2), "r") // another candidate, as a user
	user := authtest.As(f, "candidate@example.com")
	n := 0
	f.Fuzz(func(t *testing.T, candidate, category string, minDifficulty, maxDifficulty, count int32, requestID string) {
		n++
		if requestID == "r" {
			requestID = fmt.Sprintf("fuzz-%d", n)
		}
		before := fuzzChecksum(t, e.pool, "interview.sessions", "interview.session_questions")
		req := &interviewv1.StartSessionRequest{Candidate: candidate, RequestId: requestID, Criteria: &interviewv1.Criteria{
			Categories: []string{category}, MinDifficulty: minDifficulty, MaxDifficulty: maxDifficulty, Count: count}}
		_, err := e.interviews.StartSession(t.Context(), req, fuzzRaw)
		wantGoodAnswer(t, "StartSession", err)
		_, userErr := e.userInterviews.StartSession(t.Context(), req, fuzzRaw, user)
		wantGoodAnswer(t, "StartSession as a user", userErr)
		if err != nil && userErr != nil && fuzzChecksum(t, e.pool, "interview.sessions", "interview.session_questions") != before {
			t.Fatalf("StartSession = %v, as a user %v, and changed sessions", err, userErr)
		}
	})
}
