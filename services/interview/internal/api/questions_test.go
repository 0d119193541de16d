package api_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// ignoreServerFields leaves out what the server assigns: id, etag and times.
var ignoreServerFields = protocmp.IgnoreFields(&interviewv1.Question{}, "id", "etag", "create_time", "update_time")

func TestQuestionBank_CreateGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := &interviewv1.Question{
		Key: "sql-joins-01", Text: "What does a LEFT OUTER JOIN return?", Category: "SQL", Difficulty: 2,
		Tags: []string{"joins", "sql"},
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
			point("all rows of the left table", 2, "left table", "all rows"),
			point("nulls for missing right rows", 1, "null"),
		}},
		Etag: `"99"`, // ignored on create
	}
	created, err := e.bank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{Question: in})
	if err != nil {
		t.Fatalf("CreateQuestion: %v", err)
	}
	q := created.GetQuestion()
	if diff := cmp.Diff(in, q, protocmp.Transform(), ignoreServerFields); diff != "" {
		t.Errorf("CreateQuestion mismatch (-want +got):\n%s", diff)
	}
	if q.GetId() <= 0 || q.GetEtag() == "" || q.GetEtag() == in.GetEtag() || q.GetCreateTime() == nil || q.GetUpdateTime() == nil {
		t.Errorf("CreateQuestion = id %d, etag %q, times %v %v: want an id, a new etag and both times",
			q.GetId(), q.GetEtag(), q.GetCreateTime(), q.GetUpdateTime())
	}

	got, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
	if err != nil {
		t.Fatalf("GetQuestion(%d): %v", q.GetId(), err)
	}
	if diff := cmp.Diff(q, got.GetQuestion(), protocmp.Transform()); diff != "" {
		t.Errorf("GetQuestion(%d) mismatch (-want +got):\n%s", q.GetId(), diff)
	}

	_, err = e.bank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{Question: question("sql-joins-01", "Go", 1)})
	wantStatus(t, err, codes.AlreadyExists, `"sql-joins-01"`)
	apptest.WantReason(t, err, apierr.QuestionAlreadyExists, map[string]string{"key": "sql-joins-01"})

	_, err = e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId() + 1000})
	apptest.WantCode(t, err, codes.NotFound)
	apptest.WantReason(t, err, apierr.QuestionNotFound, map[string]string{"question_id": strconv.FormatInt(q.GetId()+1000, 10)})
}

