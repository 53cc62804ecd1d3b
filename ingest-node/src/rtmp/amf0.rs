//! AMF0 values: the encoding of RTMP commands (`connect`, `publish`, ...) and of the
//! `@setDataFrame`/`onMetaData` data message.
//!
//! Supported markers: Number, Boolean, String, Object, Null, Undefined, ECMA Array, Strict
//! Array, Date and Long String. Anything else (references, AMF3 switch, typed objects) is an
//! error: publishers never send them in the messages we read.
//!
//! Invariants:
//! - Decoding never panics and never allocates more than the input can justify: declared
//!   counts (strict/ECMA arrays) are not trusted for pre-allocation, nesting is limited to
//!   [`MAX_DEPTH`] and one decode call produces at most [`MAX_VALUES`] values, so a hostile
//!   8 MiB message cannot turn into gigabytes of `Amf0Value`s.
//! - Strings are UTF-8 or the input is rejected (stream keys must compare byte-exactly).
//! - `String` covers both AMF0 string kinds: encoding picks the Long String marker only when
//!   the text does not fit a 16-bit length, so `decode(encode(v)) == v` for every value.

use bytes::{BufMut, BytesMut};

/// Deepest nesting of objects/arrays accepted. Commands nest two levels, metadata three.
pub const MAX_DEPTH: usize = 16;
/// Most values (including nested ones) one decode call may produce.
pub const MAX_VALUES: usize = 10_000;

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0A;
const MARKER_DATE: u8 = 0x0B;
const MARKER_LONG_STRING: u8 = 0x0C;

