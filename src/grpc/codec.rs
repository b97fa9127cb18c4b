//! The protobuf codec of the generated `voice.v1` services: prost, with a 1 KiB codec
//! buffer instead of tonic's default 8 KiB.
//!
//! Why: tonic allocates the encode buffer once per RPC and keeps it for the RPC's life, so
//! every open WatchCalls stream held an 8 KiB buffer it rarely fills (a call event encodes
//! to a few hundred bytes). At 10,000 idle streams that buffer was about half of the
//! memory per stream (BENCHMARKS.md, figure 4). Larger messages (a big snapshot) still
//! work: the buffer grows in 1 KiB steps.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial size and growth step of the encode and decode buffers.
pub const CODEC_BUFFER_SIZE: usize = 1024;
/// Encoded bytes after which a stream yields to the transport (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// A prost codec with [`CODEC_BUFFER_SIZE`] buffers.
#[derive(Debug, Clone, Copy)]
pub struct GatewayCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for GatewayCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(CODEC_BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for GatewayCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
