#!/bin/sh
# First start: initdb with a password for POSTGRES_USER, create POSTGRES_DB and POSTGRES_EXTRA_DBS.
# Every start: run the server in the foreground, listening on the container's network.
set -eu
user=${POSTGRES_USER:-postgres}
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /run/postgresql" start >/dev/null
  for db in ${POSTGRES_DB:-} ${POSTGRES_EXTRA_DBS:-}; do
    createdb -h /run/postgresql -U "$user" "$db"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /run/postgresql
