//! ISO BMFF (MP4) top-level box headers, parsed from a growing byte buffer.
//!
//! The packager never trusts the muxer's flushes to mark fragment boundaries: it splits the
//! muxer's output into top-level boxes itself and cuts on `moof` headers. Only headers are
//! read (size + type, 64-bit `largesize` when size is 1); payloads are opaque.
//!
//! Invariants: a box is reported only once all its bytes are present; a box with size 0
//! ("extends to end of file") or a size smaller than its own header is an error, because a
//! fragmented-MP4 muxer never writes one and accepting it would swallow the rest of the
//! stream.

use std::ops::Range;

/// A four-character box type (`moof`, `mdat`, ...).
pub type FourCc = [u8; 4];

/// One complete top-level box inside a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: FourCc,
    /// Byte range of the whole box (header included) in the buffer that was parsed.
    pub range: Range<usize>,
}

/// Why a buffer is not a sequence of well-formed boxes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    #[error("box at offset {offset} has invalid size {size}")]
    InvalidSize { offset: usize, size: u64 },
}

/// Splits `buf` into the complete top-level boxes at its start.
///
/// Returns the boxes and the number of bytes they cover; bytes after that belong to a box
/// whose end has not arrived yet.
pub fn complete_boxes(buf: &[u8]) -> Result<(Vec<BoxHeader>, usize), BoxError> {
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &buf[pos..];
        if rest.len() < 8 {
            break;
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind: FourCc = [rest[4], rest[5], rest[6], rest[7]];
        let (size, header_len) = match size32 {
            0 => {
                return Err(BoxError::InvalidSize {
                    offset: pos,
                    size: 0,
                });
            }
            1 => {
                if rest.len() < 16 {
                    break;
                }
                let mut large = [0u8; 8];
                large.copy_from_slice(&rest[8..16]);
                (u64::from_be_bytes(large), 16u64)
            }
            n => (u64::from(n), 8u64),
        };
        if size < header_len {
            return Err(BoxError::InvalidSize { offset: pos, size });
        }
        let Ok(size) = usize::try_from(size) else {
            return Err(BoxError::InvalidSize { offset: pos, size });
        };
        if rest.len() < size {
            break;
        }
        boxes.push(BoxHeader {
            kind,
            range: pos..pos + size,
        });
        pos += size;
    }
    Ok((boxes, pos))
}

/// Finds the first box of type `kind` among the direct children of a container box's
/// payload (`payload` starts right after the container's header).
pub fn find_child<'a>(payload: &'a [u8], kind: &FourCc) -> Option<&'a [u8]> {
    let (boxes, _) = complete_boxes(payload).ok()?;
    boxes
        .into_iter()
        .find(|b| &b.kind == kind)
        .map(|b| &payload[b.range])
}

/// Header length (8, or 16 with a 64-bit size) of the box that starts `bytes`.
pub fn header_len(bytes: &[u8]) -> usize {
    if bytes.len() >= 4 && bytes[..4] == [0, 0, 0, 1] {
        16
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u32::try_from(payload.len() + 8).unwrap().to_be_bytes());
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn splits_complete_boxes_and_stops_at_partial_one() {
        let mut buf = mk(b"ftyp", b"isom");
        buf.extend(mk(b"moov", &[0; 20]));
        let moof = mk(b"moof", &[1; 10]);
        buf.extend_from_slice(&moof[..12]);
        let (boxes, used) = complete_boxes(&buf).unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(&boxes[0].kind, b"ftyp");
        assert_eq!(boxes[0].range, 0..12);
        assert_eq!(&boxes[1].kind, b"moov");
        assert_eq!(boxes[1].range, 12..40);
        assert_eq!(used, 40);
        buf.extend_from_slice(&moof[12..]);
        let (boxes, used) = complete_boxes(&buf).unwrap();
        assert_eq!(boxes.len(), 3);
        assert_eq!(used, buf.len());
    }

    #[test]
    fn reads_64_bit_sizes() {
        let mut buf = vec![0, 0, 0, 1];
        buf.extend_from_slice(b"mdat");
        buf.extend_from_slice(&20u64.to_be_bytes());
        buf.extend_from_slice(&[7; 4]);
        let (boxes, used) = complete_boxes(&buf).unwrap();
        assert_eq!(boxes[0].range, 0..20);
        assert_eq!(used, 20);
        assert_eq!(header_len(&buf), 16);
        // Only part of the large size arrived yet.
        assert_eq!(complete_boxes(&buf[..12]).unwrap(), (vec![], 0));
    }

    #[test]
    fn rejects_size_zero_and_undersized_boxes() {
        let mut buf = vec![0, 0, 0, 0];
        buf.extend_from_slice(b"mdat");
        assert!(complete_boxes(&buf).is_err());
        let mut buf = vec![0, 0, 0, 4];
        buf.extend_from_slice(b"free");
        assert!(complete_boxes(&buf).is_err());
    }

    #[test]
    fn finds_children() {
        let inner = [mk(b"mfhd", &[0; 8]), mk(b"traf", &[0; 4])].concat();
        let moof = mk(b"moof", &inner);
        let traf = find_child(&moof[8..], b"traf").unwrap();
        assert_eq!(traf.len(), 12);
        assert!(find_child(&moof[8..], b"tfdt").is_none());
    }
}
