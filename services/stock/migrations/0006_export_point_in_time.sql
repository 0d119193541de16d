-- Point-in-time joins of ExportPrices: each bar takes the latest prediction of one source
-- made at or before its time. The (symbol, predict_time, source) index of 0004 walks a
-- symbol's predictions of every source backwards until it meets the source asked for; this
-- one descends straight to that source's row (one index probe per bar).

-- +goose Up
CREATE INDEX recommendation_history_symbol_source_idx
    ON stock.recommendation_history (symbol, source, predict_time);

-- +goose Down
DROP INDEX stock.recommendation_history_symbol_source_idx;
