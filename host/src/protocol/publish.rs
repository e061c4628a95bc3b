//! The fan-out fast path (DESIGN §9): a publish is encoded once, and each
//! subscriber's frame is that encoding plus its own `requestId`.
//!
//! Every delivered frame is
//! `{"type":"publish","data":<data>,"requestId":"<id>"}`. The part up to
//! `"requestId":` is the same for every subscriber, so [`PublishFrame`]
//! stores it once behind an `Arc`; rendering for one subscriber is one
//! allocation, two copies and the escaping of a short id.
//!
//! A publication in a room with history is also encoded with its offset
//! (`"offset":N` before `"requestId"`), for `modhost.v1` subscribers only:
//! high-templar's frames never change.

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

/// The largest publish a client may have to receive (a `/trigger/` body is
/// bounded by this too).
pub const MAX_PUBLISH_BYTES: usize = 1024 * 1024;

/// One publish, ready to render for each subscription. Cloning shares the
/// encoded prefix.
#[derive(Clone, Debug)]
pub struct PublishFrame {
    /// `{"type":"publish","data":<data>,"requestId":`, or with
    /// `"offset":N,` before `"requestId":`.
    prefix: Arc<str>,
    /// Where `<data>` ends in `prefix`.
    data_end: usize,
}

const HEAD: &str = r#"{"type":"publish","data":"#;
const TAIL: &str = r#","requestId":"#;

impl PublishFrame {
    /// From already validated JSON: `data` is copied in as is.
    pub fn new(data: &RawValue) -> PublishFrame {
        Self::encode(data.get(), None)
    }

    /// The frame of a publication at `offset` in a room's history.
    pub fn with_offset(data: &RawValue, offset: u64) -> PublishFrame {
        Self::encode(data.get(), Some(offset))
    }

    /// This frame's data at `offset` (the same publication, as a stream
    /// other than the one it was encoded for numbers it).
    pub fn at_offset(&self, offset: u64) -> PublishFrame {
        Self::encode(self.data(), Some(offset))
    }

    /// `data` must be valid JSON text.
    fn encode(data: &str, offset: Option<u64>) -> PublishFrame {
        // `,"offset":` and at most 20 digits.
        let extra = if offset.is_some() { 31 } else { 0 };
        let mut prefix = String::with_capacity(HEAD.len() + data.len() + extra + TAIL.len());
        prefix.push_str(HEAD);
        prefix.push_str(data);
        let data_end = prefix.len();
        if let Some(offset) = offset {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(prefix, r#","offset":{offset}"#);
        }
        prefix.push_str(TAIL);
        PublishFrame {
            prefix: prefix.into(),
            data_end,
        }
    }

    /// Bytes this frame holds (its shared encoding).
    pub fn encoded_len(&self) -> usize {
        self.prefix.len()
    }

    /// From JSON text, which is validated (not re-encoded) first.
    pub fn from_json(data: &str) -> Result<PublishFrame, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(data)?;
        Ok(PublishFrame::new(raw))
    }

    /// From a parsed value, encoded once here.
    pub fn from_value(data: &Value) -> PublishFrame {
        // Serializing a `Value` cannot fail.
        let raw = serde_json::value::to_raw_value(data).expect("a Value always serializes");
        PublishFrame::new(&raw)
    }

    /// The data's JSON text.
    pub fn data(&self) -> &str {
        &self.prefix[HEAD.len()..self.data_end]
    }

    /// Append the frame for `request_id` to `buf`.
    pub fn render_into(&self, request_id: &str, buf: &mut Vec<u8>) {
        buf.reserve(self.prefix.len() + request_id.len() + 3);
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.push(b'"');
        escape_str(request_id, |piece| buf.extend_from_slice(piece.as_bytes()));
        buf.extend_from_slice(b"\"}");
    }

    /// The frame for `request_id`.
    pub fn render(&self, request_id: &str) -> String {
        let mut out = String::with_capacity(self.prefix.len() + request_id.len() + 3);
        out.push_str(&self.prefix);
        out.push('"');
        escape_str(request_id, |piece| out.push_str(piece));
        out.push_str("\"}");
        out
    }
}

