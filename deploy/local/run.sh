#!/usr/bin/env bash
# run.sh: the local pgfleet behind `make run` (which builds .tmp/bin first). Steps:
#   1. PostgreSQL: the server named by DATABASE_URL (an admin URL), or else a local cluster in
#      deploy/local/data (kept between runs) on 127.0.0.1:${PGFLEET_PG_PORT:-5433};
#   2. bootstrap.sql per service: database pgfleet, a login role and a schema of its own;
#   3 + 4. the services in the background, in order, each with its own DATABASE_URL (they
#      migrate themselves), each started once the one before it reports SERVING on the gRPC
#      health service (portfolio prices trades with stock: it gets STOCK_ADDR);
#   5. demo data once (seed/<service>.sql, as the service's role);
#   5b. the gateway last (REST/JSON on HTTP :8080), in front of every service;
#   6. prints ports and examples, then waits: Ctrl-C stops the gateway and the services (in
#      reverse start order), then a local cluster.
# Knobs: see deploy/local/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=deploy/local
BIN=$ROOT/.tmp/bin
RUN_DIR=${PGFLEET_RUN_DIR:-.tmp/run}
LOG_DIR=$RUN_DIR/logs
DATA_DIR=${PGFLEET_DATA_DIR:-$HERE/data}
DB=pgfleet
export PATH="$BIN:$PATH"

# Services that own a schema, in start order (a service comes after those it calls). Interview
# joins by name here (its ports are in the tables below already); each gets a role, a schema,
# GRPC_ADDR, METRICS_ADDR, its own DATABASE_URL, what service_env adds (the addresses of the
# services it calls), and its seed/<name>.sql if there is one. The gateway (HTTP, no database)
# is not one of them: it starts after them all (step 5b; see gateway_env).
SERVICES=(stock portfolio interview)

default_grpc_port() {
	case $1 in
	stock) echo 50051 ;; portfolio) echo 50052 ;; interview) echo 50053 ;;
	*) die "no default gRPC port for service '$1': add one to default_grpc_port" ;;
	esac
}
default_metrics_port() {
	case $1 in
	stock) echo 9101 ;; portfolio) echo 9102 ;; interview) echo 9103 ;;
	*) die "no default metrics port for service '$1': add one to default_metrics_port" ;;
	esac
}
# service_env SVC: NAME=VALUE lines that SVC gets besides DATABASE_URL, GRPC_ADDR and
# METRICS_ADDR: the addresses of the services it calls, which SERVICES must start before it.
# Other settings of those clients (STOCK_TIMEOUT, STOCK_BREAKER_*, ...) pass through.
service_env() {
	local i j
	i=$(svc_index "$1")
	case $1 in
	portfolio)
		j=$(svc_index stock)
		if [ -z "$j" ] || [ "$j" -gt "$i" ]; then
			die "portfolio prices trades with the stock service: list stock before portfolio in SERVICES"
		fi
		echo "STOCK_ADDR=$(grpc_target "$j")"
		# The demo prices are loaded once and then age: trades take them at any age unless
		# MAX_PRICE_AGE is set (the service's own default refuses prices older than 120h).
		echo "MAX_PRICE_AGE=${MAX_PRICE_AGE:-0}"
		;;
	esac
}

# gateway_env: NAME=VALUE lines the gateway gets besides HTTP_ADDR and METRICS_ADDR: the gRPC
# target of every service (STOCK_ADDR, ...), and the origins whose pages may call it from a
# browser (CORS_ALLOWED_ORIGINS, default http://localhost:3000, a local frontend's dev server;
# set it empty for none). JWT_SECRET is exported below for the services and the gateway alike;
# other gateway settings (MAX_REQUEST_BYTES, STREAM_TIMEOUT, STOCK_TIMEOUT, ...) pass through.
gateway_env() {
	local i
	for i in "${!SERVICES[@]}"; do
		echo "$(upper "${SERVICES[$i]}")_ADDR=$(grpc_target "$i")"
	done
	echo "CORS_ALLOWED_ORIGINS=${CORS_ALLOWED_ORIGINS-http://localhost:3000}"
}

