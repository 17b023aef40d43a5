//! JSON text without the whitespace between its tokens, with a nesting-depth check in the same
//! pass (issue 12). A hook request is read several times: the depth check, the typed parse,
//! each draft order's members. Pretty-printed requests (the CDS Hooks sandbox and most test
//! tools send them) are mostly indentation, and each of those passes skipped it byte by byte:
//! removed once up front, the later passes only see tokens.

use std::borrow::Cow;

/// `text` with the whitespace between tokens removed, or `None` when it nests arrays and
/// objects deeper than `max_depth`. String contents (escapes included) are kept as they are.
///
/// Not a validator, and it never turns invalid JSON into valid JSON: where whitespace separates
/// two literal characters (`1 2`, `true false`), one space is kept, so a parser still refuses
/// the text. A text without such whitespace (a compact request) is returned as it is, without
/// a copy.
pub fn minify(text: &str, max_depth: usize) -> Option<Cow<'_, str>> {
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    // Bytes from `kept` up to `i` are still to be copied to `out` (copied a run at a time).
    let (mut depth, mut i, mut kept) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i + 1),
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return None;
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                o.extend_from_slice(&bytes[kept..i]);
                let mut j = i + 1;
                // Indentation of pretty-printed JSON: eight spaces at a time.
                while bytes.get(j..j + 8) == Some(b"        ") {
                    j += 8;
                }
                while j < bytes.len() && matches!(bytes[j], b' ' | b'\n' | b'\r' | b'\t') {
                    j += 1;
                }
                if j < bytes.len() && is_literal(bytes[j]) && i > 0 && is_literal(bytes[i - 1]) {
                    o.push(b' ');
                }
                i = j;
                kept = j;
            }
            _ => i += 1,
        }
    }
    Some(match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.extend_from_slice(&bytes[kept..]);
            // Only ASCII whitespace bytes were left out, so the rest is still UTF-8.
            String::from_utf8(o).map_or(Cow::Borrowed(text), Cow::Owned)
        }
    })
}

/// The index after the string whose contents start at `start` (after its opening quote); the
/// end of `bytes` for an unterminated string. Only `"` and `\` matter inside a string, and the
/// contents (most of a FHIR body) are skipped with `memchr` (a byte loop over the first bytes
/// of each string measured slower, even for member names).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
            None => return bytes.len(),
            // A backslash escapes the next byte.
            Some(j) if bytes[i + j] == b'\\' => i += j + 2,
            Some(j) => return i + j + 1,
        }
    }
    bytes.len()
}

/// Characters of numbers and of `true`, `false`, `null`: two of them must not be joined.
fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_between_tokens_goes() {
        assert_eq!(
            minify("{\n  \"a\" : [ 1, 2 ],\t\"b c\": \"x \\\" y\\\\\" }", 10).unwrap(),
            r#"{"a":[1,2],"b c":"x \" y\\"}"#
        );
        assert!(matches!(
            minify(r#"{"a":"b c","d":[true,null]}"#, 10).unwrap(),
            Cow::Borrowed(_)
        ));
        // Runs of spaces of every length around the eight-at-a-time skip.
        for n in 1..20 {
            let pad = " ".repeat(n);
            let text = format!("{pad}{{{pad}\"a\"{pad}:{pad}[{pad}1{pad}]{pad}}}{pad}");
            assert_eq!(minify(&text, 10).unwrap(), r#"{"a":[1]}"#, "{n}");
        }
    }

    #[test]
    fn invalid_json_stays_invalid() {
        for (text, expected) in [
            ("[1 2]", "[1 2]"),
            ("[true  false]", "[true false]"),
            ("{\"a\": 1\n-2}", "{\"a\":1 -2}"),
            ("[1 .5]", "[1 .5]"),
            ("[\"a\" \"b\"]", "[\"a\"\"b\"]"),
        ] {
            let min = minify(text, 10).unwrap();
            assert_eq!(min, expected);
            assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
            assert!(
                serde_json::from_str::<serde_json::Value>(&min).is_err(),
                "{min}"
            );
        }
    }

    #[test]
    fn depth() {
        assert!(minify(r#"{"a":[[1]]}"#, 3).is_some());
        assert!(minify(r#"{"a":[[[1]]]}"#, 3).is_none());
        // Brackets inside strings (and escaped quotes) do not count.
        assert!(minify(r#"{"a":"[[[[\"[[[[","b":[1]}"#, 2).is_some());
        assert!(minify(&"[".repeat(200), 100).is_none());
        // A backslash at the very end, an unterminated string, an escaped backslash before
        // the closing quote.
        assert!(minify(r#"{"a":"\"#, 1).is_some());
        assert!(minify(r#"{"a":"[[[["#, 1).is_some());
        assert!(minify(r#"{"a":"\\",[[1]]}"#, 2).is_none());
        assert!(minify(r#"{"a":"\\",[1]}"#, 2).is_some());
        // Closing brackets bring the depth back down (and never below zero).
        assert!(minify(r#"]]]{"a":[1],"b":[[2]],"c":{"d":[3]}}"#, 3).is_some());
        assert!(minify(r#"]]]{"a":[1],"b":[[2]],"c":{"d":[[3]]}}"#, 3).is_none());
    }

    /// A byte-by-byte reference: depth outside strings, whitespace outside strings dropped
    /// except one space between two literal characters.
    fn reference(text: &str, max: usize) -> Option<String> {
        let bytes = text.as_bytes();
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                out.push(b);
                i += 1;
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return None;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b' ' | b'\n' | b'\r' | b'\t' => {
                    let mut j = i;
                    while j < bytes.len() && matches!(bytes[j], b' ' | b'\n' | b'\r' | b'\t') {
                        j += 1;
                    }
                    if i > 0 && j < bytes.len() && is_literal(bytes[i - 1]) && is_literal(bytes[j])
                    {
                        out.push(b' ');
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            out.push(b);
            i += 1;
        }
        Some(String::from_utf8(out).unwrap())
    }

    proptest::proptest! {
        #[test]
        fn matches_the_bytewise_reference(
            text in proptest::collection::vec(
                proptest::sample::select(b"[]{}\"\\a1   \n\t,:-".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            let text = String::from_utf8(text).unwrap();
            proptest::prop_assert_eq!(
                minify(&text, max).map(Cow::into_owned),
                reference(&text, max)
            );
        }

        /// Valid JSON keeps its meaning.
        #[test]
        fn valid_json_keeps_its_value(value in arb_json()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let min = minify(&pretty, usize::MAX).unwrap();
            let back: serde_json::Value = serde_json::from_str(&min).unwrap();
            proptest::prop_assert_eq!(back, value.clone());
            proptest::prop_assert_eq!(min.as_ref(), serde_json::to_string(&value).unwrap());
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            "[ a-z\"\\\\\n\t\u{e9}\\[\\]{}]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z \"]{0,4}", inner, 0..4)
                    .prop_map(|m| { serde_json::Value::Object(m.into_iter().collect()) }),
            ]
        })
    }
}
