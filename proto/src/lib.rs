//! caruso gRPC API: the `.proto` files under `proto/` compiled to tonic/prost code
//! (`caruso.v1.System`, `caruso.v1.Voicemail`, `caruso.v1.Agent`).
//!
//! ```no_run
//! use caruso_proto::caruso::v1::{system_client::SystemClient, GetVersionRequest};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = SystemClient::connect("http://127.0.0.1:50051").await?;
//! let version = client.get_version(GetVersionRequest {}).await?.into_inner();
//! println!("{}", version.version);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// The `caruso` protobuf package family.
pub mod caruso {
    /// Version 1 of the caruso API (`package caruso.v1`).
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("caruso.v1");
    }
}

/// Encoded `FileDescriptorSet` of every caruso `.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/caruso_descriptor.bin"));
