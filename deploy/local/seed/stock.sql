-- seed/stock.sql: demo data for schema "stock", loaded once by make run (tools/run) as the stock
-- role (after the service has migrated its schema):
--
--   psql "postgres://stock:stock@127.0.0.1:5433/pgfleet?sslmode=disable" -f deploy/local/seed/stock.sql
--
-- What it loads, in one transaction (all or nothing; a no-op when stock.stocks has rows):
--   * ~58 real, well-known US stocks (approximate market caps and prices) plus 500 generated
--     ones, DMO001..DMO500, spread over the 11 GICS sectors, with GICS-style industries,
--     NASDAQ/NYSE and USD;
--   * 252 daily bars per stock (weekdays, ending on the last weekday before today, at 00:00 UTC):
--     a random walk of daily log returns anchored so the last close is the stock's price,
--     with low <= open, close <= high;
--   * stock.latest_prices: each stock's last bar;
--   * stock.recommendations from "pgfleet-model" (every stock, from 3-month momentum),
--     "Morningstar" and "Zacks" (every real stock, most generated ones);
--   * stock.recommendation_history: the model's monthly past predictions (version
--     "momentum-1") and the current recommendations.
-- Random numbers come from setseed() and are drawn in a fixed row order, so two runs on the
-- same day load the same rows (the dates follow the calendar).
\set ON_ERROR_STOP on
\set QUIET on

SELECT EXISTS (SELECT FROM stock.stocks) AS already_seeded \gset
\if :already_seeded
\echo 'already there (stock.stocks has rows), not loaded again'
\quit
\endif

BEGIN;
SET LOCAL synchronous_commit = off;
SET LOCAL work_mem = '64MB';
SET LOCAL client_min_messages = warning;
SELECT setseed(0.2026) AS seeded \gset

-- Sectors and their industries; word names the generated companies of that industry.
CREATE TEMP TABLE seed_industries ON COMMIT DROP AS
SELECT sector_no, sector, industry, word,
       row_number() OVER (PARTITION BY sector_no ORDER BY industry) AS ind_no,
       count(*) OVER (PARTITION BY sector_no) AS ind_count
