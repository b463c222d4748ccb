//! One reading of the `Range` header (RFC 9110 §14) for every server that
//! answers ranges from a body of known length: the origin from its blobs,
//! the edge from cached objects. Before this module each had its own
//! parser and they disagreed (`Bytes=` was accepted by one only).
//!
//! Hand-written rather than `http-range-header`: that crate reports a
//! malformed header and an unsatisfiable one as the same error, while
//! RFC 9110 wants the first ignored (200) and the second answered 416.

/// Which part of a `len`-byte representation to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// 200 with the whole body: no usable single range (malformed, another
    /// unit, or several ranges, which RFC 9110 §14.2 allows to ignore).
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl ByteRange {
    /// Interprets the `Range` header value `value` against `len` bytes.
    /// The unit is case-insensitive (`Bytes=0-1`, RFC 9110 §14.1) and
    /// whitespace around the numbers is tolerated.
    pub fn of(value: &str, len: u64) -> Self {
        let Some((unit, spec)) = value.split_once('=') else {
            return Self::Full;
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return Self::Full;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Self::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => clamp(start, end, len),
            (Some(start), None) if last.is_empty() => clamp(start, u64::MAX, len),
            (None, Some(suffix)) if first.is_empty() => {
                if suffix == 0 || len == 0 {
                    Self::Unsatisfiable
                } else {
                    Self::Partial {
                        start: len - suffix.min(len),
                        end: len - 1,
                    }
                }
            }
            _ => Self::Full,
        }
    }

    /// `Content-Range` of a partial response of a `len`-byte body.
    pub fn content_range(start: u64, end: u64, len: u64) -> String {
        format!("bytes {start}-{end}/{len}")
    }

    /// `Content-Range` of a 416 for a `len`-byte body.
    pub fn unsatisfied_range(len: u64) -> String {
        format!("bytes */{len}")
    }
}

fn clamp(start: u64, end: u64, len: u64) -> ByteRange {
    if start >= len {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Partial {
            start,
            end: end.min(len - 1),
        }
    }
}

/// A decimal number of digits only (`u64::from_str` would accept `+5`).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    #[test]
    fn forms() {
        let of = ByteRange::of;
        assert_eq!(of("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(of("Bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(of("bytes= 2 - 3", 100), Partial { start: 2, end: 3 });
        assert_eq!(of("bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(of("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(of("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(of("bytes=50-1000", 100), Partial { start: 50, end: 99 });
        assert_eq!(of("bytes=100-", 100), Unsatisfiable);
        assert_eq!(of("bytes=-0", 100), Unsatisfiable);
        assert_eq!(of("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(of("bytes=0-1,5-6", 100), Full);
        assert_eq!(of("items=0-1", 100), Full);
        assert_eq!(of("bytes=9-1", 100), Full);
        assert_eq!(of("bytes=+1-2", 100), Full);
        assert_eq!(of("bytes", 100), Full);
    }
}
