-- Point-in-time joins of ExportPrices: each bar takes the latest prediction of one source
-- made at or before its time. The indexes of 0004 serve that probe too, with the source (or
-- the symbol) as an index condition, but walk backwards over the other sources' (or symbols')
-- entries until they meet the row: cheap while the source predicts as often as the others,
-- many entries per bar for a source that predicts rarely among frequent ones over many
-- symbols. This one descends straight to the row, whatever the mix: one probe per bar.

-- +goose Up
CREATE INDEX recommendation_history_symbol_source_idx
    ON stock.recommendation_history (symbol, source, predict_time);

-- +goose Down
DROP INDEX stock.recommendation_history_symbol_source_idx;
