# StrikeMQ in Rust — the front door. `just --list` explains every recipe.

# Run the broker (release build) with any extra flags, e.g. `just broker --profile tuned`
broker *ARGS:
    cargo run --release -p strikemq -- {{ARGS}}

# Run every test (the README's test command)
test:
    cargo test --workspace

# Format check, lints and tests, as CI runs them
ci:
    bash .ci/run

# Client compatibility matrix: every client x scenario against the broker, writes docs/compat.md
compat:
    bash compat/install.sh
    python3 compat/run.py
