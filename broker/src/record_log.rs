//! The append-only record file behind the committed-offset log (`group/offsets.rs`) and
//! the transaction log (`txn/log.rs`): one format, one set of crash rules, two codecs.
//!
//! A file is an 8-byte magic followed by frames `[len u32][crc32c u32][body]`. Loading
//! stops at the first frame that is cut short, too long, fails its CRC or that the codec
//! cannot read: that is a torn tail (a crash mid-append), ignored with a warning. On
//! open the file is rewritten as the latest state (written beside it, fsynced, renamed
//! over it: a crash leaves the old or the new file); on a full disk the old file is kept,
//! cut to its whole records, so the broker still starts. An append that fails midway is
//! cut back, so that recovery never stops before records written after it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::storage::FlushPolicy;

const TMP_SUFFIX: &str = ".tmp";
const FRAME_HEADER_BYTES: usize = 8;

/// Appends one frame holding `body` to `out`.
pub(crate) fn put_frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crate::protocol::batch::crc32c(body).to_be_bytes());
    out.extend_from_slice(body);
}

/// Walks the frames of a file image, handing each whole body to `on_body` (which
/// returns false for a body it cannot read). Returns how many bytes were whole records;
/// errors only on a foreign file (wrong magic). A length over `body_bytes_max` is a torn
/// or corrupt frame. A file cut inside its magic was created
/// and never written: it counts as empty.
pub(crate) fn decode_frames(
    bytes: &[u8],
    magic: &[u8; 8],
    body_bytes_max: usize,
    mut on_body: impl FnMut(&[u8]) -> bool,
) -> Result<usize, String> {
    if bytes.len() < magic.len() {
        return if magic.starts_with(bytes) {
            Ok(0)
        } else {
            Err("bad magic: not a file of this kind".into())
        };
    }
    if &bytes[..magic.len()] != magic {
        return Err("bad magic: not a file of this kind".into());
    }
    let mut pos = magic.len();
    while let Some(header) = bytes.get(pos..pos + FRAME_HEADER_BYTES) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > body_bytes_max {
            break;
        }
        let start = pos + FRAME_HEADER_BYTES;
        let Some(body) = bytes.get(start..start + len) else {
            break;
        };
        if crate::protocol::batch::crc32c(body) != crc || !on_body(body) {
            break;
        }
        pos = start + len;
    }
    Ok(pos)
}

/// An open record file, appended to under a flush policy.
pub(crate) struct RecordLog {
    path: PathBuf,
    file: File,
    flush: FlushPolicy,
    last_sync: Instant,
    /// What the file is, for log lines ("offsets log").
    what: &'static str,
}

impl RecordLog {
    /// Reads `path` if it exists, handing every whole record body to `on_body`; returns
    /// the length of the whole records (None: no file yet).
    pub(crate) fn read(
        path: &Path,
        magic: &[u8; 8],
        body_bytes_max: usize,
        what: &'static str,
        on_body: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<Option<u64>> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => f.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let used = decode_frames(&bytes, magic, body_bytes_max, on_body).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        })?;
        if used < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                ignored_bytes = bytes.len() - used,
                "ignoring a torn or corrupt tail of the {what}"
            );
        }
        Ok(Some(used as u64))
    }

    /// Rewrites `path` as `magic` + `image` (the latest state, in frames) and opens it
    /// for appending. When the rewrite fails and a file existed (`valid_len`), that file
    /// is kept, cut to its whole records.
    pub(crate) fn rewrite_and_open(
        path: &Path,
        magic: &[u8; 8],
        image: &[u8],
        valid_len: Option<u64>,
        flush: FlushPolicy,
        what: &'static str,
    ) -> io::Result<RecordLog> {
        let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
        if let Err(e) = rewrite(path, &tmp, magic, image) {
            let _ = std::fs::remove_file(&tmp);
            match valid_len {
                Some(len) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot compact the {what}; appending to it as is");
                    OpenOptions::new().write(true).open(path)?.set_len(len)?;
                }
                None => return Err(e),
            }
        }
        Ok(RecordLog {
            path: path.to_path_buf(),
            file: OpenOptions::new().append(true).open(path)?,
            flush,
            last_sync: Instant::now(),
            what,
        })
    }

    /// Appends `frames` in one write, fsynced when the policy says so. A write cut
    /// short (ENOSPC mid-record) would leave a torn record that recovery stops at,
    /// hiding every later one: the file is cut back to where this write began before
    /// the error is reported.
    pub(crate) fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        let start_len = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(frames) {
            if let Err(cut) = self.file.set_len(start_len) {
                tracing::error!(file = %self.path.display(), error = %cut, "cannot cut a failed write from the {}", self.what);
            }
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            ));
        }
        let due = match self.flush {
            FlushPolicy::Never => false,
            FlushPolicy::Always => true,
            FlushPolicy::IntervalMs(ms) => self.last_sync.elapsed().as_millis() >= u128::from(ms),
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

fn rewrite(path: &Path, tmp: &Path, magic: &[u8; 8], image: &[u8]) -> io::Result<()> {
    {
        let mut f = File::create(tmp)?;
        f.write_all(magic)?;
        f.write_all(image)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