FROM (VALUES
    (1, 'Technology', 'Software', 'Software'),
    (1, 'Technology', 'Semiconductors', 'Semiconductor'),
    (1, 'Technology', 'Technology Hardware, Storage & Peripherals', 'Devices'),
    (1, 'Technology', 'IT Services', 'Digital'),
    (1, 'Technology', 'Communications Equipment', 'Networks'),
    (1, 'Technology', 'Electronic Equipment, Instruments & Components', 'Instruments'),
    (2, 'Health Care', 'Pharmaceuticals', 'Pharmaceuticals'),
    (2, 'Health Care', 'Biotechnology', 'Biosciences'),
    (2, 'Health Care', 'Health Care Equipment & Supplies', 'Medical'),
    (2, 'Health Care', 'Health Care Providers & Services', 'Health'),
    (2, 'Health Care', 'Life Sciences Tools & Services', 'Life Sciences'),
    (3, 'Financials', 'Banks', 'Bancorp'),
    (3, 'Financials', 'Insurance', 'Insurance'),
    (3, 'Financials', 'Capital Markets', 'Capital'),
    (3, 'Financials', 'Consumer Finance', 'Credit'),
    (3, 'Financials', 'Financial Services', 'Financial'),
    (4, 'Energy', 'Integrated Oil & Gas', 'Energy'),
    (4, 'Energy', 'Oil & Gas Exploration & Production', 'Resources'),
    (4, 'Energy', 'Oil & Gas Equipment & Services', 'Oilfield Services'),
    (4, 'Energy', 'Oil & Gas Storage & Transportation', 'Midstream'),
    (4, 'Energy', 'Oil & Gas Refining & Marketing', 'Refining'),
    (5, 'Consumer Discretionary', 'Broadline Retail', 'Commerce'),
    (5, 'Consumer Discretionary', 'Automobiles', 'Motors'),
    (5, 'Consumer Discretionary', 'Hotels, Restaurants & Leisure', 'Hospitality'),
    (5, 'Consumer Discretionary', 'Specialty Retail', 'Outfitters'),
    (5, 'Consumer Discretionary', 'Textiles, Apparel & Luxury Goods', 'Apparel'),
    (5, 'Consumer Discretionary', 'Household Durables', 'Home'),
    (6, 'Consumer Staples', 'Beverages', 'Beverage'),
    (6, 'Consumer Staples', 'Food Products', 'Foods'),
    (6, 'Consumer Staples', 'Household Products', 'Household'),
    (6, 'Consumer Staples', 'Consumer Staples Distribution & Retail', 'Markets'),
    (6, 'Consumer Staples', 'Personal Care Products', 'Personal Care'),
    (7, 'Industrials', 'Aerospace & Defense', 'Aerospace'),
    (7, 'Industrials', 'Machinery', 'Machinery'),
    (7, 'Industrials', 'Ground Transportation', 'Rail'),
    (7, 'Industrials', 'Industrial Conglomerates', 'Industries'),
    (7, 'Industrials', 'Building Products', 'Building Products'),
    (7, 'Industrials', 'Air Freight & Logistics', 'Logistics'),
    (8, 'Materials', 'Chemicals', 'Chemical'),
    (8, 'Materials', 'Metals & Mining', 'Mining'),
    (8, 'Materials', 'Construction Materials', 'Materials'),
    (8, 'Materials', 'Containers & Packaging', 'Packaging'),
    (8, 'Materials', 'Paper & Forest Products', 'Timber'),
    (9, 'Utilities', 'Electric Utilities', 'Electric'),
    (9, 'Utilities', 'Multi-Utilities', 'Utilities'),
    (9, 'Utilities', 'Gas Utilities', 'Gas'),
    (9, 'Utilities', 'Water Utilities', 'Water'),
    (9, 'Utilities', 'Renewable Electricity', 'Renewables'),
    (10, 'Real Estate', 'Industrial REITs', 'Industrial Realty'),
    (10, 'Real Estate', 'Residential REITs', 'Residential'),
    (10, 'Real Estate', 'Retail REITs', 'Retail Properties'),
    (10, 'Real Estate', 'Specialized REITs', 'Data Centers'),
    (10, 'Real Estate', 'Real Estate Management & Development', 'Realty'),
    (11, 'Communication Services', 'Interactive Media & Services', 'Interactive'),
    (11, 'Communication Services', 'Entertainment', 'Entertainment'),
    (11, 'Communication Services', 'Diversified Telecommunication Services', 'Telecom'),
    (11, 'Communication Services', 'Media', 'Media'),
    (11, 'Communication Services', 'Wireless Telecommunication Services', 'Wireless')
) AS t (sector_no, sector, industry, word);

CREATE TEMP TABLE seed_stocks (
    symbol      text PRIMARY KEY,
    name        text NOT NULL,
    sector      text NOT NULL,
    industry    text NOT NULL,
    exchange    text NOT NULL,
    market_cap  bigint NOT NULL,
    last_price  float8 NOT NULL,   -- the last bar's close
    sigma       float8 NOT NULL,   -- daily volatility of log returns
    drift       float8 NOT NULL,   -- mean daily log return
    base_volume float8 NOT NULL,   -- typical shares traded a day
    is_real     boolean NOT NULL
) ON COMMIT DROP;

-- Real stocks: approximate market caps (whole USD) and share prices, for demos only.
INSERT INTO seed_stocks
SELECT symbol, name, sector, industry, exchange, market_cap, price,
       CASE WHEN symbol IN ('TSLA', 'NVDA', 'AMD', 'INTC', 'NFLX', 'META', 'FCX', 'BA')
            THEN 0.022 + 0.01 * u1 ELSE 0.009 + 0.008 * u1 END,
       0.0008 * (u2 - 0.35),
       market_cap / price * (0.002 + 0.008 * u3),
       true
