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

# Engine throughput: 10,000 three-step runs vs apalis no-op jobs and an apalis-workflow three-step flow, same database; then latency at 200 runs/s.
bench-engine runs="10000":
    cargo run --release --bin bench-engine -- --runs {{runs}}

# Engine phase only, with three plain steps per run (grouped checkpoints) instead of three tx_steps.
bench-engine-plain runs="10000":
    cargo run --release --bin bench-engine -- --runs {{runs}} --plain-steps

# Engine phase only, with 0-3 tx_steps per run (0: what a run costs besides its steps); prints CPU per run.
bench-engine-steps steps="0" runs="10000":
    cargo run --release --bin bench-engine -- --runs {{runs}} --steps {{steps}}

# Ingest throughput: signed Stripe webhooks (1 in 20 repeated) at 32 connections, API-only node then full node, vs pgbench doing the same inserts.
bench-ingest seconds="10":
    cargo build --release --bin relevo --bin bench-ingest
    ./target/release/bench-ingest --seconds {{seconds}}

# Outbound delivery: 20,000 events to 4 local subscribers, then 200 events/s for 60 s, vs pgbench.
bench-deliver events="20000" seconds="60":
    cargo run --release --bin bench-deliver -- --events {{events}} --seconds {{seconds}}

# Quote parser: 10,000 generated Spanish order messages against a generated 1,000-product catalog, one core.
bench-quotes:
    cargo run --release --bin bench-quotes

# Regenerate `.sqlx/` (offline data of the checked query macros) against a
# throwaway migrated Postgres; commit it with the query change.
sqlx-prepare:
    scripts/sqlx-prepare