die() {
	echo "run.sh: $*" >&2
	exit 1
}
say() { echo "==> $*"; }
upper() { printf '%s' "$1" | tr '[:lower:]-' '[:upper:]_'; }
# env_or NAME DEFAULT: the value of environment variable NAME, else DEFAULT.
env_or() { if [ -n "${!1:-}" ]; then echo "${!1}"; else echo "$2"; fi; }
now_ms() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME//[!0-9]/}
		echo $((10#$t / 1000))
	else
		echo $((SECONDS * 1000))
	fi
}
secs() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
# port_busy PORT: something accepts connections on 127.0.0.1:PORT.
port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
addr_port() {
	local p=${1##*:}
	case $p in '' | *[!0-9]*) die "bad address '$1' in $2: want [host]:port, e.g. :50061" ;; esac
	echo "$p"
}
# probe_host ADDR: where to reach a listener bound to ADDR from this machine.
probe_host() {
	local h=${1%:*}
	case $h in '' | 0.0.0.0 | '[::]' | '::') echo localhost ;; *) echo "$h" ;; esac
}
# svc_index NAME: NAME's index in SERVICES; nothing if it is not there.
svc_index() {
	local i
	for i in "${!SERVICES[@]}"; do
		[ "${SERVICES[$i]}" = "$1" ] && { echo "$i"; return; }
	done
	return 0
}
# grpc_target I: host:port to reach the gRPC listener of SERVICES[I] from this machine.
grpc_target() { echo "$(probe_host "${GRPC_ADDRS[$1]}"):$(addr_port "${GRPC_ADDRS[$1]}" x)"; }
mask() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:****@#' <<<"$1"; }

# --- state for cleanup --------------------------------------------------------------------
PIDS=()
NAMES=()
STARTED_PG=false