FROM (SELECT r.*, random() AS u1, random() AS u2, random() AS u3
      FROM (SELECT * FROM (VALUES
        ('AAPL', 'Apple Inc.', 'Technology', 'Technology Hardware, Storage & Peripherals', 'NASDAQ', 4000000000000, 270.0),
        ('MSFT', 'Microsoft Corporation', 'Technology', 'Software', 'NASDAQ', 3800000000000, 510.0),
        ('NVDA', 'NVIDIA Corporation', 'Technology', 'Semiconductors', 'NASDAQ', 4500000000000, 185.0),
        ('AVGO', 'Broadcom Inc.', 'Technology', 'Semiconductors', 'NASDAQ', 1600000000000, 340.0),
        ('ORCL', 'Oracle Corporation', 'Technology', 'Software', 'NYSE', 620000000000, 220.0),
        ('AMD', 'Advanced Micro Devices, Inc.', 'Technology', 'Semiconductors', 'NASDAQ', 380000000000, 235.0),
        ('INTC', 'Intel Corporation', 'Technology', 'Semiconductors', 'NASDAQ', 170000000000, 37.0),
        ('CSCO', 'Cisco Systems, Inc.', 'Technology', 'Communications Equipment', 'NASDAQ', 290000000000, 73.0),
        ('CRM', 'Salesforce, Inc.', 'Technology', 'Software', 'NYSE', 230000000000, 240.0),
        ('ADBE', 'Adobe Inc.', 'Technology', 'Software', 'NASDAQ', 140000000000, 330.0),
        ('IBM', 'International Business Machines Corporation', 'Technology', 'IT Services', 'NYSE', 280000000000, 300.0),
        ('GOOGL', 'Alphabet Inc.', 'Communication Services', 'Interactive Media & Services', 'NASDAQ', 3400000000000, 285.0),
        ('META', 'Meta Platforms, Inc.', 'Communication Services', 'Interactive Media & Services', 'NASDAQ', 1600000000000, 620.0),
        ('NFLX', 'Netflix, Inc.', 'Communication Services', 'Entertainment', 'NASDAQ', 470000000000, 110.0),
        ('DIS', 'The Walt Disney Company', 'Communication Services', 'Entertainment', 'NYSE', 200000000000, 110.0),
        ('T', 'AT&T Inc.', 'Communication Services', 'Diversified Telecommunication Services', 'NYSE', 180000000000, 25.0),
        ('VZ', 'Verizon Communications Inc.', 'Communication Services', 'Diversified Telecommunication Services', 'NYSE', 170000000000, 40.0),
        ('TMUS', 'T-Mobile US, Inc.', 'Communication Services', 'Wireless Telecommunication Services', 'NASDAQ', 240000000000, 210.0),
        ('AMZN', 'Amazon.com, Inc.', 'Consumer Discretionary', 'Broadline Retail', 'NASDAQ', 2400000000000, 225.0),
        ('TSLA', 'Tesla, Inc.', 'Consumer Discretionary', 'Automobiles', 'NASDAQ', 1300000000000, 400.0),
        ('HD', 'The Home Depot, Inc.', 'Consumer Discretionary', 'Specialty Retail', 'NYSE', 360000000000, 360.0),
        ('MCD', 'McDonald''s Corporation', 'Consumer Discretionary', 'Hotels, Restaurants & Leisure', 'NYSE', 220000000000, 305.0),
        ('NKE', 'NIKE, Inc.', 'Consumer Discretionary', 'Textiles, Apparel & Luxury Goods', 'NYSE', 95000000000, 64.0),
        ('WMT', 'Walmart Inc.', 'Consumer Staples', 'Consumer Staples Distribution & Retail', 'NASDAQ', 850000000000, 105.0),
        ('COST', 'Costco Wholesale Corporation', 'Consumer Staples', 'Consumer Staples Distribution & Retail', 'NASDAQ', 410000000000, 920.0),
        ('PG', 'The Procter & Gamble Company', 'Consumer Staples', 'Household Products', 'NYSE', 350000000000, 150.0),
        ('KO', 'The Coca-Cola Company', 'Consumer Staples', 'Beverages', 'NYSE', 300000000000, 70.0),
        ('PEP', 'PepsiCo, Inc.', 'Consumer Staples', 'Beverages', 'NASDAQ', 200000000000, 145.0),
        ('JPM', 'JPMorgan Chase & Co.', 'Financials', 'Banks', 'NYSE', 850000000000, 305.0),
        ('BRK.B', 'Berkshire Hathaway Inc.', 'Financials', 'Financial Services', 'NYSE', 1070000000000, 495.0),
        ('V', 'Visa Inc.', 'Financials', 'Financial Services', 'NYSE', 650000000000, 335.0),
        ('MA', 'Mastercard Incorporated', 'Financials', 'Financial Services', 'NYSE', 510000000000, 555.0),
        ('BAC', 'Bank of America Corporation', 'Financials', 'Banks', 'NYSE', 390000000000, 52.0),
        ('WFC', 'Wells Fargo & Company', 'Financials', 'Banks', 'NYSE', 270000000000, 85.0),
        ('GS', 'The Goldman Sachs Group, Inc.', 'Financials', 'Capital Markets', 'NYSE', 240000000000, 790.0),
        ('LLY', 'Eli Lilly and Company', 'Health Care', 'Pharmaceuticals', 'NYSE', 900000000000, 1000.0),
        ('UNH', 'UnitedHealth Group Incorporated', 'Health Care', 'Health Care Providers & Services', 'NYSE', 300000000000, 330.0),
        ('JNJ', 'Johnson & Johnson', 'Health Care', 'Pharmaceuticals', 'NYSE', 480000000000, 200.0),
        ('ABBV', 'AbbVie Inc.', 'Health Care', 'Biotechnology', 'NYSE', 400000000000, 225.0),
        ('MRK', 'Merck & Co., Inc.', 'Health Care', 'Pharmaceuticals', 'NYSE', 240000000000, 95.0),
        ('PFE', 'Pfizer Inc.', 'Health Care', 'Pharmaceuticals', 'NYSE', 145000000000, 25.0),
        ('TMO', 'Thermo Fisher Scientific Inc.', 'Health Care', 'Life Sciences Tools & Services', 'NYSE', 210000000000, 560.0),
        ('XOM', 'Exxon Mobil Corporation', 'Energy', 'Integrated Oil & Gas', 'NYSE', 490000000000, 115.0),
        ('CVX', 'Chevron Corporation', 'Energy', 'Integrated Oil & Gas', 'NYSE', 310000000000, 152.0),
        ('COP', 'ConocoPhillips', 'Energy', 'Oil & Gas Exploration & Production', 'NYSE', 110000000000, 88.0),
        ('SLB', 'SLB N.V.', 'Energy', 'Oil & Gas Equipment & Services', 'NYSE', 50000000000, 35.0),
        ('CAT', 'Caterpillar Inc.', 'Industrials', 'Machinery', 'NYSE', 250000000000, 530.0),
        ('BA', 'The Boeing Company', 'Industrials', 'Aerospace & Defense', 'NYSE', 150000000000, 200.0),
        ('GE', 'GE Aerospace', 'Industrials', 'Aerospace & Defense', 'NYSE', 310000000000, 290.0),
        ('HON', 'Honeywell International Inc.', 'Industrials', 'Industrial Conglomerates', 'NASDAQ', 125000000000, 195.0),
        ('UPS', 'United Parcel Service, Inc.', 'Industrials', 'Air Freight & Logistics', 'NYSE', 80000000000, 95.0),
        ('LIN', 'Linde plc', 'Materials', 'Chemicals', 'NASDAQ', 200000000000, 420.0),
        ('FCX', 'Freeport-McMoRan Inc.', 'Materials', 'Metals & Mining', 'NYSE', 60000000000, 42.0),
        ('NEM', 'Newmont Corporation', 'Materials', 'Metals & Mining', 'NYSE', 95000000000, 85.0),
        ('NEE', 'NextEra Energy, Inc.', 'Utilities', 'Electric Utilities', 'NYSE', 170000000000, 83.0),
        ('DUK', 'Duke Energy Corporation', 'Utilities', 'Electric Utilities', 'NYSE', 95000000000, 123.0),
        ('SO', 'The Southern Company', 'Utilities', 'Electric Utilities', 'NYSE', 100000000000, 92.0),
        ('PLD', 'Prologis, Inc.', 'Real Estate', 'Industrial REITs', 'NYSE', 115000000000, 125.0),
        ('AMT', 'American Tower Corporation', 'Real Estate', 'Specialized REITs', 'NYSE', 85000000000, 180.0),
        ('O', 'Realty Income Corporation', 'Real Estate', 'Retail REITs', 'NYSE', 52000000000, 57.0)
      ) AS v (symbol, name, sector, industry, exchange, market_cap, price)
      ORDER BY symbol) AS r) AS r;