func TestQuestionBank_UpdateQuestion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("mask_changes_only_named_fields", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("mask-difficulty", "SQL", 2, "joins"))[0]
		resp, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question:   &interviewv1.Question{Id: q.GetId(), Text: "not applied", Category: "not applied", Difficulty: 4},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"difficulty"}},
		})
		if err != nil {
			t.Fatalf("UpdateQuestion: %v", err)
		}
		got := resp.GetQuestion()
		want := proto.Clone(q).(*interviewv1.Question)
		want.Difficulty = 4
		if diff := cmp.Diff(want, got, protocmp.Transform(),
			protocmp.IgnoreFields(&interviewv1.Question{}, "etag", "update_time")); diff != "" {
			t.Errorf("UpdateQuestion mismatch (-want +got):\n%s", diff)
		}
		if got.GetEtag() == q.GetEtag() {
			t.Errorf("UpdateQuestion etag = %q, the etag before the update; want a new one", got.GetEtag())
		}
		read, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		if err != nil {
			t.Fatalf("GetQuestion: %v", err)
		}
		if diff := cmp.Diff(got, read.GetQuestion(), protocmp.Transform()); diff != "" {
			t.Errorf("GetQuestion after update mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("stale_etag", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("stale-etag", "SQL", 2))[0]
		update := func(etag string, difficulty int32) (*interviewv1.UpdateQuestionResponse, error) {
			return e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
				Question:   &interviewv1.Question{Id: q.GetId(), Etag: etag, Difficulty: difficulty},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"difficulty"}},
			})
		}
		first, err := update(q.GetEtag(), 3)
		if err != nil {
			t.Fatalf("UpdateQuestion with the current etag: %v", err)
		}
		_, err = update(q.GetEtag(), 4)
		wantStatus(t, err, codes.Aborted, "read it again")
		apptest.WantReason(t, err, apierr.StaleEtag, map[string]string{"question_id": strconv.FormatInt(q.GetId(), 10)})
		_, err = e.bank.DeleteQuestion(t.Context(), &interviewv1.DeleteQuestionRequest{QuestionId: q.GetId(), Etag: q.GetEtag()})
		wantStatus(t, err, codes.Aborted, "read it again")
		apptest.WantReason(t, err, apierr.StaleEtag, map[string]string{"question_id": strconv.FormatInt(q.GetId(), 10)})
		if _, err := update(first.GetQuestion().GetEtag(), 5); err != nil {
			t.Errorf("UpdateQuestion with the etag of the last update: %v", err)
		}
	})

	t.Run("concurrent_updates_with_one_etag", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("concurrent-etag", "SQL", 1))[0]
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
					Question:   &interviewv1.Question{Id: q.GetId(), Etag: q.GetEtag(), Text: "Version " + string(rune('a'+i)) + "?"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}},
				})
			})
		}
		wg.Wait()
		ok, winner := 0, -1
		for i, err := range errs {
			switch status.Code(err) {
			case codes.OK:
				ok++
				winner = i
			case codes.Aborted:
			default:
				t.Errorf("update %d: %v, want OK or Aborted", i, err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent updates with one etag succeeded, want exactly 1", ok, n)
		}
		got, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		if err != nil {
			t.Fatalf("GetQuestion: %v", err)
		}
		if want := "Version " + string(rune('a'+winner)) + "?"; got.GetQuestion().GetText() != want {
			t.Errorf("text = %q, want the winner's %q", got.GetQuestion().GetText(), want)
		}
	})

	// Without an etag the last write wins: concurrent updates of different fields all land.
	t.Run("concurrent_updates_without_etag", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("concurrent-no-etag", "SQL", 1))[0]
		updates := []*interviewv1.UpdateQuestionRequest{
			{Question: &interviewv1.Question{Id: q.GetId(), Text: "New text?"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}}},
			{Question: &interviewv1.Question{Id: q.GetId(), Category: "Go"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"category"}}},
			{Question: &interviewv1.Question{Id: q.GetId(), Difficulty: 5}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"difficulty"}}},
			{Question: &interviewv1.Question{Id: q.GetId(), Tags: []string{"new"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tags"}}},
		}
		var wg sync.WaitGroup
		for _, req := range updates {
			wg.Go(func() {
				if _, err := e.bank.UpdateQuestion(t.Context(), req); err != nil {
					t.Errorf("UpdateQuestion(%v) without etag: %v", req.GetUpdateMask().GetPaths(), err)
				}
			})
		}
		wg.Wait()
		got, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		if err != nil {
			t.Fatalf("GetQuestion: %v", err)
		}
		want := proto.Clone(q).(*interviewv1.Question)
		want.Text, want.Category, want.Difficulty, want.Tags = "New text?", "Go", 5, []string{"new"}
		if diff := cmp.Diff(want, got.GetQuestion(), protocmp.Transform(),
			protocmp.IgnoreFields(&interviewv1.Question{}, "etag", "update_time")); diff != "" {
			t.Errorf("after concurrent updates of different fields (-want +got):\n%s", diff)
		}
	})

	t.Run("empty_mask_replaces_all", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("replace-all", "SQL", 1, "old"))[0]
		in := &interviewv1.Question{
			Id: q.GetId(), Key: "another-key", Etag: q.GetEtag(), // the key is not updatable: ignored
			Text: "What is MVCC?", Category: "PostgreSQL", Difficulty: 5, Tags: []string{"mvcc", "internals"},
			Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{point("row versions", 3, "version", "tuple")}},
		}
		resp, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{Question: in})
		if err != nil {
			t.Fatalf("UpdateQuestion: %v", err)
		}
		want := proto.Clone(in).(*interviewv1.Question)
		want.Key = q.GetKey()
		if diff := cmp.Diff(want, resp.GetQuestion(), protocmp.Transform(),
			protocmp.IgnoreFields(&interviewv1.Question{}, "etag", "create_time", "update_time")); diff != "" {
			t.Errorf("UpdateQuestion mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("empty_mask_needs_a_whole_question", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("replace-partial", "SQL", 1))[0]
		_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question: &interviewv1.Question{Id: q.GetId(), Text: "Only the text?"}})
		wantViolation(t, err, "question.category")
	})

	t.Run("masked_value_out_of_range", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("mask-invalid", "SQL", 1))[0]
		_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question:   &interviewv1.Question{Id: q.GetId(), Difficulty: 6},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"difficulty"}},
		})
		wantViolation(t, err, "question.difficulty")
	})

	t.Run("unknown_mask_path", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("mask-unknown", "SQL", 1))[0]
		for _, path := range []string{"answer", "rubric.points.weight", "search", "version"} {
			_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
				Question:   &interviewv1.Question{Id: q.GetId(), Text: "Changed?"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text", path}},
			})
			wantViolation(t, err, "update_mask")
		}
	})

	// The gateway, without an update_mask query parameter, sends the paths present in the
	// body: a question PATCHed back as read names id, key, etag and the times too, and the
	// rubric as "rubric.points". Those change nothing; the etag still guards the update.
	t.Run("mask_of_a_question_as_read", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("mask-as-read", "SQL", 2, "joins"))[0]
		asRead := []string{"category", "create_time", "difficulty", "etag", "id", "key", "rubric.points", "tags", "text", "update_time"}
		edit := proto.Clone(q).(*interviewv1.Question)
		edit.Text = "What does an inner join return?"
		edit.Rubric.Points[0].Weight = 3
		resp, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question: edit, UpdateMask: &fieldmaskpb.FieldMask{Paths: asRead}})
		if err != nil {
			t.Fatalf("UpdateQuestion(question as read, mask %v): %v", asRead, err)
		}
		got := resp.GetQuestion()
		if diff := cmp.Diff(edit, got, protocmp.Transform(),
			protocmp.IgnoreFields(&interviewv1.Question{}, "etag", "update_time")); diff != "" {
			t.Errorf("UpdateQuestion mismatch (-want +got):\n%s", diff)
		}
		if got.GetEtag() == q.GetEtag() {
			t.Errorf("UpdateQuestion etag = %q, unchanged; want a new one", got.GetEtag())
		}
		// The same body again carries the etag it was read with, now stale.
		_, err = e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question: edit, UpdateMask: &fieldmaskpb.FieldMask{Paths: asRead}})
		wantStatus(t, err, codes.Aborted, "read it again")
		// With the etag of the update it applies; id and etag alone change nothing else.
		_, err = e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question:   &interviewv1.Question{Id: q.GetId(), Etag: got.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"etag", "id"}}})
		if err != nil {
			t.Fatalf("UpdateQuestion(mask [etag id]): %v", err)
		}
		read, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, read.GetQuestion(), protocmp.Transform(),
			protocmp.IgnoreFields(&interviewv1.Question{}, "etag", "update_time")); diff != "" {
			t.Errorf("after an update masking only id and etag (-want +got):\n%s", diff)
		}
	})

	t.Run("key_is_immutable", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("mask-key", "SQL", 2))[0]
		_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question:   &interviewv1.Question{Id: q.GetId(), Key: "another-key", Etag: q.GetEtag(), Text: "Changed?"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"key", "text"}},
		})
		wantViolation(t, err, "question.key")
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "immutable") {
			t.Errorf("message = %q, want it to say the key is immutable", msg)
		}
		read, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(q, read.GetQuestion(), protocmp.Transform()); diff != "" {
			t.Errorf("question after a refused key change (-want +got):\n%s", diff)
		}
	})

	t.Run("missing_question", func(t *testing.T) {
		t.Parallel()
		_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question:   &interviewv1.Question{Id: 1 << 40, Difficulty: 3},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"difficulty"}},
		})
		apptest.WantCode(t, err, codes.NotFound)
	})
}

