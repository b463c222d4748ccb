//! `Range` requests served from cached objects (RFC 9110 §14).

/// What to send for a `Range` header against a representation of `len`
/// bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReply {
    /// No usable single range (absent, multi-range, or not `bytes`): 200.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

pub fn evaluate(header: &str, len: u64) -> RangeReply {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeReply::Full;
    };
    if spec.contains(',') {
        return RangeReply::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeReply::Full;
    };
    let parse = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), parse(first), parse(last)) {
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeReply::Unsatisfiable
            } else {
                RangeReply::Partial {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), None) if last.trim().is_empty() => {
            if start >= len {
                RangeReply::Unsatisfiable
            } else {
                RangeReply::Partial {
                    start,
                    end: len - 1,
                }
            }
        }
        (false, Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeReply::Unsatisfiable
            } else {
                RangeReply::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => RangeReply::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeReply::*, evaluate};

    #[test]
    fn forms() {
        assert_eq!(evaluate("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(evaluate("bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(evaluate("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(evaluate("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(
            evaluate("bytes=50-1000", 100),
            Partial { start: 50, end: 99 }
        );
        assert_eq!(evaluate("bytes=100-", 100), Unsatisfiable);
        assert_eq!(evaluate("bytes=0-1,5-6", 100), Full);
        assert_eq!(evaluate("items=0-1", 100), Full);
        assert_eq!(evaluate("bytes=9-1", 100), Full);
        assert_eq!(evaluate("bytes=-0", 100), Unsatisfiable);
    }
}