-- Generated stocks: 500, round-robin over the sectors; within a sector the name prefixes
-- differ (7 is coprime to 48), so names repeat nowhere.
INSERT INTO seed_stocks
SELECT 'DMO' || lpad(g.n::text, 3, '0'),
       (ARRAY['Apex', 'Summit', 'Blue Ridge', 'Northwind', 'Silverline', 'Crescent', 'Pioneer',
              'Harbor', 'Granite', 'Evergreen', 'Atlas', 'Meridian', 'Keystone', 'Horizon',
              'Liberty', 'Orion', 'Sterling', 'Cobalt', 'Vertex', 'Redwood', 'Cascade', 'Beacon',
              'Ironwood', 'Lakeshore', 'Prairie', 'Sequoia', 'Tidewater', 'Union', 'Vanguard',
              'Westbrook', 'Aurora', 'Bayview', 'Clearwater', 'Delta', 'Eastgate', 'Falcon',
              'Golden State', 'Highland', 'Inland', 'Juniper', 'Kestrel', 'Lighthouse', 'Magnolia',
              'Nova', 'Oakmont', 'Pinnacle', 'Quarry', 'Riverside'])[1 + (g.k * 7 + g.sector_no * 3) % 48]
         || ' ' || i.word || ' '
         || (ARRAY['Inc.', 'Corp.', 'Holdings', 'Group', 'Co.'])[1 + floor(g.u_suffix * 5)::int],
       i.sector, i.industry,
       CASE WHEN g.u_exchange < 0.55 THEN 'NASDAQ' ELSE 'NYSE' END,
       g.market_cap, g.price,
       0.011 + 0.021 * g.u_sigma,
       0.0012 * (g.u_drift - 0.4),
       g.market_cap / g.price * (0.002 + 0.010 * g.u_turnover),
       false