func TestQuestionBank_DeleteQuestion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("unused", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("delete-me", "Go", 1))[0]
		if _, err := e.bank.DeleteQuestion(t.Context(), &interviewv1.DeleteQuestionRequest{QuestionId: q.GetId(), Etag: q.GetEtag()}); err != nil {
			t.Fatalf("DeleteQuestion: %v", err)
		}
		_, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()})
		apptest.WantCode(t, err, codes.NotFound)
		_, err = e.bank.DeleteQuestion(t.Context(), &interviewv1.DeleteQuestionRequest{QuestionId: q.GetId()})
		apptest.WantCode(t, err, codes.NotFound)
	})

	t.Run("used_by_a_session", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, question("asked-once", "Asked", 1))[0]
		e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"Asked"}, Count: 1})
		_, err := e.bank.DeleteQuestion(t.Context(), &interviewv1.DeleteQuestionRequest{QuestionId: q.GetId()})
		wantStatus(t, err, codes.FailedPrecondition, "part of interview sessions")
		apptest.WantReason(t, err, apierr.QuestionInUse, map[string]string{"question_id": strconv.FormatInt(q.GetId(), 10)})
		if _, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: q.GetId()}); err != nil {
			t.Errorf("GetQuestion after a refused delete: %v", err)
		}
	})
}

