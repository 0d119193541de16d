-- Schema "interview": the question bank and interview sessions with their scored answers.

-- +goose Up
CREATE TABLE interview.questions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    text        text NOT NULL CHECK (text <> ''),
    category    text NOT NULL CHECK (category <> ''),
    difficulty  int NOT NULL CHECK (difficulty BETWEEN 1 AND 5),
    tags        text[] NOT NULL DEFAULT '{}',
    rubric      jsonb NOT NULL,           -- {"points":[{"description","weight","keywords"}]}
    version     bigint NOT NULL DEFAULT 1, -- the etag: bumped by every change
    search      tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX questions_category_idx ON interview.questions (category, difficulty, id);
CREATE INDEX questions_difficulty_idx ON interview.questions (difficulty, id);
CREATE INDEX questions_create_time_idx ON interview.questions (create_time, id);
CREATE INDEX questions_update_time_idx ON interview.questions (update_time, id);
CREATE INDEX questions_tags_idx ON interview.questions USING gin (tags);
CREATE INDEX questions_search_idx ON interview.questions USING gin (search);

CREATE TABLE interview.sessions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    candidate      text NOT NULL CHECK (candidate <> ''),
    categories     text[] NOT NULL DEFAULT '{}',
    min_difficulty int NOT NULL,
    max_difficulty int NOT NULL,
    question_count int NOT NULL,
    state          text NOT NULL DEFAULT 'SESSION_STATE_IN_PROGRESS'
                   CHECK (state IN ('SESSION_STATE_IN_PROGRESS', 'SESSION_STATE_COMPLETED')),
    summary        jsonb,
    create_time    timestamptz NOT NULL DEFAULT now(),
    complete_time  timestamptz
);
CREATE INDEX sessions_candidate_idx ON interview.sessions (candidate, id);
CREATE INDEX sessions_state_idx ON interview.sessions (state, id);
CREATE INDEX sessions_create_time_idx ON interview.sessions (create_time, id);

-- The questions of a session, in order, with the answer once given (one per question).
-- Text, category, difficulty and rubric are copied when the session starts: editing a
-- question later changes neither what a session asked nor how its answers are scored.
CREATE TABLE interview.session_questions (
    session_id      bigint NOT NULL REFERENCES interview.sessions (id),
    position        int NOT NULL,
    question_id     bigint NOT NULL REFERENCES interview.questions (id),
    text            text NOT NULL,
    category        text NOT NULL,
    difficulty      int NOT NULL,
    rubric          jsonb NOT NULL,
    answer          text,
    score           numeric(5, 2),
    points_met      text[],
    points_missed   text[],
    evaluator       text,
    fallback_reason text,
    feedback        text,
    submit_time     timestamptz,
    PRIMARY KEY (session_id, position),
    UNIQUE (session_id, question_id)
);
-- Deleting a question a session uses is refused by the foreign key; this index makes that
-- check, and "questions this candidate has seen", cheap.
CREATE INDEX session_questions_question_idx ON interview.session_questions (question_id);

-- +goose Down
DROP TABLE interview.session_questions;
DROP TABLE interview.sessions;
DROP TABLE interview.questions;
