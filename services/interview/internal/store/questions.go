package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Point is one rubric point, stored in the questions.rubric JSON.
type Point struct {
	Description string   `json:"description"`
	Weight      int      `json:"weight"`
	Keywords    []string `json:"keywords"`
}

// Rubric is what a good answer covers.
type Rubric struct {
	Points []Point `json:"points"`
}

// Question is a row of interview.questions.
type Question struct {
	ID         int64     `db:"id"`
	Key        string    `db:"key"`
	Text       string    `db:"text"`
	Category   string    `db:"category"`
	Difficulty int32     `db:"difficulty"`
	Tags       []string  `db:"tags"`
	Rubric     Rubric    `db:"rubric"` // jsonb
	Version    int64     `db:"version"`
	CreateTime time.Time `db:"create_time"`
	UpdateTime time.Time `db:"update_time"`
}

const questionColumns = `id, key, text, category, difficulty, tags, rubric, version, create_time, update_time`

// CreateQuestion inserts a question, once per request r; hash is what the request asked. A
// taken key gives ErrConflict. A request r made before gives the question it created, as it
// is now, or ErrRequestReused if its hash differs.
func (s *Store) CreateQuestion(ctx context.Context, q Question, r Request, hash []byte) (Question, error) {
	// Without a conflict target every unique index arbitrates: a taken key or request_id
	// inserts nothing, after waiting for a concurrent inserter to commit or roll back. Under
	// READ COMMITTED the next statement then sees the row that won.
	const insert = `
		INSERT INTO interview.questions (key, text, category, difficulty, tags, rubric, request_subject, request_id, request_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING
		RETURNING ` + questionColumns
	const byRequest = `SELECT request_hash, ` + questionColumns + `
		FROM interview.questions WHERE request_subject = $1 AND request_id = $2`
	if r.ID == "" {
		r.Scope, hash = "", nil
	}
	rows, _ := s.db.Query(ctx, insert, q.Key, q.Text, q.Category, q.Difficulty, q.Tags, q.Rubric, r.Scope, r.ID, hash)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Question])
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Question{}, fmt.Errorf("create question: %w", err)
	}
	if r.ID != "" {
		type requested struct {
			Hash []byte `db:"request_hash"`
			Question
		}
		rows, _ = s.db.Query(ctx, byRequest, r.Scope, r.ID)
		prev, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[requested])
		switch {
		case err == nil && bytes.Equal(prev.Hash, hash):
			return prev.Question, nil
		case err == nil:
			return Question{}, fmt.Errorf("question of request %q: %w", r.ID, ErrRequestReused)
		case !errors.Is(err, pgx.ErrNoRows):
			return Question{}, fmt.Errorf("question of request %q: %w", r.ID, err)
		}
	}
	return Question{}, fmt.Errorf("question %q: %w", q.Key, ErrConflict)
}

// GetQuestion returns a question or an error wrapping ErrNotFound.
func (s *Store) GetQuestion(ctx context.Context, id int64) (Question, error) {
	return s.getQuestion(ctx, id, "")
}

// LockQuestion is GetQuestion taking the row FOR UPDATE, so that an update within the
// transaction starts from what it read.
func (s *Store) LockQuestion(ctx context.Context, id int64) (Question, error) {
	return s.getQuestion(ctx, id, " FOR UPDATE")
}

func (s *Store) getQuestion(ctx context.Context, id int64, lock string) (Question, error) {
	sql := `SELECT ` + questionColumns + ` FROM interview.questions WHERE id = $1` + lock
	rows, _ := s.db.Query(ctx, sql, id)
	q, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Question])
	if errors.Is(err, pgx.ErrNoRows) {
		return Question{}, &NotFoundError{Kind: "question", Field: "question_id", Key: id}
	}
	if err != nil {
		return Question{}, fmt.Errorf("get question %d: %w", id, err)
	}
	return q, nil
}