// listBank is the bank the list tests read, in creation (id) order.
var listBank = []*interviewv1.Question{
	{Key: "sql-outer-join", Text: "Explain a left outer join.", Category: "SQL", Difficulty: 3, Tags: []string{"joins"}},
	{Key: "sql-inner-join", Text: "What does an inner join return?", Category: "SQL", Difficulty: 2, Tags: []string{"joins", "basics"}},
	{Key: "sql-index", Text: "When does the planner use an index?", Category: "SQL", Difficulty: 1, Tags: []string{"indexes"}},
	{Key: "sql-window", Text: "What is a window function?", Category: "SQL", Difficulty: 4},
	{Key: "go-channels", Text: "How do channels and joins of goroutines work?", Category: "Go", Difficulty: 3, Tags: []string{"concurrency"}},
	{Key: "go-closures", Text: "What does an outer function share with a closure?", Category: "Go", Difficulty: 2},
	{Key: "go-generics", Text: "When are generics worth it?", Category: "Go", Difficulty: 5},
	{Key: "pg-mvcc", Text: "How does MVCC avoid read locks?", Category: "PostgreSQL", Difficulty: 3, Tags: []string{"internals"}},
}

func TestQuestionBank_ListQuestions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, q := range listBank {
		q := proto.Clone(q).(*interviewv1.Question)
		q.Rubric = &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{point("anything", 1, "anything")}}
		e.create(t, q)
	}
	// list returns the keys of all pages of a listing, fetched page_size at a time.
	list := func(t *testing.T, filter, orderBy string, pageSize int32) ([]string, error) {
		var keys []string
		token := ""
		for range 100 {
			resp, err := e.bank.ListQuestions(t.Context(), &interviewv1.ListQuestionsRequest{
				Filter: filter, OrderBy: orderBy, PageSize: pageSize, PageToken: token})
			if err != nil {
				return nil, err
			}
			for _, q := range resp.GetQuestions() {
				keys = append(keys, q.GetKey())
			}
			if token = resp.GetNextPageToken(); token == "" {
				return keys, nil
			}
		}
		t.Fatalf("ListQuestions(%q, %q, %d): no last page after 100 pages", filter, orderBy, pageSize)
		return nil, nil
	}

	tests := []struct {
		name            string
		filter, orderBy string
		want            []string
	}{
		{name: "all", want: []string{"sql-outer-join", "sql-inner-join", "sql-index", "sql-window", "go-channels", "go-closures", "go-generics", "pg-mvcc"}},
		{name: "category_and_difficulty", filter: `category = "SQL" AND difficulty >= 2`, want: []string{"sql-outer-join", "sql-inner-join", "sql-window"}},
		{name: "has_tag", filter: `tags:"joins"`, want: []string{"sql-outer-join", "sql-inner-join"}},
		{name: "full_text", filter: `text:"outer join"`, want: []string{"sql-outer-join"}},
		{name: "full_text_or_category", filter: `text:"outer join" OR category = "PostgreSQL"`, want: []string{"sql-outer-join", "pg-mvcc"}},
		{name: "difficulty_desc", orderBy: "difficulty desc",
			// id breaks ties in the direction of the last field named
			want: []string{"go-generics", "sql-window", "pg-mvcc", "go-channels", "sql-outer-join", "go-closures", "sql-inner-join", "sql-index"}},
		{name: "category_then_key", filter: `difficulty <= 3`, orderBy: "category, key desc",
			want: []string{"go-closures", "go-channels", "pg-mvcc", "sql-outer-join", "sql-inner-join", "sql-index"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			big, err := list(t, tt.filter, tt.orderBy, 100)
			if err != nil {
				t.Fatalf("ListQuestions(%q, %q): %v", tt.filter, tt.orderBy, err)
			}
			if diff := cmp.Diff(tt.want, big); diff != "" {
				t.Errorf("ListQuestions(%q, %q) mismatch (-want +got):\n%s", tt.filter, tt.orderBy, diff)
			}
			paged, err := list(t, tt.filter, tt.orderBy, 2)
			if err != nil {
				t.Fatalf("ListQuestions(%q, %q) by pages of 2: %v", tt.filter, tt.orderBy, err)
			}
			if diff := cmp.Diff(big, paged); diff != "" {
				t.Errorf("pages of 2 differ from one page (-one +pages):\n%s", diff)
			}
		})
	}

	t.Run("questions_in_full", func(t *testing.T) {
		t.Parallel()
		resp, err := e.bank.ListQuestions(t.Context(), &interviewv1.ListQuestionsRequest{Filter: `key = "sql-inner-join"`})
		if err != nil {
			t.Fatalf("ListQuestions: %v", err)
		}
		if len(resp.GetQuestions()) != 1 {
			t.Fatalf("ListQuestions(key) = %d questions, want 1", len(resp.GetQuestions()))
		}
		got := resp.GetQuestions()[0]
		read, err := e.bank.GetQuestion(t.Context(), &interviewv1.GetQuestionRequest{QuestionId: got.GetId()})
		if err != nil {
			t.Fatalf("GetQuestion: %v", err)
		}
		if diff := cmp.Diff(read.GetQuestion(), got, protocmp.Transform()); diff != "" {
			t.Errorf("listed question differs from GetQuestion (-get +list):\n%s", diff)
		}
	})

	t.Run("token_of_another_listing", func(t *testing.T) {
		t.Parallel()
		resp, err := e.bank.ListQuestions(t.Context(), &interviewv1.ListQuestionsRequest{PageSize: 2})
		if err != nil {
			t.Fatalf("ListQuestions: %v", err)
		}
		_, err = e.bank.ListQuestions(t.Context(), &interviewv1.ListQuestionsRequest{
			PageSize: 2, OrderBy: "difficulty", PageToken: resp.GetNextPageToken()})
		wantViolation(t, err, "page_token")
	})
}

