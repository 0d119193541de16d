-- Recommendation history: every prediction UpsertRecommendations receives is appended to
-- stock.recommendation_history with its model version and the time it was made, so inference
-- writes never destroy the past; stock.recommendations stays the latest per (symbol, source).
-- History is never updated or deleted, and outlives its stock (no foreign key): a delisted
-- stock's predictions can still be scored. A prediction is unique per (symbol, source,
-- predict_time), so a retried upsert appends nothing (ON CONFLICT DO NOTHING).

-- +goose Up
ALTER TABLE stock.recommendations
    ADD COLUMN model_version text NOT NULL DEFAULT '',
    ADD COLUMN predict_time timestamptz;
UPDATE stock.recommendations SET predict_time = update_time;
ALTER TABLE stock.recommendations ALTER COLUMN predict_time SET NOT NULL,
    ALTER COLUMN predict_time SET DEFAULT now();

CREATE TABLE stock.recommendation_history (
    id            bigserial PRIMARY KEY,
    symbol        text NOT NULL,
    source        text NOT NULL CHECK (source <> ''),
    model_version text NOT NULL DEFAULT '',
    action        text NOT NULL CHECK (action IN (
        'ACTION_STRONG_BUY', 'ACTION_BUY', 'ACTION_HOLD', 'ACTION_SELL', 'ACTION_STRONG_SELL')),
    target_price  numeric(20, 6) CHECK (target_price >= 0),
    confidence    double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    rationale     text NOT NULL DEFAULT '',
    predict_time  timestamptz NOT NULL,
    record_time   timestamptz NOT NULL DEFAULT now(),
    -- Idempotency, and the walk of all predictions by time (ListRecommendationHistory's key).
    CONSTRAINT recommendation_history_prediction_key UNIQUE (predict_time, symbol, source)
);
-- One symbol's history by time, and one source's (a model's, for its scoreboard).
CREATE INDEX recommendation_history_symbol_idx ON stock.recommendation_history (symbol, predict_time, source);
CREATE INDEX recommendation_history_source_idx ON stock.recommendation_history (source, predict_time, symbol);

-- The recommendations stored before history existed are its first rows.
INSERT INTO stock.recommendation_history
    (symbol, source, model_version, action, target_price, confidence, rationale, predict_time, record_time)
SELECT symbol, source, model_version, action, target_price, confidence, rationale, predict_time, update_time
FROM stock.recommendations;

-- +goose Down
DROP TABLE stock.recommendation_history;
ALTER TABLE stock.recommendations DROP COLUMN predict_time, DROP COLUMN model_version;
