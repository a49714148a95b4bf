//! Server assembly.