func TestQuestionBank_BulkImportQuestions(t *testing.T) {
	t.Parallel()

	t.Run("counts", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		batch := []*interviewv1.Question{question("imp-a", "SQL", 1), question("imp-b", "SQL", 2, "x"), question("imp-c", "Go", 3)}
		resp, err := e.bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: batch})
		if err != nil {
			t.Fatalf("BulkImportQuestions: %v", err)
		}
		want := &interviewv1.BulkImportQuestionsResponse{InsertedCount: 3}
		if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
			t.Errorf("first import mismatch (-want +got):\n%s", diff)
		}
		before := listByKey(t, e)

		changed := proto.Clone(batch[1]).(*interviewv1.Question)
		changed.Rubric.Points = append(changed.Rubric.Points, point("a second point", 2, "second"))
		again := []*interviewv1.Question{batch[0], changed, batch[2], question("imp-d", "Go", 4)}
		resp, err = e.bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: again})
		if err != nil {
			t.Fatalf("BulkImportQuestions again: %v", err)
		}
		want = &interviewv1.BulkImportQuestionsResponse{InsertedCount: 1, UpdatedCount: 1, UnchangedCount: 2}
		if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
			t.Errorf("re-import with one change mismatch (-want +got):\n%s", diff)
		}
		after := listByKey(t, e)
		for _, key := range []string{"imp-a", "imp-c"} {
			if diff := cmp.Diff(before[key], after[key], protocmp.Transform()); diff != "" {
				t.Errorf("unchanged %s was rewritten (-before +after):\n%s", key, diff)
			}
		}
		if diff := cmp.Diff(changed, after["imp-b"], protocmp.Transform(), ignoreServerFields); diff != "" {
			t.Errorf("imp-b mismatch (-want +got):\n%s", diff)
		}
		if after["imp-b"].GetEtag() == before["imp-b"].GetEtag() {
			t.Errorf("imp-b etag = %q after a change, want a new one", after["imp-b"].GetEtag())
		}
		if diff := cmp.Diff(again[3], after["imp-d"], protocmp.Transform(), ignoreServerFields); diff != "" {
			t.Errorf("imp-d mismatch (-want +got):\n%s", diff)
		}

		resp, err = e.bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: again})
		if err != nil {
			t.Fatalf("BulkImportQuestions a third time: %v", err)
		}
		want = &interviewv1.BulkImportQuestionsResponse{UnchangedCount: 4}
		if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
			t.Errorf("identical re-import mismatch (-want +got):\n%s", diff)
		}
	})

	tests := []struct {
		name      string
		batch     []*interviewv1.Question
		wantField string
	}{
		{name: "difficulty_out_of_range", wantField: "questions[1].difficulty",
			batch: []*interviewv1.Question{question("bad-a", "SQL", 1), question("bad-b", "SQL", 9), question("bad-c", "SQL", 1)}},
		{name: "duplicate_key", wantField: "questions[2].key",
			batch: []*interviewv1.Question{question("dup-a", "SQL", 1), question("dup-b", "SQL", 1), question("dup-a", "Go", 2)}},
		{name: "no_key", wantField: "questions[0].key",
			batch: []*interviewv1.Question{question("", "SQL", 1)}},
		{name: "no_rubric", wantField: "questions[1].rubric.points",
			batch: []*interviewv1.Question{question("nr-a", "SQL", 1), {Key: "nr-b", Text: "Why?", Category: "SQL", Difficulty: 1}}},
		{name: "empty", wantField: "questions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, err := e.bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: tt.batch})
			wantViolation(t, err, tt.wantField)
			if got := listByKey(t, e); len(got) != 0 {
				t.Errorf("after a refused import the bank holds %d questions, want none", len(got))
			}
		})
	}
}

