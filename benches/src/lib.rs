//! Helpers for caruso benches (the benches live in `benches/benches/`).
