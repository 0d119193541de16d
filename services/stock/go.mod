module github.com/pgfleet/pgfleet/services/stock

go 1.26.0

replace (
	github.com/pgfleet/pgfleet/gen => ../../gen
	github.com/pgfleet/pgfleet/pkg => ../../pkg
)