// UpdateQuestion stores q's text, category, difficulty, tags and rubric if its version is
// still version (0: any), and bumps the version. A stale version gives ErrStale.
func (s *Store) UpdateQuestion(ctx context.Context, q Question, version int64) (Question, error) {
	const sql = `
		UPDATE interview.questions
		SET text = $2, category = $3, difficulty = $4, tags = $5, rubric = $6,
		    version = version + 1, update_time = now()
		WHERE id = $1 AND ($7 = 0 OR version = $7)
		RETURNING ` + questionColumns
	rows, _ := s.db.Query(ctx, sql, q.ID, q.Text, q.Category, q.Difficulty, q.Tags, q.Rubric, version)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Question])
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.GetQuestion(ctx, q.ID); err != nil {
			return Question{}, err
		}
		return Question{}, fmt.Errorf("question %d: %w", q.ID, ErrStale)
	}
	if err != nil {
		return Question{}, fmt.Errorf("update question %d: %w", q.ID, err)
	}
	return out, nil
}

// DeleteQuestion deletes a question at version (0: any). A question a session asked gives
// ErrInUse, a stale version ErrStale.
func (s *Store) DeleteQuestion(ctx context.Context, id, version int64) error {
	const sql = `DELETE FROM interview.questions WHERE id = $1 AND ($2 = 0 OR version = $2)`
	tag, err := s.db.Exec(ctx, sql, id, version)
	if isCode(err, pgerrcode.ForeignKeyViolation) {
		return fmt.Errorf("question %d is part of interview sessions: %w", id, ErrInUse)
	}
	if err != nil {
		return fmt.Errorf("delete question %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.GetQuestion(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("question %d: %w", id, ErrStale)
	}
	return nil
}

// ListQuestions returns one page of questions.
func (s *Store) ListQuestions(ctx context.Context, page *query.Query) ([]Question, error) {
	rows, _ := s.db.Query(ctx, page.SQL(`SELECT `+questionColumns+` FROM interview.questions`), page.NamedArgs(nil))
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Question])
	if err != nil {
		return nil, fmt.Errorf("list questions: %w", err)
	}
	return list, nil
}

// ImportQuestions inserts new questions and updates changed ones by key, in one statement.
func (s *Store) ImportQuestions(ctx context.Context, qs []Question) (inserted, updated int, err error) {
	const sql = `
		INSERT INTO interview.questions AS q (key, text, category, difficulty, tags, rubric)
		SELECT i.key, i.text, i.category, i.difficulty, ARRAY(SELECT jsonb_array_elements_text(i.tags)), i.rubric
		FROM jsonb_to_recordset($1::jsonb) AS i(key text, text text, category text, difficulty int, tags jsonb, rubric jsonb)
		ON CONFLICT (key) DO UPDATE SET
			text = EXCLUDED.text, category = EXCLUDED.category, difficulty = EXCLUDED.difficulty,
			tags = EXCLUDED.tags, rubric = EXCLUDED.rubric, version = q.version + 1, update_time = now()
		WHERE (q.text, q.category, q.difficulty, q.tags, q.rubric) IS DISTINCT FROM
			(EXCLUDED.text, EXCLUDED.category, EXCLUDED.difficulty, EXCLUDED.tags, EXCLUDED.rubric)
		RETURNING (xmax = 0) AS inserted`
	type row struct {
		Key        string   `json:"key"`
		Text       string   `json:"text"`
		Category   string   `json:"category"`
		Difficulty int32    `json:"difficulty"`
		Tags       []string `json:"tags"`
		Rubric     Rubric   `json:"rubric"`
	}
	in := make([]row, len(qs))
	for i, q := range qs {
		in[i] = row{q.Key, q.Text, q.Category, q.Difficulty, q.Tags, q.Rubric}
		if in[i].Tags == nil {
			in[i].Tags = []string{}
		}
	}
	rows, _ := s.db.Query(ctx, sql, in)
	flags, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return 0, 0, fmt.Errorf("import questions: %w", err)
	}
	for _, ins := range flags {
		if ins {
			inserted++
		} else {
			updated++
		}
	}
	return inserted, updated, nil
}
