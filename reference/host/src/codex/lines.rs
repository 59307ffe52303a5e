//! Reading a child's output line by line with a bound on the line length: a longer line
//! is skipped (its length reported), and reading goes on with the next.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One line read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// The line's bytes, without the `\n` (nor a `\r` before it).
    Text(Vec<u8>),
    /// A line longer than the limit: its length in bytes, and its first bytes.
    TooLong { len: usize, head: Vec<u8> },
}

/// How many bytes of a too-long line are kept for [`Line::TooLong::head`].
const HEAD: usize = 200;

/// Lines of `R`, each at most `max` bytes.
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Reads `inner`, lines up to `max` bytes.
    pub(super) fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(64 << 10, inner),
            max,
        }
    }

    /// The next line; `None` at the end (a last line without `\n` is still returned).
    pub(super) async fn next(&mut self) -> std::io::Result<Option<Line>> {
        let mut buf = Vec::new();
        // `Some(len)` once the line is known to be too long: its length so far.
        let mut skipped: Option<usize> = None;
        loop {
            let (used, end) = {
                let avail = self.inner.fill_buf().await?;
                if avail.is_empty() {
                    return Ok(match skipped {
                        Some(len) => Some(Line::TooLong { len, head: buf }),
                        None if buf.is_empty() => None,
                        None => Some(Line::Text(trim_cr(buf))),
                    });
                }
                let (chunk, end) = match avail.iter().position(|&b| b == b'\n') {
                    Some(at) => (avail.split_at(at).0, true),
                    None => (avail, false),
                };
                match skipped.as_mut() {
                    Some(len) => *len += chunk.len(),
                    None if buf.len() + chunk.len() > self.max => {
                        let len = buf.len() + chunk.len();
                        buf.extend(chunk.iter().take(HEAD.saturating_sub(buf.len())));
                        buf.truncate(HEAD);
                        buf.shrink_to_fit();
                        skipped = Some(len);
                    }
                    None => buf.extend_from_slice(chunk),
                }
                (chunk.len() + usize::from(end), end)
            };
            self.inner.consume(used);
            if end {
                return Ok(Some(match skipped {
                    Some(len) => Line::TooLong { len, head: buf },
                    None => Line::Text(trim_cr(buf)),
                }));
            }
        }
    }
}

fn trim_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(l) = r.next().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn long_lines_are_skipped_and_reading_goes_on() {
        let mut input = b"ok\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300));
        input.extend(b"\n\nlast");
        let lines = all(&input, 10).await;
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines.first(), Some(&Line::Text(b"ok".to_vec())));
        assert_eq!(
            lines.get(1),
            Some(&Line::TooLong {
                len: 300,
                head: vec![b'x'; HEAD]
            })
        );
        assert_eq!(lines.get(2), Some(&Line::Text(Vec::new())));
        assert_eq!(lines.get(3), Some(&Line::Text(b"last".to_vec())));
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes() {
        let lines = all(b"0123456789\n01234567890\n", 10).await;
        assert_eq!(lines.first(), Some(&Line::Text(b"0123456789".to_vec())));
        assert!(matches!(lines.get(1), Some(Line::TooLong { len: 11, .. })));
    }
}
