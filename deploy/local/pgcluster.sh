#!/usr/bin/env bash
# pgcluster.sh: a local PostgreSQL cluster for `make run` (kept data) and `make test` (throwaway).
#
#   pgcluster.sh ensure                 install the server binaries if missing (apt, where possible)
#   pgcluster.sh start DIR PORT [test]  initdb DIR if empty, then start on 127.0.0.1:PORT;
#                                       "test" trades durability for speed (fsync off, ...)
#   pgcluster.sh stop DIR               fast shutdown
#   pgcluster.sh url PORT [DB]          superuser URL of the cluster
#
# initdb and postgres refuse to run as root, so as root they run as the `postgres` OS user.
set -euo pipefail

find_bindir() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return
	fi
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	done
	return 1
}

ensure() {
	find_bindir >/dev/null && return
	echo "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found." >&2
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "Installing them with apt-get (package postgresql)..." >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
		# The package starts a system cluster on 5432; pgfleet runs its own.
		command -v service >/dev/null 2>&1 && service postgresql stop >/dev/null 2>&1 || true
		find_bindir >/dev/null && return
	fi
	cat >&2 <<-EOF
	Install PostgreSQL 13 or newer server binaries and run again:
	  Debian/Ubuntu: sudo apt-get install postgresql
	  Fedora/RHEL:   sudo dnf install postgresql-server
	  macOS:         brew install postgresql@15
	or point pgfleet at an existing server: DATABASE_URL=postgres://user:pass@host:5432/db make run
	EOF
	exit 1
}

# as_pg runs a command as the postgres OS user when we are root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	local dir=$1 port=$2 mode=${3:-}
	ensure
	local bin
	bin=$(find_bindir)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$dir"
		# postgres must be able to reach its data directory through every parent.
		local p=$dir
		while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
	fi
	chmod 700 "$dir"
	if [ ! -s "$dir/PG_VERSION" ]; then
		as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
	fi
	if as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
		echo "PostgreSQL already running in $dir" >&2
		return
	fi
	local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400"
	if [ "$mode" = test ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		opts="$opts -c deadlock_timeout=100ms -c shared_buffers=256MB"
	fi
	as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
}

stop() {
	local dir=$1 bin
	[ -s "$dir/PG_VERSION" ] || return 0
	bin=$(find_bindir) || return 0
	as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

case ${1:-} in
ensure) ensure ;;
start) start "$2" "$3" "${4:-}" ;;
stop) stop "$2" ;;
url) echo "postgres://postgres@127.0.0.1:$2/${3:-postgres}?sslmode=disable" ;;
*)
	sed -n '2,10p' "$0" >&2
	exit 2
	;;
esac
