//! Call actors: one tokio task per call.
