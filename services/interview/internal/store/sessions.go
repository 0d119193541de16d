package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Session states, as stored (the proto enum's value names).
const (
	InProgress = "SESSION_STATE_IN_PROGRESS"
	Completed  = "SESSION_STATE_COMPLETED"
)

// Session is a row of interview.sessions.
type Session struct {
	ID            int64           `db:"id"`
	Candidate     string          `db:"candidate"`
	Categories    []string        `db:"categories"`
	MinDifficulty int32           `db:"min_difficulty"`
	MaxDifficulty int32           `db:"max_difficulty"`
	QuestionCount int32           `db:"question_count"`
	State         string          `db:"state"`
	Summary       json.RawMessage `db:"summary"` // nil until completed
	CreateTime    time.Time       `db:"create_time"`
	CompleteTime  *time.Time      `db:"complete_time"`
}

// Evaluation is how an answer scored.
type Evaluation struct {
	Score          float64
	PointsMet      []string
	PointsMissed   []string
	Evaluator      string
	FallbackReason string
	Feedback       string
}

// SessionQuestion is a question as asked in a session, with its answer once given.
type SessionQuestion struct {
	Position   int32      `db:"position"`
	QuestionID int64      `db:"question_id"`
	Text       string     `db:"text"`
	Category   string     `db:"category"`
	Difficulty int32      `db:"difficulty"`
	Rubric     Rubric     `db:"rubric"`
	Answer     *string    `db:"answer"` // nil until answered
	Score      *float64   `db:"score"`
	Met        []string   `db:"points_met"`
	Missed     []string   `db:"points_missed"`
	Evaluator  *string    `db:"evaluator"`
	Fallback   *string    `db:"fallback_reason"`
	Feedback   *string    `db:"feedback"`
	SubmitTime *time.Time `db:"submit_time"`
}

const sessionColumns = `id, candidate, categories, min_difficulty, max_difficulty, question_count, state, summary, create_time, complete_time`

// PickQuestions returns up to count random question ids matching the criteria, those the
// candidate has not been asked in the last 90 days first.
func (s *Store) PickQuestions(ctx context.Context, candidate string, categories []string, minD, maxD, count int32) ([]int64, error) {
	const sql = `
		SELECT q.id
		FROM interview.questions q
		WHERE (cardinality($1::text[]) = 0 OR q.category = ANY($1))
		  AND q.difficulty BETWEEN $2 AND $3
		ORDER BY EXISTS (
			SELECT 1 FROM interview.session_questions sq JOIN interview.sessions s ON s.id = sq.session_id
			WHERE sq.question_id = q.id AND s.candidate = $4 AND s.create_time > now() - interval '90 days'
		), random()
		LIMIT $5`
	if categories == nil {
		categories = []string{}
	}
	rows, _ := s.db.Query(ctx, sql, categories, minD, maxD, candidate, count)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("pick questions: %w", err)
	}
	return ids, nil
}

// CreateSession stores a session asking questionIDs in that order, once per request r (its
// Scope is the candidate). A request r made before gives the session it opened and stores
// nothing, or ErrRequestReused if that session has other criteria.
func (s *Store) CreateSession(ctx context.Context, sess Session, r Request, questionIDs []int64) (Session, error) {
	// The one unique index, on (candidate, request_id), arbitrates: a concurrent repeat waits
	// for the first to commit, inserts nothing, and, in READ COMMITTED, reads the first's
	// session in its next statement.
	const insert = `
		INSERT INTO interview.sessions (candidate, categories, min_difficulty, max_difficulty, question_count, request_id)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING
		RETURNING ` + sessionColumns
	const questions = `
		INSERT INTO interview.session_questions (session_id, position, question_id, text, category, difficulty, rubric)
		SELECT $1, u.ord, q.id, q.text, q.category, q.difficulty, q.rubric
		FROM unnest($2::bigint[]) WITH ORDINALITY AS u(id, ord) JOIN interview.questions q ON q.id = u.id`
	if sess.Categories == nil {
		sess.Categories = []string{}
	}
	sess.QuestionCount = int32(len(questionIDs))
	rows, _ := s.db.Query(ctx, insert, sess.Candidate, sess.Categories, sess.MinDifficulty, sess.MaxDifficulty,
		sess.QuestionCount, r.ID)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session])
	if errors.Is(err, pgx.ErrNoRows) && r.ID != "" {
		return s.SessionByRequest(ctx, r, sess)
	}
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	if _, err := s.db.Exec(ctx, questions, out.ID, questionIDs); err != nil {
		return Session{}, fmt.Errorf("create session questions: %w", err)
	}
	return out, nil
}

