module github.com/pgfleet/pgfleet/services/stock

go 1.26.0

replace (
	github.com/pgfleet/pgfleet/gen => ../../gen
	github.com/pgfleet/pgfleet/pkg => ../../pkg
)

require (
	github.com/jackc/pgerrcode v0.0.0-20250907135507-afb5586c32a6 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/sethvargo/go-envconfig v1.4.3 // indirect
	golang.org/x/text v0.41.0 // indirect
)