FROM (SELECT n, 1 + (n - 1) % 11 AS sector_no, (n - 1) / 11 AS k,
             random() AS u_industry, random() AS u_suffix, random() AS u_exchange,
             round(exp(ln(3e8) + random() * ln(250e9 / 3e8)))::bigint AS market_cap,
             round(exp(ln(8.0) + random() * ln(450.0 / 8.0))::numeric, 2)::float8 AS price,
             random() AS u_sigma, random() AS u_drift, random() AS u_turnover
      FROM generate_series(1, 500) AS n
      ORDER BY n) AS g
JOIN seed_industries i
  ON i.sector_no = g.sector_no AND i.ind_no = 1 + floor(g.u_industry * i.ind_count)::int;

-- The last 252 weekdays before today.
CREATE TEMP TABLE seed_days ON COMMIT DROP AS
SELECT (253 - row_number() OVER (ORDER BY d DESC))::int AS i, d
FROM (SELECT current_date - k AS d FROM generate_series(1, 400) AS k) AS x
WHERE extract(isodow FROM d) < 6
ORDER BY d DESC
LIMIT 252;

-- Daily draws per (stock, day), in a fixed order: r is the log return (Box-Muller normal),
-- gap the overnight move, hi/lo the wicks, vz the volume noise.
CREATE TEMP TABLE seed_walk ON COMMIT DROP AS
SELECT x.symbol, x.i, x.d,
       x.drift + x.sigma * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS r,
       x.sigma * 0.3 * (random() - 0.5) AS gap,
       x.sigma * 0.6 * random() AS hi,
       x.sigma * 0.6 * random() AS lo,
       sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS vz
FROM (SELECT s.symbol, s.sigma, s.drift, d.i, d.d
      FROM seed_stocks s CROSS JOIN seed_days d
      ORDER BY s.symbol, d.i) AS x;

-- Bars: close anchored so the last one equals last_price; open from the previous close and the
-- gap; high/low around both, then clamped after rounding to cents.
CREATE TEMP TABLE seed_bars ON COMMIT DROP AS
SELECT symbol, i, ts, open, greatest(high, open, close) AS high, least(low, open, close) AS low,
       close, volume, r
