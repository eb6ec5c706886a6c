"""Things that exist for tests and benches: tiny random-weight checkpoints."""