/// JSON string escaping exactly as serde_json does it: `"` and `\`
/// backslashed, control characters as `\b \t \n \f \r` or `\u00xx`, all
/// else (DEL, non-ASCII) verbatim. Emits unescaped runs as slices of `s`,
/// so an id with nothing to escape is a single copy.
fn escape_str(s: &str, mut emit: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so `i` is a char boundary.
        if start < i {
            emit(&s[start..i]);
        }
        if short.is_empty() {
            let code = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ];
            // Plain ASCII, always valid UTF-8.
            emit(std::str::from_utf8(&code).unwrap_or_default());
        } else {
            emit(short);
        }
        start = i + 1;
    }
    if start < bytes.len() {
        emit(&s[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::json;

    /// The frame as serde_json would encode it, fields in wire order.
    #[derive(Serialize)]
    struct Expected<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: &'a Value,
        #[serde(rename = "requestId")]
        request_id: &'a str,
    }

    fn expected(data: &Value, request_id: &str) -> String {
        serde_json::to_string(&Expected {
            kind: "publish",
            data,
            request_id,
        })
        .unwrap()
    }

    #[test]
    fn render_equals_serde_json() {
        let data = json!({"message": "hi \"there\"", "n": [1, 2.5, null], "u": "é😀"});
        let frame = PublishFrame::from_value(&data);
        for id in [
            "1",
            "",
            "abc",
            "a\"b",
            "back\\slash",
            "nl\nt\tcr\r",
            "\u{0}\u{1f}\u{7f}",
            "é😀",
            "\u{8}\u{c}",
        ] {
            let want = expected(&data, id);
            assert_eq!(frame.render(id), want, "{id:?}");
            let mut buf = b"xx".to_vec();
            frame.render_into(id, &mut buf);
            assert_eq!(&buf[..2], b"xx");
            assert_eq!(std::str::from_utf8(&buf[2..]).unwrap(), want);
        }
        assert_eq!(
            frame.render("7"),
            r#"{"type":"publish","data":{"message":"hi \"there\"","n":[1,2.5,null],"u":"é😀"},"requestId":"7"}"#
        );
    }

    #[test]
    fn constructors_agree_and_keep_data() {
        let text = r#"{"a":[1,"x"],"b":null}"#;
        let from_json = PublishFrame::from_json(text).unwrap();
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let from_raw = PublishFrame::new(&raw);
        let from_value = PublishFrame::from_value(&serde_json::from_str(text).unwrap());
        assert_eq!(from_json.data(), text);
        assert_eq!(from_json.render("1"), from_raw.render("1"));
        assert_eq!(from_json.render("1"), from_value.render("1"));
        assert!(PublishFrame::from_json("{nope").is_err());
        assert!(PublishFrame::from_json("1 2").is_err());
        assert_eq!(
            PublishFrame::from_json("\"s\"").unwrap().render("r"),
            r#"{"type":"publish","data":"s","requestId":"r"}"#
        );
        // Clones share the encoding.
        let clone = from_json.clone();
        assert!(Arc::ptr_eq(&clone.prefix, &from_json.prefix));
    }

    #[test]
    fn offsets_are_rendered_before_the_request_id_and_keep_data() {
        let raw: Box<RawValue> = serde_json::from_str(r#"{"m":"x"}"#).unwrap();
        let frame = PublishFrame::with_offset(&raw, u64::MAX);
        let want = format!(
            r#"{{"type":"publish","data":{{"m":"x"}},"offset":{},"requestId":"7"}}"#,
            u64::MAX
        );
        assert_eq!(frame.render("7"), want);
        assert_eq!(frame.data(), r#"{"m":"x"}"#);
        assert_eq!(
            frame.at_offset(3).render("r"),
            r#"{"type":"publish","data":{"m":"x"},"offset":3,"requestId":"r"}"#
        );
        assert_eq!(frame.encoded_len(), want.len() - r#""7"}"#.len());
    }

    proptest! {
        #[test]
        fn any_request_id_renders_like_serde_json(id in any::<String>(), n in any::<i64>(), s in ".{0,20}") {
            let data = json!({"n": n, "s": s});
            let frame = PublishFrame::from_value(&data);
            let rendered = frame.render(&id);
            prop_assert_eq!(&rendered, &expected(&data, &id));
            let parsed: Value = serde_json::from_str(&rendered).unwrap();
            prop_assert_eq!(&parsed["requestId"], &json!(id));
        }
    }
}