// SessionByRequest returns the session opened by request r (its Scope is the candidate), or
// an error wrapping ErrNotFound if there is none, or ErrRequestReused if it was opened with
// other criteria than want's (categories, difficulties and question count).
func (s *Store) SessionByRequest(ctx context.Context, r Request, want Session) (Session, error) {
	const sql = `SELECT ` + sessionColumns + ` FROM interview.sessions WHERE candidate = $1 AND request_id = $2`
	rows, _ := s.db.Query(ctx, sql, r.Scope, r.ID)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Session{}, fmt.Errorf("session of request %q: %w", r.ID, ErrNotFound)
	case err != nil:
		return Session{}, fmt.Errorf("session of request %q: %w", r.ID, err)
	case !slices.Equal(out.Categories, want.Categories) || out.MinDifficulty != want.MinDifficulty ||
		out.MaxDifficulty != want.MaxDifficulty || out.QuestionCount != want.QuestionCount:
		return Session{}, fmt.Errorf("session of request %q: %w", r.ID, ErrRequestReused)
	}
	return out, nil
}

// RowLock is a row lock GetSession may take on the session.
type RowLock string

// Row locks: answers take the session's row FOR SHARE (they may run together), completion
// takes it FOR UPDATE, so an answer and the completion of one session never interleave.
const (
	NoLock     RowLock = ""
	ShareLock  RowLock = " FOR SHARE"
	UpdateLock RowLock = " FOR UPDATE"
)

// GetSession returns a session or an error wrapping ErrNotFound, taking lock on its row.
func (s *Store) GetSession(ctx context.Context, id int64, lock RowLock) (Session, error) {
	sql := `SELECT ` + sessionColumns + ` FROM interview.sessions WHERE id = $1` + string(lock)
	rows, _ := s.db.Query(ctx, sql, id)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session])
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, &NotFoundError{Kind: "session", Field: "session_id", Key: id}
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session %d: %w", id, err)
	}
	return out, nil
}

// SessionQuestions returns a session's questions in order, with their answers.
func (s *Store) SessionQuestions(ctx context.Context, sessionID int64) ([]SessionQuestion, error) {
	const sql = `
		SELECT sq.position, sq.question_id, sq.text, sq.category, sq.difficulty, sq.rubric,
		       sq.answer, sq.score::float8 AS score, sq.points_met, sq.points_missed, sq.evaluator,
		       sq.fallback_reason, sq.feedback, sq.submit_time
		FROM interview.session_questions sq
		WHERE sq.session_id = $1
		ORDER BY sq.position`
	rows, _ := s.db.Query(ctx, sql, sessionID)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[SessionQuestion])
	if err != nil {
		return nil, fmt.Errorf("questions of session %d: %w", sessionID, err)
	}
	return list, nil
}

// SaveAnswer stores the answer to one question of a session if it has none yet, and
// returns its submit time, or ok false if the question already had an answer.
func (s *Store) SaveAnswer(ctx context.Context, sessionID, questionID int64, answer string, e Evaluation) (submitted time.Time, ok bool, err error) {
	const sql = `
		UPDATE interview.session_questions
		SET answer = $3, score = $4, points_met = $5, points_missed = $6, evaluator = $7,
		    fallback_reason = $8, feedback = $9, submit_time = now()
		WHERE session_id = $1 AND question_id = $2 AND answer IS NULL
		RETURNING submit_time`
	err = s.db.QueryRow(ctx, sql, sessionID, questionID, answer, e.Score, nonNil(e.PointsMet), nonNil(e.PointsMissed),
		e.Evaluator, e.FallbackReason, e.Feedback).Scan(&submitted)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("save answer: %w", err)
	}
	return submitted, true, nil
}

// Unanswered counts a session's questions without an answer.
func (s *Store) Unanswered(ctx context.Context, sessionID int64) (int32, error) {
	const sql = `SELECT count(*) FROM interview.session_questions WHERE session_id = $1 AND answer IS NULL`
	var n int32
	if err := s.db.QueryRow(ctx, sql, sessionID).Scan(&n); err != nil {
		return 0, fmt.Errorf("unanswered questions of session %d: %w", sessionID, err)
	}
	return n, nil
}

// CompleteSession marks a session completed with its summary, if it is in progress, and
// returns it as completed, or ok false if it was not in progress.
func (s *Store) CompleteSession(ctx context.Context, id int64, summary json.RawMessage) (sess Session, ok bool, err error) {
	const sql = `
		UPDATE interview.sessions SET state = $2, summary = $3, complete_time = now()
		WHERE id = $1 AND state = $4
		RETURNING ` + sessionColumns
	rows, _ := s.db.Query(ctx, sql, id, Completed, summary, InProgress)
	sess, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Session{}, false, nil
	case err != nil:
		return Session{}, false, fmt.Errorf("complete session %d: %w", id, err)
	}
	return sess, true, nil
}

// ListSessions returns one page of sessions: of every candidate when candidate is "", else
// of that one only.
func (s *Store) ListSessions(ctx context.Context, candidate string, page *query.Query) ([]Session, error) {
	const sel = `SELECT ` + sessionColumns + ` FROM interview.sessions`
	sql, args := page.SQL(sel), page.NamedArgs(nil)
	if candidate != "" {
		sql = page.SQL(sel, `candidate = @candidate`)
		args = page.NamedArgs(pgx.NamedArgs{"candidate": candidate})
	}
	rows, _ := s.db.Query(ctx, sql, args)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Session])
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return list, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
