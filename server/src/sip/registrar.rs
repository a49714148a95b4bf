//! Registrar (placeholder).
