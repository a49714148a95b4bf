//! caruso gRPC API.