FROM (SELECT symbol, i, (d::timestamp AT TIME ZONE 'UTC') AS ts, r,
             round(open_f::numeric, 2) AS open,
             round((greatest(open_f, close_f) * exp(hi))::numeric, 2) AS high,
             round((least(open_f, close_f) * exp(-lo))::numeric, 2) AS low,
             round(close_f::numeric, 2) AS close,
             round(base_volume * exp(0.35 * vz) * (1 + 10 * abs(r)))::bigint AS volume
      FROM (SELECT w.*, s.base_volume,
                   s.last_price * exp(c - total) AS close_f,
                   s.last_price * exp(c - total - w.r + w.gap) AS open_f
            FROM (SELECT w.*,
                         sum(w.r) OVER (PARTITION BY w.symbol ORDER BY w.i) AS c,
                         sum(w.r) OVER (PARTITION BY w.symbol) AS total
                  FROM seed_walk w) AS w
            JOIN seed_stocks s USING (symbol)) AS b) AS b;

INSERT INTO stock.stocks (symbol, name, sector, industry, exchange, currency, market_cap)
SELECT symbol, name, sector, industry, exchange, 'USD', market_cap
FROM seed_stocks ORDER BY symbol;

INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
SELECT symbol, ts, open, high, low, close, volume
FROM seed_bars ORDER BY symbol, ts;

INSERT INTO stock.latest_prices (symbol, ts, open, high, low, close, volume)
SELECT symbol, ts, open, high, low, close, volume
FROM seed_bars WHERE i = 252 ORDER BY symbol;

-- Per stock: last close, 3-month (63 bars) and 1-year returns, annualized volatility.
CREATE TEMP TABLE seed_perf ON COMMIT DROP AS
SELECT symbol, is_real, last_close, last_close / q_close - 1 AS m3, last_close / first_close - 1 AS y1, vol
FROM (SELECT b.symbol, s.is_real,
             max(b.close) FILTER (WHERE b.i = 252)::float8 AS last_close,
             max(b.close) FILTER (WHERE b.i = 189)::float8 AS q_close,
             max(b.close) FILTER (WHERE b.i = 1)::float8 AS first_close,
             stddev_samp(b.r) * sqrt(252) AS vol
      FROM seed_bars b JOIN seed_stocks s USING (symbol)
      GROUP BY b.symbol, s.is_real) AS a;

INSERT INTO stock.recommendations (symbol, source, action, target_price, confidence, rationale)
SELECT symbol, 'pgfleet-model',
       CASE WHEN m3 > 0.15 THEN 'ACTION_STRONG_BUY'
            WHEN m3 > 0.04 THEN 'ACTION_BUY'
            WHEN m3 >= -0.04 THEN 'ACTION_HOLD'
            WHEN m3 >= -0.15 THEN 'ACTION_SELL'
            ELSE 'ACTION_STRONG_SELL' END,
       round((last_close * (1 + greatest(-0.3, least(0.3, m3 / 2))))::numeric, 2),
       round(least(0.95, 0.45 + abs(m3) * 1.5)::numeric, 2)::float8,
       format('Momentum model: 3-month return %s%%, 1-year return %s%%, annualized volatility %s%%.',
              round((m3 * 100)::numeric, 1), round((y1 * 100)::numeric, 1),
              round((vol * 100)::numeric, 1))
FROM seed_perf ORDER BY symbol;

INSERT INTO stock.recommendations (symbol, source, action, target_price, confidence, rationale)
SELECT symbol, 'Morningstar',
       CASE WHEN fair / last_close > 1.25 THEN 'ACTION_STRONG_BUY'
            WHEN fair / last_close > 1.08 THEN 'ACTION_BUY'
            WHEN fair / last_close >= 0.92 THEN 'ACTION_HOLD'
            WHEN fair / last_close >= 0.80 THEN 'ACTION_SELL'
            ELSE 'ACTION_STRONG_SELL' END,
       round(fair::numeric, 2),
       round((0.55 + 0.35 * u_conf)::numeric, 2)::float8,
       format('%s-star rating: fair value estimate $%s against a last close of $%s; %s economic moat.',
              CASE WHEN fair / last_close > 1.25 THEN 5 WHEN fair / last_close > 1.08 THEN 4
                   WHEN fair / last_close >= 0.92 THEN 3 WHEN fair / last_close >= 0.80 THEN 2
                   ELSE 1 END,
              round(fair::numeric, 2), round(last_close::numeric, 2),
              CASE WHEN u_moat < 0.3 THEN 'wide' WHEN u_moat < 0.75 THEN 'narrow' ELSE 'no' END)
