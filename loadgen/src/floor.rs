//! The physical floor: an in-process TCP echo server that answers each request frame
//! (sized like a Produce request) with a frame sized like a Produce response, over the
//! same loopback, with the same client loop as the broker runs.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use anyhow::{bail, Context};

use crate::runner::Checker;
use crate::wire::{write_all, FrameReader, PollMode};

/// Offset of the correlation id in a request payload: api_key(2) api_version(2).
const REQUEST_PAYLOAD_CID_OFFSET: usize = 4;
/// Offset of the correlation id in a response frame: the length prefix.
const RESPONSE_FRAME_CID_OFFSET: usize = 4;

/// Starts the echo server on 127.0.0.1:0 for one connection; the thread ends (returning
/// the number of requests answered) when the client disconnects.
pub fn start_echo_server(
    mode: PollMode,
    response_frame: Vec<u8>,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<u64>>)> {
    if response_frame.len() < RESPONSE_FRAME_CID_OFFSET + 4 {
        bail!(
            "response frame of {} bytes has no room for a header",
            response_frame.len()
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo server")?;
    let addr = listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("loadgen-echo".into())
        .spawn(move || -> anyhow::Result<u64> {
            let (stream, _) = listener.accept().context("accepting the floor client")?;
            stream.set_nodelay(true)?;
            let writer = stream.try_clone()?;
            let mut reader = FrameReader::new(stream, mode)?;
            let mut response = response_frame;
            let mut answered = 0u64;
            loop {
                let payload = match reader.read_frame(None) {
                    Ok(p) => p,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(answered),
                    Err(e) => return Err(e).context("echo server read"),
                };
                let cid = payload
                    .get(REQUEST_PAYLOAD_CID_OFFSET..REQUEST_PAYLOAD_CID_OFFSET + 4)
                    .context("request shorter than a header")?;
                response[RESPONSE_FRAME_CID_OFFSET..RESPONSE_FRAME_CID_OFFSET + 4]
                    .copy_from_slice(cid);
                if let Err(e) = write_all(&writer, &response) {
                    // The client closing mid-write at the end of a run is not a failure.
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) {
                        return Ok(answered);
                    }
                    return Err(e).context("echo server write");
                }
                answered += 1;
            }
        })
        .context("starting the echo server")?;
    Ok((addr, handle))
}

/// Accepts a response of the expected size.
pub struct EchoChecker {
    pub response_payload_bytes: usize,
}

impl Checker for EchoChecker {
    fn check(&mut self, payload: &[u8]) -> anyhow::Result<bool> {
        Ok(payload.len() == self.response_payload_bytes)
    }
}
