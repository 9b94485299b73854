//! The upload's bytes in chunks of one size: HTTP frames arrive in whatever
//! sizes the client and the network chose (often a few KiB), and a gRPC
//! message per frame would cost a message's overhead at both ends for every
//! few KiB. Frames are gathered into chunks of [`CHUNK_BYTES`] (the last one
//! shorter), and larger frames are cut, so that no message nears the gRPC
//! message size limit (4 MiB by default).

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, stream};

/// The size of an upload message's bytes: within the 64 KiB–1 MiB an upload
/// RPC expects, and far below the 4 MiB message limit.
pub(crate) const CHUNK_BYTES: usize = 256 * 1024;

/// `frames` regrouped into chunks of exactly `size` bytes, but the last
/// (which is shorter, and absent for an empty body). An error is passed on
/// at once, dropping the bytes gathered before it, and ends the stream.
pub(crate) fn coalesce<S, E>(frames: S, size: usize) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    assert!(size > 0, "a chunk holds at least one byte");
    let state = Gathering { frames: Box::pin(frames), pending: BytesMut::new(), ended: false };
    stream::unfold(state, move |mut state| async move {
        loop {
            if state.pending.len() >= size {
                let chunk = state.pending.split_to(size).freeze();
                return Some((Ok(chunk), state));
            }
            if state.ended {
                let rest = state.pending.split().freeze();
                return (!rest.is_empty()).then_some((Ok(rest), state));
            }
            match state.frames.next().await {
                Some(Ok(frame)) => state.pending.extend_from_slice(&frame),
                Some(Err(error)) => {
                    state.ended = true;
                    state.pending.clear();
                    return Some((Err(error), state));
                }
                None => state.ended = true,
            }
        }
    })
}

struct Gathering<S> {
    frames: std::pin::Pin<Box<S>>,
    pending: BytesMut,
    ended: bool,
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    fn sizes(frames: Vec<Result<Bytes, &'static str>>, size: usize) -> Vec<Result<usize, &'static str>> {
        block_on(coalesce(stream::iter(frames), size).map(|c| c.map(|b| b.len())).collect())
    }

    fn frames(lengths: &[usize]) -> Vec<Result<Bytes, &'static str>> {
        lengths.iter().map(|&n| Ok(Bytes::from(vec![7u8; n]))).collect()
    }

    #[test]
    fn small_frames_are_gathered_and_large_ones_cut() {
        assert_eq!(sizes(frames(&[3, 3, 3, 3]), 5), vec![Ok(5), Ok(5), Ok(2)]);
        assert_eq!(sizes(frames(&[12]), 5), vec![Ok(5), Ok(5), Ok(2)]);
        assert_eq!(sizes(frames(&[5, 5]), 5), vec![Ok(5), Ok(5)]);
        assert_eq!(sizes(frames(&[]), 5), vec![]);
        assert_eq!(sizes(frames(&[0, 0]), 5), vec![]);
    }

    #[test]
    fn a_realistic_upload_becomes_few_messages_in_order() {
        // 1 MiB + 1 byte in 8 KiB frames (the typical HTTP/1.1 frame): 5 messages, not 129.
        let body: Vec<u8> = (0..CHUNK_BYTES * 4 + 1).map(|i| (i % 251) as u8).collect();
        let frames: Vec<Result<Bytes, &str>> = body.chunks(8 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let chunks: Vec<Bytes> = block_on(coalesce(stream::iter(frames), CHUNK_BYTES).map(Result::unwrap).collect());
        assert_eq!(chunks.iter().map(Bytes::len).collect::<Vec<_>>(), vec![CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 1]);
        assert_eq!(chunks.concat(), body);
    }

    #[test]
    fn an_error_ends_the_chunks() {
        let mut input = frames(&[3]);
        input.push(Err("connection reset"));
        input.extend(frames(&[9]));
        assert_eq!(sizes(input, 5), vec![Err("connection reset")]);
    }
}