// listByKey returns every question of the bank by key.
func listByKey(t *testing.T, e env) map[string]*interviewv1.Question {
	t.Helper()
	resp, err := e.bank.ListQuestions(t.Context(), &interviewv1.ListQuestionsRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListQuestions: %v", err)
	}
	out := map[string]*interviewv1.Question{}
	for _, q := range resp.GetQuestions() {
		out[q.GetKey()] = q
	}
	return out
}

func TestQuestionBank_BadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.create(t, question("bad-input", "SQL", 1))[0]
	with := func(f func(*interviewv1.Question)) *interviewv1.Question {
		c := question("valid-key", "SQL", 3)
		f(c)
		return c
	}
	create := func(q *interviewv1.Question) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: q})
			return err
		}
	}
	update := func(q *interviewv1.Question, paths ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.bank.UpdateQuestion(ctx, &interviewv1.UpdateQuestionRequest{Question: q, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			return err
		}
	}
	tests := []struct {
		name      string
		call      func(context.Context) error
		wantField string
	}{
		{"create_no_question", create(nil), "question.key"},
		{"create_bad_key", create(with(func(q *interviewv1.Question) { q.Key = "Bad Key" })), "question.key"},
		{"create_key_leading_dash", create(with(func(q *interviewv1.Question) { q.Key = "-abc" })), "question.key"},
		{"create_blank_text", create(with(func(q *interviewv1.Question) { q.Text = "  " })), "question.text"},
		{"create_text_too_long", create(with(func(q *interviewv1.Question) { q.Text = strings.Repeat("x", 5001) })), "question.text"},
		{"create_no_category", create(with(func(q *interviewv1.Question) { q.Category = "" })), "question.category"},
		{"create_difficulty_0", create(with(func(q *interviewv1.Question) { q.Difficulty = 0 })), "question.difficulty"},
		{"create_difficulty_6", create(with(func(q *interviewv1.Question) { q.Difficulty = 6 })), "question.difficulty"},
		{"create_uppercase_tag", create(with(func(q *interviewv1.Question) { q.Tags = []string{"ok", "SQL"} })), "question.tags[1]"},
		{"create_repeated_tag", create(with(func(q *interviewv1.Question) { q.Tags = []string{"a", "a"} })), "question.tags[1]"},
		{"create_no_rubric", create(with(func(q *interviewv1.Question) { q.Rubric = nil })), "question.rubric.points"},
		{"create_weight_0", create(with(func(q *interviewv1.Question) { q.Rubric.Points[0].Weight = 0 })), "question.rubric.points[0].weight"},
		{"create_weight_101", create(with(func(q *interviewv1.Question) { q.Rubric.Points[0].Weight = 101 })), "question.rubric.points[0].weight"},
		{"create_no_keywords", create(with(func(q *interviewv1.Question) { q.Rubric.Points[0].Keywords = nil })), "question.rubric.points[0].keywords"},
		{"create_blank_keyword", create(with(func(q *interviewv1.Question) { q.Rubric.Points[0].Keywords = []string{"a", " "} })), "question.rubric.points[0].keywords[1]"},
		{"create_no_description", create(with(func(q *interviewv1.Question) { q.Rubric.Points[0].Description = "" })), "question.rubric.points[0].description"},
		{"get_no_id", func(ctx context.Context) error {
			_, err := e.bank.GetQuestion(ctx, &interviewv1.GetQuestionRequest{})
			return err
		}, "question_id"},
		{"get_negative_id", func(ctx context.Context) error {
			_, err := e.bank.GetQuestion(ctx, &interviewv1.GetQuestionRequest{QuestionId: -1})
			return err
		}, "question_id"},
		{"update_no_id", update(&interviewv1.Question{Difficulty: 2}, "difficulty"), "question.id"},
		{"update_bad_etag", update(&interviewv1.Question{Id: q.GetId(), Etag: "3", Difficulty: 2}, "difficulty"), "question.etag"},
		{"update_etag_not_a_version", update(&interviewv1.Question{Id: q.GetId(), Etag: `"x"`, Difficulty: 2}, "difficulty"), "question.etag"},
		{"update_unknown_path", update(&interviewv1.Question{Id: q.GetId()}, "difficulty", "colour"), "update_mask"},
		{"update_difficulty_out_of_range", update(&interviewv1.Question{Id: q.GetId(), Difficulty: 9}, "difficulty"), "question.difficulty"},
		{"delete_no_id", func(ctx context.Context) error {
			_, err := e.bank.DeleteQuestion(ctx, &interviewv1.DeleteQuestionRequest{})
			return err
		}, "question_id"},
		{"delete_bad_etag", func(ctx context.Context) error {
			_, err := e.bank.DeleteQuestion(ctx, &interviewv1.DeleteQuestionRequest{QuestionId: q.GetId(), Etag: "W/1"})
			return err
		}, "etag"},
		{"list_bad_filter", func(ctx context.Context) error {
			_, err := e.bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{Filter: `answer = "x"`})
			return err
		}, "filter"},
		{"list_has_on_scalar", func(ctx context.Context) error {
			_, err := e.bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{Filter: `category:"SQL"`})
			return err
		}, "filter"},
		{"list_bad_order_by", func(ctx context.Context) error {
			_, err := e.bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{OrderBy: "tags"})
			return err
		}, "order_by"},
		{"list_negative_page_size", func(ctx context.Context) error {
			_, err := e.bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"list_bad_token", func(ctx context.Context) error {
			_, err := e.bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{PageToken: "not-a-token"})
			return err
		}, "page_token"},
		{"import_too_many", func(ctx context.Context) error {
			qs := make([]*interviewv1.Question, 1001)
			for i := range qs {
				qs[i] = question("k", "SQL", 1)
			}
			_, err := e.bank.BulkImportQuestions(ctx, &interviewv1.BulkImportQuestionsRequest{Questions: qs})
			return err
		}, "questions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantViolation(t, tt.call(t.Context()), tt.wantField)
		})
	}
}
