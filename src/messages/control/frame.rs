//! Frames: a 4-byte big-endian length, then one encoded message.

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::storage::codec::{decode_message, encode_message};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed mid-frame.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is 0 or above the limit ([`MAX_FRAME_BYTES`], or
    /// [`MAX_HELLO_BYTES`] for a hello); the stream cannot be resynced.
    #[error("frame of {len} bytes is outside 1..={max}")]
    Size {
        /// The length found.
        len: u64,
        /// The largest length allowed.
        max: u32,
    },
    /// The body is not a valid message.
    #[error("{0}")]
    Decode(String),
}

/// Reads one frame and decodes it. `Ok(None)` when the peer closed the connection cleanly
/// between frames.
pub async fn read_frame<T, R>(reader: &mut R) -> Result<Option<T>, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: tokio::io::AsyncRead + Unpin,
{
    read_frame_within(reader, MAX_FRAME_BYTES).await
}

/// [`read_frame`] of a frame of at most `max` bytes of body (the node reads a [`Hello`], from
/// a peer it does not trust yet, within [`MAX_HELLO_BYTES`]).
pub async fn read_frame_within<T, R>(reader: &mut R, max: u32) -> Result<Option<T>, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > max {
        return Err(FrameError::Size {
            len: len as u64,
            max,
        });
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    decode_message(&body)
        .map(Some)
        .map_err(|e| FrameError::Decode(e.0))
}

/// Encodes and writes one frame.
pub async fn write_frame<T, W>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: tokio::io::AsyncWrite + Unpin,
{
    let body = encode_message(message).map_err(|e| FrameError::Decode(e.0))?;
    if body.is_empty() || body.len() as u64 > MAX_FRAME_BYTES as u64 {
        return Err(FrameError::Size {
            len: body.len() as u64,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}