FROM (SELECT p.*, last_close * exp(0.2 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS fair,
             random() AS u_pick, random() AS u_conf, random() AS u_moat
      FROM (SELECT * FROM seed_perf ORDER BY symbol) AS p) AS p
WHERE is_real OR u_pick < 0.6
ORDER BY symbol;

INSERT INTO stock.recommendations (symbol, source, action, target_price, confidence, rationale)
SELECT symbol, 'Zacks',
       (ARRAY['ACTION_STRONG_BUY', 'ACTION_BUY', 'ACTION_HOLD', 'ACTION_SELL', 'ACTION_STRONG_SELL'])[rank],
       round((last_close * (1 + (3 - rank) * 0.07 + 0.03 * (u_target - 0.5)))::numeric, 2),
       round((0.4 + 0.4 * u_conf)::numeric, 2)::float8,
       format('Zacks Rank #%s (%s): consensus earnings estimates revised %s over the last 60 days.',
              rank, (ARRAY['Strong Buy', 'Buy', 'Hold', 'Sell', 'Strong Sell'])[rank],
              (ARRAY['sharply higher', 'higher', 'little', 'lower', 'sharply lower'])[rank])
FROM (SELECT p.*,
             CASE WHEN u_rank < 0.05 THEN 1 WHEN u_rank < 0.20 THEN 2 WHEN u_rank < 0.80 THEN 3
                  WHEN u_rank < 0.95 THEN 4 ELSE 5 END AS rank
      FROM (SELECT p.*, random() AS u_rank, random() AS u_pick, random() AS u_target, random() AS u_conf
            FROM (SELECT * FROM seed_perf ORDER BY symbol) AS p) AS p) AS p
WHERE is_real OR u_pick < 0.7
ORDER BY symbol;

-- The momentum model's past predictions, one every 21 bars (about a month) once it has a
-- quarter of history, each made at 22:00 UTC after its bar's close: the history that
-- GetRecommendationScoreboard scores and that a point-in-time ExportPrices joins. Then the
-- current recommendations, as UpsertRecommendations would have appended them.
INSERT INTO stock.recommendation_history
    (symbol, source, model_version, action, target_price, confidence, rationale, predict_time, record_time)
SELECT symbol, 'pgfleet-model', 'momentum-1',
       CASE WHEN m3 > 0.15 THEN 'ACTION_STRONG_BUY'
            WHEN m3 > 0.04 THEN 'ACTION_BUY'
            WHEN m3 >= -0.04 THEN 'ACTION_HOLD'
            WHEN m3 >= -0.15 THEN 'ACTION_SELL'
            ELSE 'ACTION_STRONG_SELL' END,
       round((close::float8 * (1 + greatest(-0.3, least(0.3, m3 / 2))))::numeric, 2),
       round(least(0.95, 0.45 + abs(m3) * 1.5)::numeric, 2)::float8,
       format('Momentum model: 3-month return %s%%.', round((m3 * 100)::numeric, 1)),
       ts + interval '22 hours', ts + interval '22 hours'
FROM (SELECT b.symbol, b.ts, b.close, (b.close / q.close - 1)::float8 AS m3
      FROM seed_bars b JOIN seed_bars q ON q.symbol = b.symbol AND q.i = b.i - 63
      WHERE b.i % 21 = 0) AS b
ORDER BY symbol, ts;
INSERT INTO stock.recommendation_history
    (symbol, source, model_version, action, target_price, confidence, rationale, predict_time, record_time)
SELECT symbol, source, model_version, action, target_price, confidence, rationale, predict_time, update_time
FROM stock.recommendations ORDER BY symbol, source;

SELECT format('loaded %s stocks, %s daily bars (%s to %s), %s latest prices, %s recommendations, %s past predictions',
              (SELECT count(*) FROM stock.stocks), (SELECT count(*) FROM stock.prices),
              (SELECT min(ts)::date FROM stock.prices), (SELECT max(ts)::date FROM stock.prices),
              (SELECT count(*) FROM stock.latest_prices), (SELECT count(*) FROM stock.recommendations),
              (SELECT count(*) FROM stock.recommendation_history))
       AS summary \gset

COMMIT;

ANALYZE stock.stocks, stock.prices, stock.latest_prices, stock.recommendations, stock.recommendation_history;
\echo :summary
