# Relevo tasks. `just --list` shows them.

# Start the service (private Postgres when DATABASE_URL is unset).
run:
    cargo run --release

# Run every test (real Postgres, started privately by the tests).
test:
    cargo test

# Regenerate the committed OpenAPI document from the code.
openapi:
    cargo run --quiet -- openapi > openapi/relevo.json

# Engine throughput: 10,000 three-step runs vs plain apalis no-op jobs, same database.
bench-engine runs="10000":
    cargo run --release --bin bench-engine -- --runs {{runs}}

# Ingest throughput: signed Stripe webhooks at 32 connections vs pgbench doing the same inserts.
bench-ingest seconds="10":
    cargo build --release --bin relevo --bin bench-ingest
    ./target/release/bench-ingest --seconds {{seconds}}

# Outbound delivery: 20,000 events to 4 local subscribers, then 200 events/s for 60 s, vs pgbench.
bench-deliver events="20000" seconds="60":
    cargo run --release --bin bench-deliver -- --events {{events}} --seconds {{seconds}}

# Regenerate `.sqlx/` (the offline data of the checked query macros) against a
# freshly migrated private cluster; commit the result with the query change.
sqlx-prepare:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="$PWD/target/sqlx-prepare"
    rm -rf "$dir" .sqlx && mkdir -p "$dir" .sqlx
    cargo build --quiet --bin relevo
    RELEVO_DATA_DIR="$dir" RELEVO_ADDR=127.0.0.1:0 RELEVO_RUN_WORKERS=0 \
        RELEVO_ADMIN_TOKEN=sqlx-prepare-admin-token-0123456789 ./target/debug/relevo serve 2>"$dir/serve.log" &
    node=$!
    trap 'kill -TERM $node; wait $node' EXIT
    until grep -q "relevo is serving" "$dir/serve.log"; do sleep 0.2; done
    url="postgres://relevo@$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir/pg")/relevo"
    touch src/lib.rs
    find src workflows tests -name '*.rs' -exec grep -l 'query[_a-z]*!' {} + | xargs touch
    SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" DATABASE_URL="$url" cargo check --all-targets --quiet
    echo "$(ls .sqlx | wc -l) queries described in .sqlx/"