/// One AMF0 value. Objects and ECMA arrays keep property order (responses are compared by
/// humans in packet captures, and order is what the wire had).
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A String or Long String on the wire.
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the epoch and a (deprecated, usually 0) time-zone offset.
    Date {
        millis: f64,
        tz: i16,
    },
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an Object or ECMA Array (first match), `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Shorthand for building objects in responses.
    pub fn object<const N: usize>(props: [(&str, Amf0Value); N]) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0 input ends inside a value")]
    Truncated,
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    #[error("AMF0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("AMF0 message holds more than {MAX_VALUES} values")]
    TooManyValues,
    #[error("AMF0 object-end marker outside an object")]
    UnexpectedObjectEnd,
}

/// Decodes every value in `input` (a command or data message body is a sequence of values).
pub fn decode_all(input: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut d = Decoder {
        input,
        pos: 0,
        values: 0,
    };
    let mut out = Vec::new();
    while d.pos < d.input.len() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

/// Decodes one value from the front of `input`, returning it and the bytes it used.
pub fn decode_one(input: &[u8]) -> Result<(Amf0Value, usize), AmfError> {
    let mut d = Decoder {
        input,
        pos: 0,
        values: 0,
    };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AmfError> {
        let end = self.pos.checked_add(n).ok_or(AmfError::Truncated)?;
        let s = self.input.get(self.pos..end).ok_or(AmfError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| AmfError::InvalidUtf8)
    }

    fn short_string(&mut self) -> Result<String, AmfError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(AmfError::TooManyValues);
        }
        let marker = self.u8()?;
        Ok(match marker {
            MARKER_NUMBER => Amf0Value::Number(self.f64()?),
            MARKER_BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            MARKER_STRING => Amf0Value::String(self.short_string()?),
            MARKER_LONG_STRING => {
                let len = self.u32()? as usize;
                Amf0Value::String(self.utf8(len)?)
            }
            MARKER_OBJECT => Amf0Value::Object(self.properties(depth, false)?),
            MARKER_NULL => Amf0Value::Null,
            MARKER_UNDEFINED => Amf0Value::Undefined,
            MARKER_ECMA_ARRAY => {
                // The count is only a hint (encoders get it wrong); the end marker decides.
                let _hint = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth, true)?)
            }
            MARKER_STRICT_ARRAY => {
                let count = self.u32()? as usize;
                // Every element needs at least its marker byte: a count beyond the remaining
                // input is a lie, refuse it before looping (and never pre-allocate `count`).
                if count > self.input.len() - self.pos {
                    return Err(AmfError::Truncated);
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            MARKER_DATE => {
                let millis = self.f64()?;
                let tz = self.u16()? as i16;
                Amf0Value::Date { millis, tz }
            }
            MARKER_OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            other => return Err(AmfError::UnsupportedMarker(other)),
        })
    }

    /// Reads `name value` pairs up to the `00 00 09` terminator. An ECMA array may also end
    /// exactly at the end of the input without a terminator: some encoders omit it on the
    /// last value of onMetaData, and nothing can follow it anyway.
    fn properties(
        &mut self,
        depth: usize,
        lenient_end: bool,
    ) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        let mut props = Vec::new();
        loop {
            if lenient_end && self.pos == self.input.len() {
                return Ok(props);
            }
            let name = self.short_string()?;
            if name.is_empty() && self.input.get(self.pos) == Some(&MARKER_OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let v = self.value(depth + 1)?;
            props.push((name, v));
        }
    }
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(MARKER_NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(MARKER_BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(MARKER_STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(MARKER_LONG_STRING);
                // Strings past 4 GiB cannot exist in an RTMP message (8 MiB cap); saturate
                // rather than panic if a caller builds one anyway.
                out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
                out.put_slice(s.as_bytes());
            }
        },
        Amf0Value::Object(props) => {
            out.put_u8(MARKER_OBJECT);
            encode_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(MARKER_NULL),
        Amf0Value::Undefined => out.put_u8(MARKER_UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(MARKER_ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            encode_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(MARKER_STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, tz } => {
            out.put_u8(MARKER_DATE);
            out.put_f64(*millis);
            out.put_i16(*tz);
        }
    }
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (name, v) in props {
        // Property names are short strings; a longer one is truncated at a char boundary
        // (we only ever encode our own fixed names).
        let mut end = name.len().min(u16::MAX as usize);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        out.put_u16(end as u16);
        out.put_slice(&name.as_bytes()[..end]);
        encode(v, out);
    }
    out.put_u16(0);
    out.put_u8(MARKER_OBJECT_END);
}

/// Encodes a sequence of values (a command message body).
pub fn encode_all(values: &[Amf0Value]) -> BytesMut {
    let mut out = BytesMut::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Amf0Value) -> Amf0Value {
        let bytes = encode_all(std::slice::from_ref(v));
        let (back, used) = decode_one(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        back
    }

    fn sample() -> Amf0Value {
        Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("number", Amf0Value::Number(-12.5)),
            ("yes", Amf0Value::Boolean(true)),
            ("no", Amf0Value::Boolean(false)),
            ("nothing", Amf0Value::Null),
            ("undef", Amf0Value::Undefined),
            (
                "ecma",
                Amf0Value::EcmaArray(vec![
                    ("width".into(), Amf0Value::Number(1280.0)),
                    ("encoder".into(), Amf0Value::string("Lavf59.27.100")),
                ]),
            ),
            (
                "strict",
                Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::string("two")]),
            ),
            (
                "when",
                Amf0Value::Date {
                    millis: 1.7e12,
                    tz: -60,
                },
            ),
            ("unicode", Amf0Value::string("héllo ✓")),
            ("", Amf0Value::string("empty key")),
        ])
    }

    #[test]
    fn round_trips_every_supported_type() {
        let values = vec![
            Amf0Value::Number(0.0),
            Amf0Value::Number(f64::MAX),
            Amf0Value::Number(-1.0e-300),
            Amf0Value::Boolean(true),
            Amf0Value::string(""),
            Amf0Value::string("connect"),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::Object(vec![]),
            Amf0Value::EcmaArray(vec![]),
            Amf0Value::StrictArray(vec![]),
            sample(),
        ];
        for v in &values {
            assert_eq!(&round_trip(v), v);
        }
        let all = encode_all(&values);
        assert_eq!(decode_all(&all).unwrap(), values);
    }

    #[test]
    fn long_strings_use_the_long_string_marker_and_round_trip() {
        let long = "x".repeat(70_000);
        let bytes = encode_all(&[Amf0Value::string(long.clone())]);
        assert_eq!(bytes[0], MARKER_LONG_STRING);
        assert_eq!(
            round_trip(&Amf0Value::string(long.clone())),
            Amf0Value::String(long)
        );
        // A short string sent as Long String by some encoder decodes to the same value.
        let mut b = BytesMut::new();
        b.put_u8(MARKER_LONG_STRING);
        b.put_u32(3);
        b.put_slice(b"abc");
        assert_eq!(decode_all(&b).unwrap(), vec![Amf0Value::string("abc")]);
    }

    #[test]
    fn every_truncation_of_a_valid_encoding_is_an_error_not_a_panic() {
        let bytes = encode_all(&[sample()]);
        for cut in 0..bytes.len() {
            assert!(
                decode_one(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_rejected() {
        let mut v = Amf0Value::Null;
        for _ in 0..MAX_DEPTH {
            v = Amf0Value::StrictArray(vec![v]);
        }
        assert_eq!(round_trip(&v), v, "exactly MAX_DEPTH levels are fine");
        let too_deep = Amf0Value::StrictArray(vec![v]);
        let bytes = encode_all(&[too_deep]);
        assert_eq!(decode_all(&bytes), Err(AmfError::TooDeep));
        // Deep object nesting hits the same limit without recursion blowing the stack.
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[MARKER_OBJECT, 0, 1, b'a']);
        }
        assert_eq!(decode_all(&deep), Err(AmfError::TooDeep));
    }

    #[test]
    fn unknown_markers_are_rejected() {
        for m in [0x04u8, 0x07, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0xFF] {
            assert_eq!(
                decode_all(&[m, 0, 0, 0, 0]),
                Err(AmfError::UnsupportedMarker(m))
            );
        }
        assert_eq!(
            decode_all(&[MARKER_OBJECT_END]),
            Err(AmfError::UnexpectedObjectEnd)
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert_eq!(
            decode_all(&[MARKER_STRING, 0, 2, 0xC3, 0x28]),
            Err(AmfError::InvalidUtf8)
        );
    }

    #[test]
    fn strict_array_count_beyond_the_input_is_rejected_without_allocating() {
        let bytes = [MARKER_STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, MARKER_NULL];
        assert_eq!(decode_all(&bytes), Err(AmfError::Truncated));
    }

    #[test]
    fn too_many_values_are_rejected() {
        let mut b = vec![MARKER_STRICT_ARRAY];
        b.extend_from_slice(&(MAX_VALUES as u32 + 1).to_be_bytes());
        b.extend(std::iter::repeat_n(MARKER_NULL, MAX_VALUES + 1));
        assert_eq!(decode_all(&b), Err(AmfError::TooManyValues));
    }

    #[test]
    fn ecma_array_count_is_only_a_hint_and_the_terminator_may_be_missing_at_the_end() {
        // Count says 5, one property follows, then the terminator.
        let mut b = vec![MARKER_ECMA_ARRAY, 0, 0, 0, 5, 0, 1, b'w', MARKER_NUMBER];
        b.extend_from_slice(&640.0f64.to_be_bytes());
        let mut terminated = b.clone();
        terminated.extend_from_slice(&[0, 0, MARKER_OBJECT_END]);
        let expect = Amf0Value::EcmaArray(vec![("w".into(), Amf0Value::Number(640.0))]);
        assert_eq!(decode_all(&terminated).unwrap(), vec![expect.clone()]);
        assert_eq!(decode_all(&b).unwrap(), vec![expect]);
        // An Object must be terminated.
        b[0] = MARKER_OBJECT;
        b.drain(1..5);
        assert_eq!(decode_all(&b), Err(AmfError::Truncated));
    }

    #[test]
    fn decodes_the_connect_command_ffmpeg_sends() {
        let cmd = encode_all(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
                ),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
            ]),
        ]);
        let v = decode_all(&cmd).unwrap();
        assert_eq!(v[0].as_str(), Some("connect"));
        assert_eq!(v[1].as_f64(), Some(1.0));
        assert_eq!(v[2].get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(v[2].get("missing"), None);
    }
}