# stop_services: SIGTERM to each service in reverse start order, each drained (or killed after
# 30 s) before the next, so a service's in-flight calls still reach the services it calls.
stop_services() {
	local i deadline
	[ ${#PIDS[@]} -gt 0 ] || return 0
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		if kill -0 "${PIDS[$i]}" 2>/dev/null; then
			echo "stopping ${NAMES[$i]} (pid ${PIDS[$i]})"
			kill -TERM "${PIDS[$i]}" 2>/dev/null || true
		fi
		deadline=$((SECONDS + 30))
		while kill -0 "${PIDS[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if kill -0 "${PIDS[$i]}" 2>/dev/null; then
			echo "${NAMES[$i]} did not stop within 30 s; killing it" >&2
			kill -KILL "${PIDS[$i]}" 2>/dev/null || true
		fi
		wait "${PIDS[$i]}" 2>/dev/null || true
	done
	PIDS=()
}

cleanup() {
	local rc=$?
	trap '' INT TERM # a second Ctrl-C must not cut the shutdown short
	trap - EXIT
	stop_services
	if $STARTED_PG; then
		echo "stopping PostgreSQL ($DATA_DIR)"
		"$HERE/pgcluster.sh" stop "$DATA_DIR"
	fi
	exit "$rc"
}
on_signal() {
	echo
	say "shutting down"
	exit 0
}
trap cleanup EXIT
trap on_signal INT TERM

# --- tools --------------------------------------------------------------------------------
PROBE=$(command -v grpc_health_probe || command -v grpc-health-probe || true)
[ -n "$PROBE" ] || die "grpc_health_probe not found in $BIN or PATH: run 'make run' (it builds it)"
GRPCURL=$(command -v grpcurl || true)
for svc in "${SERVICES[@]}"; do
	[ -x "$BIN/pgfleet-$svc" ] || die "$BIN/pgfleet-$svc not found: run 'make run' or 'make build'"
done
[ -x "$BIN/pgfleet-gateway" ] || die "$BIN/pgfleet-gateway not found: run 'make run' or 'make build'"

find_psql() {
	command -v psql && return
	local d
	for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin; do
		[ -x "$d/psql" ] && { echo "$d/psql"; return; }
	done
	return 1
}

# --- ports: check everything before starting anything ----------------------------------------
GRPC_ADDRS=()
METRICS_ADDRS=()
SVC_ENVS=() # per service: service_env's lines
for svc in "${SERVICES[@]}"; do
	SVC=$(upper "$svc")
	g=$(env_or "${SVC}_GRPC_ADDR" ":$(default_grpc_port "$svc")")
	m=$(env_or "${SVC}_METRICS_ADDR" ":$(default_metrics_port "$svc")")
	GRPC_ADDRS+=("$g")
	METRICS_ADDRS+=("$m")
	e=$(service_env "$svc") # exits here when a service it calls is missing
	SVC_ENVS+=("$e")
	p=$(addr_port "$g" "${SVC}_GRPC_ADDR")
	port_busy "$p" && die "port $p ($svc gRPC) is already in use: stop what holds it (a previous run?) or choose another, e.g. ${SVC}_GRPC_ADDR=:$((p + 10)) make run"
	p=$(addr_port "$m" "${SVC}_METRICS_ADDR")
	port_busy "$p" && die "port $p ($svc metrics) is already in use: stop what holds it or choose another, e.g. ${SVC}_METRICS_ADDR=:$((p + 10)) make run"
done
GATEWAY_HTTP=$(env_or GATEWAY_HTTP_ADDR :8080)
GATEWAY_METRICS=$(env_or GATEWAY_METRICS_ADDR :9100)
p=$(addr_port "$GATEWAY_HTTP" GATEWAY_HTTP_ADDR)
port_busy "$p" && die "port $p (gateway HTTP) is already in use: stop what holds it or choose another, e.g. GATEWAY_HTTP_ADDR=:$((p + 10)) make run"
p=$(addr_port "$GATEWAY_METRICS" GATEWAY_METRICS_ADDR)
port_busy "$p" && die "port $p (gateway metrics) is already in use: stop what holds it or choose another, e.g. GATEWAY_METRICS_ADDR=:$((p + 10)) make run"

# --- 1. PostgreSQL ------------------------------------------------------------------------
if [ -n "${DATABASE_URL:-}" ]; then
	ADMIN_URL=$DATABASE_URL
	re='^(postgres|postgresql)://(([^@/?]*)@)?([^/?]*)(/[^?]*)?(\?.*)?$'
	[[ $ADMIN_URL =~ $re ]] || die "DATABASE_URL must be a URL: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=...]"
	PG_HOSTPORT=${BASH_REMATCH[4]}
	PG_QUERY=${BASH_REMATCH[6]}
	PG_WHERE="the server of DATABASE_URL, left running on exit"
	PSQL=$(find_psql) || {
		if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
			say "installing the PostgreSQL client (psql) with apt-get"
			DEBIAN_FRONTEND=noninteractive apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
		fi
		PSQL=$(find_psql) || die "psql not found: install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq)"
	}
	say "using the PostgreSQL server of DATABASE_URL: $(mask "$ADMIN_URL")"
else
	PG_PORT=${PGFLEET_PG_PORT:-5433}
	case $PG_PORT in '' | *[!0-9]*) die "PGFLEET_PG_PORT must be a port number, not '$PG_PORT'" ;; esac
	running_pid=
	if [ -s "$DATA_DIR/postmaster.pid" ]; then
		running_pid=$(head -n 1 "$DATA_DIR/postmaster.pid")
		kill -0 "$running_pid" 2>/dev/null || running_pid=
	fi
	if [ -n "$running_pid" ]; then
		# Left over from a run that was killed: reuse it, on the port it listens on, and leave it
		# running on exit as we found it.
		PG_PORT=$(sed -n 4p "$DATA_DIR/postmaster.pid")
		say "PostgreSQL is already running in $DATA_DIR (pid $running_pid, port $PG_PORT); using it and leaving it running (stop it: $HERE/pgcluster.sh stop $DATA_DIR)"
	else
		port_busy "$PG_PORT" && die "port $PG_PORT (PostgreSQL) is already in use: choose another, e.g. PGFLEET_PG_PORT=$((PG_PORT + 1)) make run, or use that server with DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:$PG_PORT/postgres make run"
		say "starting PostgreSQL in $DATA_DIR on 127.0.0.1:$PG_PORT"
		STARTED_PG=true
		"$HERE/pgcluster.sh" start "$DATA_DIR" "$PG_PORT" ||
			die "PostgreSQL did not start; see $DATA_DIR/server.log"
	fi
	ADMIN_URL=$("$HERE/pgcluster.sh" url "$PG_PORT")
	PG_HOSTPORT=127.0.0.1:$PG_PORT
	PG_QUERY='?sslmode=disable'
	PG_WHERE="local cluster in $DATA_DIR, server log $DATA_DIR/server.log"
	PSQL=$(find_psql) || die "psql not found: install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client)"
fi
# The admin URL with database pgfleet, to print.
if [[ $ADMIN_URL =~ ^([^?]*://[^/?]*)(/[^?]*)?(\?.*)?$ ]]; then
	ADMIN_DB_URL=${BASH_REMATCH[1]}/$DB${BASH_REMATCH[3]}
else
	ADMIN_DB_URL=$ADMIN_URL
fi
psql_() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_ "$ADMIN_URL" -Atc 'SELECT 1' >/dev/null || die "cannot connect to PostgreSQL as the administrator: $(mask "$ADMIN_URL")"

# urlenc S: S percent-encoded for the userinfo of a URL.
urlenc() {
	local s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[a-zA-Z0-9._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c" && out+=$c ;;
		esac
	done
	echo "$out"
}
# service_url SVC PASSWORD: the DATABASE_URL a service gets.
service_url() { echo "postgres://$1:$(urlenc "$2")@$PG_HOSTPORT/$DB$PG_QUERY"; }
password_of() { env_or "$(upper "$1")_DB_PASSWORD" "$1"; }

# --- 2. roles and schemas -----------------------------------------------------------------
for svc in "${SERVICES[@]}"; do
	psql_ "$ADMIN_URL" -v db="$DB" -v role="$svc" -v password="$(password_of "$svc")" -f "$HERE/bootstrap.sql"
done
say "database $DB: roles and schemas ready for: ${SERVICES[*]}"

# --- 3 + 4. services ----------------------------------------------------------------------
mkdir -p "$LOG_DIR"
# Each service runs in a session of its own (setsid, where there is one), so Ctrl-C in the
# terminal reaches only this script, which then stops each service with one SIGTERM.
SETSID=$(command -v setsid || true)

# wait_serving I: until SERVICES[I] reports SERVING; exits with the tail of its log if it dies
# or does not get there within PGFLEET_START_TIMEOUT.
wait_serving() {
	local svc=${SERVICES[$1]} target deadline
	target=$(grpc_target "$1")
	deadline=$((SECONDS + ${PGFLEET_START_TIMEOUT:-60}))
	until "$PROBE" -addr="$target" -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1; do
		if ! kill -0 "${PIDS[$1]}" 2>/dev/null; then
			echo "run.sh: $svc exited during startup; last lines of $LOG_DIR/$svc.log:" >&2
			tail -n 40 "$LOG_DIR/$svc.log" >&2
			if grep -q 'address already in use' "$LOG_DIR/$svc.log"; then
				# Free when checked at the start, so taken since: often by an outgoing connection
				# that got it as its local port (50051-50053 are in Linux's ephemeral range).
				local var=GRPC_ADDR port
				port=$(addr_port "${GRPC_ADDRS[$1]}" x)
				if grep -q "listen tcp [^ ]*:$(addr_port "${METRICS_ADDRS[$1]}" x): bind" "$LOG_DIR/$svc.log"; then
					var=METRICS_ADDR port=$(addr_port "${METRICS_ADDRS[$1]}" x)
				fi
				echo "run.sh: port $port ($svc) was taken after run.sh found it free, by a listener or by a connection using it as its local port; run again, or move it, e.g. $(upper "$svc")_$var=:$((port + 10)) make run" >&2
			fi
			exit 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "run.sh: $svc not SERVING on $target after ${PGFLEET_START_TIMEOUT:-60} s; last lines of $LOG_DIR/$svc.log:" >&2
			tail -n 40 "$LOG_DIR/$svc.log" >&2
			exit 1
		fi
		sleep 0.5
	done
	say "$svc is SERVING on $target"
}

# Auth: every service checks JWTs signed with one HS256 secret, made once per checkout and kept
# in $RUN_DIR (.tmp/run) so that printed tokens stay valid across runs (JWT_SECRET overrides it).
SECRET_FILE=$RUN_DIR/jwt-secret
if [ -z "${JWT_SECRET:-}" ]; then
	if [ ! -s "$SECRET_FILE" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$SECRET_FILE")
	fi
	JWT_SECRET=$(cat "$SECRET_FILE")
fi
export JWT_SECRET
token() { "$BIN/pgfleet-token" -ttl 168h "$@" || die "pgfleet-token failed: is .tmp/bin built (make build)?"; }
DEMO_TOKEN=$(token -sub demo@pgfleet.dev)
ADA_TOKEN=$(token -sub ada@example.com)
ADMIN_TOKEN=$(token -sub admin@pgfleet.dev -roles admin)

# In SERVICES order, each once the one before it is SERVING: a service finds those it calls up.
for i in "${!SERVICES[@]}"; do
	svc=${SERVICES[$i]}
	log=$LOG_DIR/$svc.log
	: >"$log"
	extra=()
	while IFS= read -r kv; do
		[ -n "$kv" ] && extra+=("$kv")
	done <<<"${SVC_ENVS[$i]}"
	env DATABASE_URL="$(service_url "$svc" "$(password_of "$svc")")" \
		GRPC_ADDR="${GRPC_ADDRS[$i]}" METRICS_ADDR="${METRICS_ADDRS[$i]}" ${extra[@]+"${extra[@]}"} \
		${SETSID:+"$SETSID"} "$BIN/pgfleet-$svc" >>"$log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$svc")
	say "started $svc (pid $!, gRPC ${GRPC_ADDRS[$i]}, metrics ${METRICS_ADDRS[$i]}${extra[*]+, ${extra[*]}}), log $log"
	wait_serving "$i"
done

# --- 5. demo data, once -------------------------------------------------------------------
# Each seed file checks for itself whether its data is there already, and prints one line:
# what it loaded, or that it loaded nothing.
if [ "${PGFLEET_SEED:-1}" != 0 ]; then
	for svc in "${SERVICES[@]}"; do
		seed=$HERE/seed/$svc.sql
		[ -f "$seed" ] || continue
		t0=$(now_ms)
		out=$(psql_ "$(service_url "$svc" "$(password_of "$svc")")" -f "$seed") ||
			die "loading $seed failed (it runs in one transaction: nothing was kept)"
		say "$svc demo data ($seed, $(secs $(($(now_ms) - t0)))): $out"
	done
	# The question bank goes in through the API itself: BulkImportQuestions checks every
	# question and rubric as any client's import would be checked.
	bank=$HERE/seed/interview-questions.json
	interview_i=$(svc_index interview)
	if [ -n "$interview_i" ] && [ -f "$bank" ] && [ -n "$GRPCURL" ]; then
		n=$(psql_ "$(service_url interview "$(password_of interview)")" -Atc 'SELECT count(*) FROM interview.questions')
		if [ "$n" = 0 ]; then
			t0=$(now_ms)
			out=$("$GRPCURL" -plaintext -H "authorization: Bearer $ADMIN_TOKEN" -d @ "$(grpc_target "$interview_i")" \
				pgfleet.interview.v1.QuestionBankService/BulkImportQuestions <"$bank") ||
				die "importing $bank failed: $out"
			say "interview demo data ($bank through BulkImportQuestions, $(secs $(($(now_ms) - t0)))): $(echo "$out" | tr -d ' \n')"
		else
			say "interview demo data: the question bank holds $n questions already"
		fi
	fi
fi

# --- 5b. gateway ----------------------------------------------------------------------------
# Last: it answers for every service. It listens once its routes and connections are set up,
# so an accepting port means it is ready.
log=$LOG_DIR/gateway.log
: >"$log"
gw_env=()
while IFS= read -r kv; do
	[ -n "$kv" ] && gw_env+=("$kv")
done <<<"$(gateway_env)"
env HTTP_ADDR="$GATEWAY_HTTP" METRICS_ADDR="$GATEWAY_METRICS" "${gw_env[@]}" \
	${SETSID:+"$SETSID"} "$BIN/pgfleet-gateway" >>"$log" 2>&1 &
PIDS+=($!)
NAMES+=(gateway)
say "started gateway (pid $!, HTTP $GATEWAY_HTTP, metrics $GATEWAY_METRICS, ${gw_env[*]}), log $log"
GATEWAY_URL=http://$(probe_host "$GATEWAY_HTTP"):$(addr_port "$GATEWAY_HTTP" x)
gw_dial=$(probe_host "$GATEWAY_HTTP")
[ "$gw_dial" = localhost ] && gw_dial=127.0.0.1
deadline=$((SECONDS + ${PGFLEET_START_TIMEOUT:-60}))
until (: <"/dev/tcp/$gw_dial/$(addr_port "$GATEWAY_HTTP" x)") 2>/dev/null; do
	if ! kill -0 "${PIDS[-1]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
		echo "run.sh: the gateway did not start listening on $GATEWAY_HTTP; last lines of $log:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
	sleep 0.2
done
say "gateway is serving on $GATEWAY_URL"

# --- 6. summary ---------------------------------------------------------------------------
rel_bin=${BIN#"$ROOT"/}
probe=$(basename "$PROBE")
stock_i=$(svc_index stock)
portfolio_i=$(svc_index portfolio)
echo
echo "pgfleet is running. Ctrl-C stops it."
echo
echo "  PostgreSQL  $PG_HOSTPORT, database $DB ($PG_WHERE)"
echo "              admin: $(mask "$ADMIN_DB_URL")"
for i in "${!SERVICES[@]}"; do
	svc=${SERVICES[$i]}
	pw=$(password_of "$svc")
	note="password from $(upper "$svc")_DB_PASSWORD"
	[ "$pw" = "$svc" ] && note="dev-only password \"$svc\" (= role name); set $(upper "$svc")_DB_PASSWORD to change it"
	printf '  %-11s gRPC %s, metrics %s, log %s\n' "$svc" "${GRPC_ADDRS[$i]}" "${METRICS_ADDRS[$i]}" "$LOG_DIR/$svc.log"
	printf '  %-11s DATABASE_URL=%s  (%s)\n' "" "$(mask "$(service_url "$svc" "$pw")")" "$note"
done
printf '  %-11s HTTP %s (REST, /health, /monitoring/database, /openapi.json), metrics %s, log %s\n' \
	gateway "$GATEWAY_HTTP" "$GATEWAY_METRICS" "$LOG_DIR/gateway.log"
printf '  %-11s status page: %s/\n' "" "$GATEWAY_URL"
echo
echo "Try it: in another shell first run these (grpcurl, $probe and pgfleet-token are in $rel_bin;"
echo "the tokens are valid for 7 days, signed with the secret in $SECRET_FILE):"
echo "  export PATH=\"$BIN:\$PATH\""
echo "  export DEMO_TOKEN=$DEMO_TOKEN   # demo@pgfleet.dev, owner of the seeded portfolio"
echo "  export ADA_TOKEN=$ADA_TOKEN   # ada@example.com"
echo "  export ADMIN_TOKEN=$ADMIN_TOKEN   # role admin"
echo "  # more: JWT_SECRET=\$(cat $SECRET_FILE) pgfleet-token -sub you@example.com [-roles admin|ingest]"
echo "Market data is public; everything else needs a token, and each user reaches only their own data."
for i in "${!SERVICES[@]}"; do
	echo "  $probe -addr=$(grpc_target "$i")"
done
if [ -n "$stock_i" ]; then
	s=$(grpc_target "$stock_i")
	m=$(probe_host "${METRICS_ADDRS[$stock_i]}"):$(addr_port "${METRICS_ADDRS[$stock_i]}" x)
	# The dev password is printed as it is; a chosen one stays masked.
	stock_url=$(service_url stock "$(password_of stock)")
	[ "$(password_of stock)" = stock ] || stock_url=$(mask "$stock_url")
	cat <<-EOF
	  grpcurl -plaintext $s list
	  grpcurl -plaintext -d '{"symbol":"AAPL"}' $s pgfleet.stock.v1.StockService/GetStock
	  grpcurl -plaintext -d '{"filter":"sector = \"Technology\"","order_by":"market_cap desc","page_size":5}' $s pgfleet.stock.v1.StockService/ListStocks
	  grpcurl -plaintext -d '{"symbols":["AAPL","MSFT","NVDA"]}' $s pgfleet.stock.v1.StockService/GetLatestPrices
	  grpcurl -plaintext -H "authorization: Bearer \$ADMIN_TOKEN" $s pgfleet.ops.v1.DatabaseMonitor/GetDatabaseStatus
	  curl -s $m/metrics | grep pgfleet_db_pool
	  psql '$stock_url' -c 'SELECT sector, count(*) FROM stock.stocks GROUP BY 1'
	EOF
fi
if [ -n "$portfolio_i" ]; then
	t=$(grpc_target "$portfolio_i")
	P=pgfleet.portfolio.v1.PortfolioService
	portfolio_url=$(service_url portfolio "$(password_of portfolio)")
	# The seeded demo portfolio's ids, so that the examples below run as printed.
	demo=$(psql_ "$portfolio_url" -AtF ' ' -c "SELECT p.id, p.user_id FROM portfolio.portfolios p
		JOIN portfolio.users u ON u.id = p.user_id
		WHERE lower(u.email) = 'demo@pgfleet.dev' AND p.name = 'Demo' ORDER BY p.id LIMIT 1" 2>/dev/null) || demo=
	read -r demo_pid demo_uid <<<"$demo" || true
	if [ -n "${demo_pid:-}" ]; then
		pid=$demo_pid
		where1="here on the seeded portfolio \"Demo\""
		where2="(id $demo_pid, of demo@pgfleet.dev, user id $demo_uid) so they run as printed; on yours, use its id."
	else
		pid='<portfolio.id from CreatePortfolio>'
		where1="with the portfolio.id from"
		where2="CreatePortfolio (there is no seeded demo portfolio: PGFLEET_SEED=0 on the first run?)."
	fi
	[ "$(password_of portfolio)" = portfolio ] || portfolio_url=$(mask "$portfolio_url")
	cat <<-EOF
	  # portfolio: Ada registers herself (the email must be her token's subject; a second time
	  # it answers ALREADY_EXISTS) and opens a portfolio, which is hers because the token is
	  grpcurl -plaintext -H "authorization: Bearer \$ADA_TOKEN" -d '{"email":"ada@example.com","display_name":"Ada"}' $t $P/CreateUser   # AlreadyExists if she registered before
	  grpcurl -plaintext -H "authorization: Bearer \$ADA_TOKEN" -d '{"name":"Main","request_id":"ada-main"}' $t $P/CreatePortfolio
	  # Then cash, a trade priced by the stock service, and the valuation, $where1
	  # $where2 Without a token: UNAUTHENTICATED; with Ada's: NOT_FOUND, as for a missing id.
	  # A repeated request_id returns the first result and changes nothing.
	  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","amount":"10000","request_id":"dep-1"}' $t $P/Deposit
	  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","symbol":"AAPL","side":"SIDE_BUY","quantity":"10","request_id":"buy-1"}' $t $P/ExecuteTrade
	  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid"}' $t $P/GetPortfolio
	  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid","filter":"symbol = \"AAPL\""}' $t $P/ListTrades
	  grpcurl -plaintext -H "authorization: Bearer \$DEMO_TOKEN" -d '{"portfolio_id":"$pid"}' $t $P/ListCashMovements
	  psql '$portfolio_url' -c 'SELECT p.id, p.cash, sum(m.amount) AS ledger FROM portfolio.portfolios p JOIN portfolio.cash_movements m ON m.portfolio_id = p.id GROUP BY 1, 2 ORDER BY 1'
	EOF
fi
interview_i=$(svc_index interview)
if [ -n "$interview_i" ]; then
	t=$(grpc_target "$interview_i")
	cat <<-EOF
	  # interview: start a session, answer its next question, complete it (jq passes the ids along)
	  A="authorization: Bearer \$ADA_TOKEN"
	  I=pgfleet.interview.v1.InterviewService
	  grpcurl -plaintext -H "\$A" -d '{"filter":"category = \"SQL\" AND tags:\"joins\"","page_size":3}' $t pgfleet.interview.v1.QuestionBankService/ListQuestions
	  SID=\$(grpcurl -plaintext -H "\$A" -d '{"criteria":{"categories":["SQL","PostgreSQL"],"max_difficulty":3,"count":3}}' $t \$I/StartSession | jq -r .session.id)
	  QID=\$(grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/NextQuestion | jq -r .question.questionId)
	  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\",\\"question_id\\":\\"\$QID\\",\\"answer\\":\\"An inner join keeps only matching rows\\"}" $t \$I/SubmitAnswer
	  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/CompleteSession
	  grpcurl -plaintext -H "\$A" -d "{\\"session_id\\":\\"\$SID\\"}" $t \$I/GetSession
	EOF
fi
gw=$GATEWAY_URL
gm=http://$(probe_host "$GATEWAY_METRICS"):$(addr_port "$GATEWAY_METRICS" x)
pid=${demo_pid:-'<portfolio id>'}
json="-H 'Content-Type: application/json'"
cat <<-EOF
	  # REST through the gateway ($gw): JSON with proto field names, int64 and decimals as strings
	  curl -s $gw/v1/stocks/AAPL
	  # a filtered, sorted page; for the next one, add &page_token=<next_page_token of the answer>
	  curl -s '$gw/v1/stocks?filter=sector%20%3D%20%22Technology%22&order_by=market_cap%20desc&page_size=5'
	  curl -s '$gw/v1/stocks/AAPL/prices:stream?batch_size=100' | head -c 300   # NDJSON export
	  # a trade with the demo user's token; the same without a token is 401, with Ada's 404
	  curl -s $json -H "Authorization: Bearer \$DEMO_TOKEN" -d '{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1","request_id":"rest-buy-1"}' $gw/v1/portfolios/$pid/trades
	  curl -s -i $json -d '{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1","request_id":"rest-buy-2"}' $gw/v1/portfolios/$pid/trades   # 401: no token
	  curl -s -H "Authorization: Bearer \$ADA_TOKEN" $gw/v1/portfolios/$pid   # 404: not hers
	  curl -s $gw/health
	  curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" $gw/monitoring/database   # needs role admin or service
	  curl -s $gw/openapi.json | head -c 300
	  curl -s $gm/metrics | grep pgfleet_gateway_http_requests_total
	  # CORS preflights: from the allowed origin (Access-Control-Allow-Origin comes back), from another (none)
	  curl -s -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization,content-type' $gw/v1/portfolios
	  curl -s -i -X OPTIONS -H 'Origin: http://evil.example' -H 'Access-Control-Request-Method: POST' $gw/v1/portfolios
	  # the status page (every service's health, live; pool figures and locks once you paste \$ADMIN_TOKEN into it): open $gw/ in a browser
	EOF
[ -n "$GRPCURL" ] || echo "  (grpcurl is missing from $rel_bin: 'make run' builds it)"
echo

# --- wait ---------------------------------------------------------------------------------
while :; do
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			echo "run.sh: ${NAMES[$i]} exited unexpectedly; last lines of $LOG_DIR/${NAMES[$i]}.log:" >&2
			tail -n 40 "$LOG_DIR/${NAMES[$i]}.log" >&2
			exit 1
		fi
	done
	# Sleeping in the background lets a signal interrupt `wait` at once.
	sleep 1 &
	wait $! || true
done
