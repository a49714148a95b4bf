//! Helpers for caruso end-to-end tests (the tests live in `tests/tests/`).
