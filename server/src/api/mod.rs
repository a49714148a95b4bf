//! gRPC API services.
