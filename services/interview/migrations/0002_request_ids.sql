-- CreateQuestion and StartSession are idempotent by request_id (AIP-155): a question's per
-- caller (its token's subject), a session's per candidate. The unique indexes let exactly one
-- of concurrent repeats insert, the others find its row; '' is a creation without a
-- request_id, which they leave out. A question changes after it is created (updates,
-- imports), so what its creation asked is kept as a hash to recognise a repeat; a session's
-- criteria never change, so a repeat is recognised by comparing them.

-- +goose Up
ALTER TABLE interview.questions
    ADD COLUMN request_subject text NOT NULL DEFAULT '',
    ADD COLUMN request_id      text NOT NULL DEFAULT '',
    ADD COLUMN request_hash    bytea;
CREATE UNIQUE INDEX questions_request_key ON interview.questions (request_subject, request_id)
    WHERE request_id <> '';

ALTER TABLE interview.sessions ADD COLUMN request_id text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sessions_request_key ON interview.sessions (candidate, request_id)
    WHERE request_id <> '';

-- +goose Down
DROP INDEX interview.sessions_request_key;
ALTER TABLE interview.sessions DROP COLUMN request_id;
DROP INDEX interview.questions_request_key;
ALTER TABLE interview.questions DROP COLUMN request_hash, DROP COLUMN request_id, DROP COLUMN request_subject;
