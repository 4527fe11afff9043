#!/usr/bin/env bash
# Make sure the servers the tests use are installed and running: redis-server (also used to start a
# throwaway Redis Cluster) and PostgreSQL (backend store of the MLflow tracking server tests).
#
# Missing ones are installed with apt-get (after `apt-get update`), as root or through sudo. This never
# fails the run: where apt-get or a server is unavailable it says so, and the scale-out tests skip with
# the reason. Quick when everything is already there (no apt-get call at all).
#
# Usage: scripts/ensure-services.sh        (the Makefile's `test` target runs it)
#        scripts/ensure-services.sh bench  (`make bench`: Redis, redis-benchmark and wrk only)
set -u

PGHOST=${OFFERS_TEST_PGHOST:-127.0.0.1}
PGPORT=${OFFERS_TEST_PGPORT:-5432}
REDIS_PORT=${OFFERS_TEST_REDIS_PORT:-6379}

say() { echo "ensure-services: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

APT_UPDATED=0
apt_install() {
    if ! have apt-get; then
        say "apt-get is not available; cannot install $*"
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || {
            say "apt-get update failed (no root, or no network to the Debian mirror)"
            return 1
        }
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
        say "apt-get install $* failed"
        return 1
    }
    say "installed $*"
}

# The newest PostgreSQL server binaries Debian installed (pg_ctlcluster is not always there).
pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_ready() {
    if have pg_isready; then
        pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2
    else
        (exec 3<>"/dev/tcp/$PGHOST/$PGPORT") 2>/dev/null
    fi
}

ensure_redis() {
    if ! have redis-server || ! have redis-cli; then
        apt_install redis-server redis-tools || return 0
    fi
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        return 0
    fi
    # A plain Redis for REDIS_URL users; the cluster tests start their own nodes on free ports.
    if redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir /tmp --logfile /tmp/ensure-services-redis.log >/dev/null 2>&1; then
        say "started redis-server on 127.0.0.1:$REDIS_PORT"
    else
        say "could not start redis-server on 127.0.0.1:$REDIS_PORT (see /tmp/ensure-services-redis.log)"
    fi
}

ensure_postgres() {
    local installed_now=0
    if ! have psql || [ -z "$(pg_bindir)" ]; then
        apt_install postgresql postgresql-client || return 0
        installed_now=1
    fi
    if ! pg_ready; then
        if have pg_ctlcluster && have pg_lsclusters; then
            pg_lsclusters -h 2>/dev/null | while read -r version name _; do
                as_root pg_ctlcluster "$version" "$name" start >/dev/null 2>&1
            done
        elif have service; then
            as_root service postgresql start >/dev/null 2>&1
        fi
        for _ in $(seq 1 30); do
            pg_ready && break
            sleep 0.5
        done
    fi
    if ! pg_ready; then
        say "PostgreSQL is not accepting connections on $PGHOST:$PGPORT; the MLflow server tests will skip"
        return 0
    fi
    # A server this script just installed only trusts local socket peers; the tests connect over TCP
    # as `postgres` without a password, as on the CI machines. Loosen only a server installed here.
    if [ "$installed_now" -eq 1 ]; then
        local hba
        hba=$(as_root su postgres -c "psql -tAc 'SHOW hba_file'" 2>/dev/null)
        if [ -n "$hba" ] && ! grep -q "ensure-services" "$hba" 2>/dev/null; then
            as_root sed -i "1i host all postgres 127.0.0.1/32 trust  # ensure-services: test machine" "$hba" &&
                as_root su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null 2>&1 &&
                say "PostgreSQL on 127.0.0.1 now trusts user postgres (test machine)"
        fi
    fi
}

# wrk: the load generator of `make bench` and of its smoke test.
ensure_wrk() {
    have wrk || apt_install wrk || say "wrk is missing: make bench and its smoke test cannot load the API"
}

ensure_redis
ensure_wrk
[ "${1:-}" = "bench" ] || ensure_postgres
exit 0
