#!/bin/sh
# initdb.sh: run by the postgres image's entrypoint once, when its data volume is new (from
# /docker-entrypoint-initdb.d, against the entrypoint's temporary socket-only server).
# It applies deploy/local/bootstrap.sql, the same script `make run` uses, once per service:
# database pgfleet, a login role and a schema of the service's name, nothing else reachable.
# Passwords come from <SVC>_DB_PASSWORD (compose.yaml passes them; dev default: the role name).
set -eu
for role in stock portfolio interview; do
	var=$(echo "$role" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD
	password=$(printenv "$var" || echo "$role")
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
		-v db=pgfleet -v role="$role" -v password="$password" -f /pgfleet/bootstrap.sql
done
