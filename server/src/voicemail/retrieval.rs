//! Voicemail retrieval by phone.
