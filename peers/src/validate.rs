//! The sink's frame validators: a GELF frame must be one JSON object, an LTSV
//! frame one line of tab-separated `label:value` fields.
//!
//! They are hand-written because the sink is on the hot path of the
//! benchmark: it shares the machine's cores with the shipper it measures, so
//! every frame must cost it much less than it costs the shipper, or the sink
//! falls behind, the shipper's buffers fill and the row measures the sink.
//! The libraries cost too much. On the benchmark's own frames (575-byte GELF,
//! 478-byte LTSV), on the 2-core VM the benchmark runs on, best of 31 runs
//! of 10,240 frames, over several runs, in ns per frame:
//!
//! | GELF                      |            | LTSV                      |             |
//! |---------------------------|------------|---------------------------|-------------|
//! | serde_json (`IgnoredAny`) | 375 to 430 | split on tabs, then check | 915 to 1040 |
//! | simd-json 0.15            | 560 to 590 | (the sink's former code)  |             |
//! | sonic-rs 0.5              | 660 to 710 |                           |             |
//! | [`valid_gelf`]            | 280 to 290 | [`valid_ltsv`]            | 150 to 155  |
//!
//! Splitting the stream into frames with `iter().position` cost another
//! 180 to 220 ns per frame; `memchr` costs 40 to 60. With all three, the
//! limit row (pre-encoded GELF, 450-byte frames) went from 1.7-1.9 to
//! 3.1-3.6 million records/s over TCP: the former sink was its bottleneck.
//!
//! Both validators make one pass over the frame, allocate nothing, and check
//! UTF-8 as they go (only inside JSON strings and LTSV values can a byte be
//! non-ASCII). The bytes of strings and values, most of a frame, are scanned
//! eight at a time (SWAR, below) for the few bytes that need a closer look.
//! What is left of the JSON parser's cost is mostly latency: each string's
//! end depends on the previous one's, about 15 cycles apiece.

/// `0x01` in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// `byte` in every byte of a word.
const fn repeat(byte: u8) -> u64 {
    LO * byte as u64
}

/// Marks the zero bytes of `x`, SWAR-style: sets the high bit of each byte of
/// the result whose byte in `x` is zero. Of the bytes of `x`, only a zero one
/// has its high bit clear and set after subtracting 1, except that the borrow
/// out of a zero byte can also mark the byte above it; so only the lowest
/// mark is exact, which is all the scans use: the first byte to stop at.
/// `zero_bytes(x ^ repeat(b))` marks the bytes equal to `b`.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Marks the bytes of `x` that are below `n` (`n <= 0x80`, subtracting `n`
/// sets their high bit) or non-ASCII (their high bit is set); as with
/// [`zero_bytes`], only the lowest mark is exact.
#[inline(always)]
fn below_or_non_ascii(x: u64, n: u8) -> u64 {
    (x.wrapping_sub(repeat(n)) | x) & HI
}

/// The index of the byte a mark stands for, from `base`.
#[inline(always)]
fn first_mark(base: usize, marks: u64) -> usize {
    base + (marks.trailing_zeros() / 8) as usize
}

/// The 8 bytes from `s[i]`, as a word whose lowest byte is `s[i]`; `None`
/// if fewer than 8 are left.
#[inline(always)]
fn word(s: &[u8], i: usize) -> Option<u64> {
    s[i..].first_chunk::<8>().map(|w| u64::from_le_bytes(*w))
}

/// The length of the UTF-8 sequence that starts with the non-ASCII byte
/// `s[i]`, or `None` if it is not a valid one: a stray continuation byte, a
/// truncated sequence, an overlong encoding, a surrogate, or beyond U+10FFFF
/// (the rules of [`std::str::from_utf8`], from the table in RFC 3629).
fn utf8_sequence(s: &[u8], i: usize) -> Option<usize> {
    let byte_in =
        |k: usize, low: u8, high: u8| s.get(i + k).is_some_and(|b| (low..=high).contains(b));
    let tail = |k: usize| byte_in(k, 0x80, 0xbf);
    let (len, valid) = match s[i] {
        0xc2..=0xdf => (2, tail(1)),
        0xe0 => (3, byte_in(1, 0xa0, 0xbf) && tail(2)),
        0xe1..=0xec | 0xee..=0xef => (3, tail(1) && tail(2)),
        0xed => (3, byte_in(1, 0x80, 0x9f) && tail(2)),
        0xf0 => (4, byte_in(1, 0x90, 0xbf) && tail(2) && tail(3)),
        0xf1..=0xf3 => (4, tail(1) && tail(2) && tail(3)),
        0xf4 => (4, byte_in(1, 0x80, 0x8f) && tail(2) && tail(3)),
        _ => (0, false),
    };
    valid.then_some(len)
}

// ---------------------------------------------------------------------------
// LTSV

/// The bytes a label is made of: `[0-9A-Za-z_.-]`.
const LABEL: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
        i += 1;
    }
    table
};

/// An LTSV line: UTF-8, no CR or NUL, and tab-separated `label:value` fields
/// whose labels are non-empty and made of `[0-9A-Za-z_.-]` (a value may hold
/// anything else, colons included, and may be empty).
pub fn valid_ltsv(line: &[u8]) -> bool {
    let mut i = 0;
    loop {
        let label = i;
        while line.get(i).is_some_and(|&b| LABEL[b as usize]) {
            i += 1;
        }
        if i == label || line.get(i) != Some(&b':') {
            return false;
        }
        i += 1;
        // The value, up to a tab or the end of the line.
        loop {
            i = ltsv_value_stop(line, i);
            match line.get(i) {
                None => return true,
                Some(b'\t') => {
                    i += 1;
                    break;
                }
                Some(b'\r' | 0) => return false,
                Some(0x80..=0xff) => match utf8_sequence(line, i) {
                    Some(len) => i += len,
                    None => return false,
                },
                // Another control character: allowed.
                Some(_) => i += 1,
            }
        }
    }
}

/// The index of the first byte from `i` that may end or spoil a value, or
/// `s.len()`: a byte below 0x0e (tab, CR and NUL are; the caller steps over
/// the other control characters there) or a non-ASCII one.
#[inline(always)]
fn ltsv_value_stop(s: &[u8], mut i: usize) -> usize {
    while let Some(x) = word(s, i) {
        let marks = below_or_non_ascii(x, 0x0e);
        if marks != 0 {
            return first_mark(i, marks);
        }
        i += 8;
    }
    while s.get(i).is_some_and(|&b| (0x0e..0x80).contains(&b)) {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------
// GELF (JSON, RFC 8259)

/// The deepest nesting of arrays and objects accepted, serde_json's: it
/// refuses the 128th level. The parser keeps its stack in the bits of a
/// `u128` and never recurses, so deeper input is refused, never a crash.
const MAX_DEPTH: u32 = 127;

/// A GELF frame: exactly one JSON object (RFC 8259), whitespace around it
/// allowed, valid UTF-8 throughout.
///
/// Where JSON parsers differ, this one does as `serde_json::Value` does
/// (the tests compare the two):
/// * a `\u` escape of a UTF-16 surrogate must be a leading one followed by
///   an escaped trailing one (`"\ud83d\ude00"`); a lone surrogate is refused,
///   as no UTF-8 string can hold it (RFC 8259, section 8.2, leaves it to the
///   receiver; serde_json's `IgnoredAny`, the sink's former check, let it
///   through);
/// * nesting deeper than [`MAX_DEPTH`] is refused;
///
/// except for numbers, checked against the grammar only, as by the former
/// check: `1e400` is valid JSON, although `serde_json::Value`, which wants
/// an `f64`, refuses it.
pub fn valid_gelf(frame: &[u8]) -> bool {
    let i = skip_whitespace(frame, 0);
    frame.get(i) == Some(&b'{')
        && json_value(frame, i).is_some_and(|end| skip_whitespace(frame, end) == frame.len())
}

/// Skips JSON whitespace (space, tab, LF, CR) from `i`.
#[inline(always)]
fn skip_whitespace(s: &[u8], mut i: usize) -> usize {
    while s
        .get(i)
        .is_some_and(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Parses the JSON value that starts at `s[i]` (not whitespace); returns the
/// index just after it.
fn json_value(s: &[u8], mut i: usize) -> Option<usize> {
    // The containers the value at `i` is in: `depth` of them, the innermost
    // an object if `in_object` (else an array); bit `d` of `objects` is set
    // if the one at depth `d + 1` is an object.
    let mut depth = 0u32;
    let mut objects = 0u128;
    let mut in_object = false;
    loop {
        // A value starts at `i`.
        match *s.get(i)? {
            b'"' => i = json_string(s, i + 1)?,
            open @ (b'{' | b'[') => {
                if depth == MAX_DEPTH {
                    return None;
                }
                in_object = open == b'{';
                objects = (objects & !(1 << depth)) | ((in_object as u128) << depth);
                depth += 1;
                i = skip_whitespace(s, i + 1);
                // `}` and `]` are `{` and `[` plus 2.
                if s.get(i) != Some(&(open + 2)) {
                    if in_object {
                        i = json_member_value(s, i)?;
                    }
                    continue;
                }
                // Empty: closed at once.
                i += 1;
                depth -= 1;
                in_object = depth > 0 && objects >> (depth - 1) & 1 == 1;
            }
            b'-' | b'0'..=b'9' => i = json_number(s, i)?,
            b't' => i = json_word(s, i, b"true")?,
            b'f' => i = json_word(s, i, b"false")?,
            b'n' => i = json_word(s, i, b"null")?,
            _ => return None,
        }
        // After a value: close containers until one goes on with a comma.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_whitespace(s, i);
            match (*s.get(i)?, in_object) {
                (b',', true) => {
                    i = json_member_value(s, skip_whitespace(s, i + 1))?;
                    break;
                }
                (b',', false) => {
                    i = skip_whitespace(s, i + 1);
                    break;
                }
                (b'}', true) | (b']', false) => {
                    i += 1;
                    depth -= 1;
                    in_object = depth > 0 && objects >> (depth - 1) & 1 == 1;
                }
                _ => return None,
            }
        }
    }
}

/// Parses `"name" :` and the whitespace after, from `s[i]`; returns the index
/// of the member's value.
#[inline(always)]
fn json_member_value(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_whitespace(s, json_string(s, i + 1)?);
    if s.get(i) != Some(&b':') {
        return None;
    }
    Some(skip_whitespace(s, i + 1))
}

/// Checks `word` (`true`, `false` or `null`) at `s[i]`; returns the index
/// after it.
#[inline(always)]
fn json_word(s: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (s.get(i..end) == Some(word)).then_some(end)
}

/// Parses the rest of a string whose opening quote is at `s[i - 1]`; returns
/// the index after its closing quote.
#[inline(always)]
fn json_string(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        // Runs of plain ASCII, eight bytes at a time: stop at a quote, a
        // backslash, a control character or a non-ASCII byte.
        while let Some(x) = word(s, i) {
            let marks = zero_bytes(x ^ repeat(b'"'))
                | zero_bytes(x ^ repeat(b'\\'))
                | below_or_non_ascii(x, 0x20);
            if marks != 0 {
                i = first_mark(i, marks);
                break;
            }
            i += 8;
        }
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = json_escape(s, i + 1)?,
            0..=0x1f => return None,
            0x80..=0xff => i += utf8_sequence(s, i)?,
            // Fewer than 8 bytes left: one at a time.
            _ => i += 1,
        }
    }
}

/// Parses an escape whose backslash is at `s[i - 1]`; returns the index
/// after it. See [`valid_gelf`] for surrogates.
fn json_escape(s: &[u8], i: usize) -> Option<usize> {
    match *s.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => match hex4(s, i + 1)? {
            0xd800..=0xdbff => {
                if s.get(i + 5..i + 7) != Some(b"\\u".as_slice()) {
                    return None;
                }
                let trailing = hex4(s, i + 7)?;
                (0xdc00..=0xdfff).contains(&trailing).then_some(i + 11)
            }
            0xdc00..=0xdfff => None,
            _ => Some(i + 5),
        },
        _ => None,
    }
}

/// The 4 hex digits (either case) at `s[i]`.
fn hex4(s: &[u8], i: usize) -> Option<u32> {
    s.get(i..i + 4)?
        .iter()
        .try_fold(0, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
}

/// Parses the number that starts at `s[i]` (a minus sign or a digit):
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; returns the index
/// after it. What may follow it is its container's business.
#[inline(always)]
fn json_number(s: &[u8], mut i: usize) -> Option<usize> {
    let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let digits = |mut i: usize| {
        while digit(i) {
            i += 1;
        }
        i
    };
    if s[i] == b'-' {
        i += 1;
    }
    match s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        if !digit(i + 1) {
            return None;
        }
        i = digits(i + 1);
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        i = digits(i);
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real frames: djehouty's GELF for the encoder benchmark's small records.
    const GELF_FRAMES: [&str; 2] = [
        concat!(
            r#"{"version":"1.1","host":"bench-host""#,
            r#","short_message":"order 000000 accepted for customer 4821 after payment check""#,
            r#","timestamp":1795662243.196335,"level":6,"_host_name":"bench-host""#,
            r#","_service_name":"bench","_deployment_environment_name":"production""#,
            r#","_service_version":"1.4.2""#,
            r#","_service_instance_id":"6f1c2a9e-3b7d-4e0a-9c51-2d8f4b7a0e13""#,
            r#","_otel_scope_name":"bench","_otel_scope_version":"0.1.0""#,
            r#","_target":"bench::module","_severity_text":"INFO""#,
            r#","_http_request_method":"POST","_http_response_status_code":200"#,
            r#","_duration_ms":12.5,"_cache_hit":"true","_user_id":"user-00000"}"#,
        ),
        concat!(
            r#"{"version":"1.1","host":"bench-host""#,
            r#","short_message":"order 000001 accepted for customer 4821 after payment check""#,
            r#","timestamp":1795662243.196338,"level":6,"_host_name":"bench-host""#,
            r#","_service_name":"bench","_deployment_environment_name":"production""#,
            r#","_service_version":"1.4.2""#,
            r#","_service_instance_id":"6f1c2a9e-3b7d-4e0a-9c51-2d8f4b7a0e13""#,
            r#","_otel_scope_name":"bench","_otel_scope_version":"0.1.0""#,
            r#","_target":"bench::module","_severity_text":"INFO""#,
            r#","_http_request_method":"POST","_http_response_status_code":201"#,
            r#","_duration_ms":12.625,"_cache_hit":"false","_user_id":"user-00001"}"#,
        ),
    ];
    const LTSV_LINES: [&str; 2] = [
        concat!(
            "time:2026-11-26T03:04:03.207099Z\t",
            "host:bench-host\t",
            "level:6\t",
            "message:order 000000 accepted for customer 4821 after payment check\t",
            "deployment_environment_name:production\t",
            "host_name:bench-host\t",
            "service_instance_id:6f1c2a9e-3b7d-4e0a-9c51-2d8f4b7a0e13\t",
            "service_version:1.4.2\t",
            "service_name:bench\t",
            "otel_scope_name:bench\t",
            "otel_scope_version:0.1.0\t",
            "target:bench::module\t",
            "severity_text:INFO\t",
            "http_request_method:POST\t",
            "http_response_status_code:200\t",
            "duration_ms:12.5\t",
            "cache_hit:true\t",
            "user_id:user-00000",
        ),
        concat!(
            "time:2026-11-26T03:04:03.207470Z\t",
            "host:bench-host\t",
            "level:6\t",
            "message:order 000511 accepted for customer 4821 after payment check\t",
            "deployment_environment_name:production\t",
            "host_name:bench-host\t",
            "service_instance_id:6f1c2a9e-3b7d-4e0a-9c51-2d8f4b7a0e13\t",
            "service_version:1.4.2\t",
            "service_name:bench\t",
            "otel_scope_name:bench\t",
            "otel_scope_version:0.1.0\t",
            "target:bench::module\t",
            "severity_text:INFO\t",
            "http_request_method:POST\t",
            "http_response_status_code:201\t",
            "duration_ms:13.875\t",
            "cache_hit:false\t",
            "user_id:user-00511",
        ),
    ];

    /// A few frames made to exercise what the real ones lack: escapes of
    /// every kind, non-ASCII text, whitespace, arrays, nesting, every form of
    /// number.
    const JSON_SEEDS: [&str; 4] = [
        concat!(
            r#"{"msg":"tab\tnew\nquote\" back\\ slash\/ \b\f\r \u00e9\u20AC \ud83d\ude00 end","#,
            r#""n":[1,-0,0.5,-12.25e-3,1E+5,6e7,0e0,10E-0],"t":true,"f":false,"z":null,"#,
            r#""o":{"a":{"b":[[],{},[{}]]}}}"#,
        ),
        " {\n\t\"a\" : [ 1 , 2.5 , \"x\" ] ,\r\n \"b\" : { } , \"c\":[ ] } \n",
        concat!(
            "{\"é\":\"ünïcødé € 😀 中文\",\"x\":\"\\u00e9\",",
            "\"long\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\\"bbbbbbbbbbbbbbbbbbbb\\\\cccc\"}",
        ),
        r#"{"":"","a":[[[[1]]]],"big":12345678901234567890123,"neg":-1.5E-7,"d":"\u0000"}"#,
    ];

    /// Lines made to exercise what the real ones lack: non-ASCII values, empty
    /// values, colons in values, control characters other than tab and CR.
    const LTSV_SEEDS: [&str; 3] = [
        "a:b\tc.d-e_F9:x:y:z\tempty:\tutf8:é € 😀 中文\tctl:\x01\x0b\x1f\x7f",
        "host:h\tmessage:a longer value, with spaces, commas, \"quotes\" and \\ backslashes",
        "x:\ty:\tz:0123456789abcdef0123456789abcdef",
    ];

    /// What edits insert into JSON text.
    #[rustfmt::skip]
    const JSON_SNIPPETS: [&[u8]; 57] = [
        b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"\t", b"\r", b"\n",
        b"\0", b"\x01", b"\x1f", b"\x7f", b"\x0c", b"\xff", b"\xc3", b"\x80", b"\xbf",
        b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf4\x90\x80\x80",
        b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"0", b"1", b"5", b"9", b"e",
        b"E", b"-", b"+", b".", b"u", b"t", b"n", b"f", b"a", b"/", b"\\u", b"\\ud800",
        b"\\udc00", b"\\ud83d\\ude00", b"\\u00e9", b"\\\"", b"true", b"null", b"1e999",
        b"{}", b"[]", b"\"\":", b"\"k\":1,",
    ];

    /// What edits insert into LTSV lines.
    #[rustfmt::skip]
    const LTSV_SNIPPETS: [&[u8]; 34] = [
        b"\t", b":", b"\r", b"\0", b"\n", b"\x01", b"\x0b", b"\x0e", b"\x1f", b"\x7f",
        b"\xff", b"\xc3", b"\x80", b"\xbf", b"\xc0\x80", b"\xe0\x80\x80", b"\xe2\x82",
        b"\xed\xa0\x80", b"\xf0\x80\x80\x80", b"\xf0\x9f\x98", b"\xf4\x90\x80\x80",
        b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"a", b"Z", b"5", b"_", b".", b"-", b" ", b"=",
        b"\tk:", b"\t:", b"k:",
    ];

    /// xorshift64*: deterministic, so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number below `n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            (self.next() >> 32) as usize % n
        }

        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// How many valid and invalid cases a generator produced.
    #[derive(Default)]
    struct Tally {
        valid: usize,
        invalid: usize,
    }

    impl Tally {
        fn add(&mut self, valid: bool) {
            if valid {
                self.valid += 1;
            } else {
                self.invalid += 1;
            }
        }

        /// Fails unless the generator produced at least `min` of each, so a
        /// generator that went blind (all valid, or all refused at the first
        /// byte) is noticed.
        fn assert_both(&self, what: &str, min: usize) {
            assert!(
                self.valid >= min && self.invalid >= min,
                "{what}: {} valid and {} invalid cases, wanted at least {min} of each",
                self.valid,
                self.invalid
            );
        }
    }

    /// Runs `check` (which compares a validator with its oracle and says
    /// whether the case was valid) on `rounds` cases made by `generate` from
    /// a generator seeded with `seed`, and tallies them.
    fn tally(
        seed: u64,
        rounds: usize,
        mut generate: impl FnMut(&mut Rng, &mut Vec<u8>),
        check: fn(&[u8]) -> bool,
    ) -> Tally {
        let mut rng = Rng(seed);
        let mut tally = Tally::default();
        let mut case = Vec::new();
        for _ in 0..rounds {
            case.clear();
            generate(&mut rng, &mut case);
            tally.add(check(&case));
        }
        tally
    }

    /// A generator of mutated cases: a real frame, a seed or a random case
    /// (a third each), then mutated with `snippets`.
    fn mutations(
        frames: &'static [&'static str],
        seeds: &'static [&'static str],
        random: fn(&mut Rng, &mut Vec<u8>),
        snippets: &'static [&'static [u8]],
    ) -> impl FnMut(&mut Rng, &mut Vec<u8>) {
        move |rng, case| {
            match rng.below(3) {
                0 => case.extend_from_slice(rng.pick(frames).as_bytes()),
                1 => case.extend_from_slice(rng.pick(seeds).as_bytes()),
                _ => random(rng, case),
            }
            mutate(rng, case, snippets);
        }
    }

    fn show(bytes: &[u8]) -> String {
        bytes.escape_ascii().to_string()
    }

    /// The LTSV validator the sink had before this module: the oracle.
    fn ltsv_oracle(line: &[u8]) -> bool {
        if line.is_empty() || line.iter().any(|&b| b == b'\r' || b == 0) {
            return false;
        }
        if std::str::from_utf8(line).is_err() {
            return false;
        }
        line.split(|&b| b == b'\t')
            .all(|field| match field.iter().position(|&b| b == b':') {
                Some(colon) if colon > 0 => field[..colon]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
                _ => false,
            })
    }

    /// serde_json's verdict: the frame parses into a `serde_json::Value` that
    /// is an object. With one correction: a number too large for an `f64`,
    /// which serde_json refuses and JSON allows (see [`valid_gelf`]), has its
    /// exponent zeroed (same length, same grammar) and the frame is asked
    /// again.
    fn gelf_oracle(frame: &[u8]) -> bool {
        let mut frame = frame.to_vec();
        loop {
            match serde_json::from_slice::<serde_json::Value>(&frame) {
                Ok(value) => return value.is_object(),
                Err(e) if e.to_string().starts_with("number out of range") => {
                    let at = byte_offset(&frame, e.line(), e.column());
                    assert!(
                        zero_exponent(&mut frame, at),
                        "cannot bring the number before byte {at} in range: {}",
                        show(&frame)
                    );
                }
                Err(_) => return false,
            }
        }
    }

    /// The offset of serde_json's error position (line from 1, byte column
    /// from 0).
    fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
        let line_start = match line {
            0 | 1 => 0,
            _ => text
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .nth(line - 2)
                .map_or(text.len(), |(k, _)| k + 1),
        };
        line_start + column
    }

    /// Zeroes the exponent digits of the number that `text[at - 1]` is part
    /// of; false if there were none to zero.
    fn zero_exponent(text: &mut [u8], at: usize) -> bool {
        let in_number =
            |b: &u8| b.is_ascii_digit() || matches!(b, b'e' | b'E' | b'+' | b'-' | b'.');
        let at = at.clamp(1, text.len());
        let start = text[..at]
            .iter()
            .rposition(|b| !in_number(b))
            .map_or(0, |k| k + 1);
        let end = at
            + text[at..]
                .iter()
                .position(|b| !in_number(b))
                .unwrap_or(text.len() - at);
        let Some(e) = text[start..end]
            .iter()
            .position(|b| matches!(b, b'e' | b'E'))
        else {
            return false;
        };
        let mut changed = false;
        for b in &mut text[start + e..end] {
            if matches!(b, b'1'..=b'9') {
                *b = b'0';
                changed = true;
            }
        }
        changed
    }

    /// Checks `valid_gelf` against serde_json; returns the verdict.
    fn same_gelf(frame: &[u8]) -> bool {
        let expected = gelf_oracle(frame);
        assert_eq!(
            valid_gelf(frame),
            expected,
            "valid_gelf and serde_json disagree on {}",
            show(frame)
        );
        expected
    }

    /// Checks `valid_ltsv` against the old validator; returns the verdict.
    fn same_ltsv(line: &[u8]) -> bool {
        let expected = ltsv_oracle(line);
        assert_eq!(
            valid_ltsv(line),
            expected,
            "valid_ltsv and the old validator disagree on {}",
            show(line)
        );
        expected
    }

    /// Applies one to three random edits to `text`: a byte replaced by a
    /// snippet, a snippet inserted, a byte deleted, a truncation, a piece of
    /// the text repeated elsewhere.
    fn mutate(rng: &mut Rng, text: &mut Vec<u8>, snippets: &[&[u8]]) {
        for _ in 0..1 + rng.below(3) {
            let len = text.len();
            match rng.below(6) {
                0 | 1 if len > 0 => {
                    let at = rng.below(len);
                    let snippet = *rng.pick(snippets);
                    text.splice(at..at + 1, snippet.iter().copied());
                }
                2 => {
                    let at = rng.below(len + 1);
                    let snippet = *rng.pick(snippets);
                    text.splice(at..at, snippet.iter().copied());
                }
                3 if len > 0 => {
                    text.remove(rng.below(len));
                }
                4 => text.truncate(rng.below(len + 1)),
                5 if len > 0 => {
                    let from = rng.below(len);
                    let to = from + 1 + rng.below((len - from).min(24));
                    let piece = text[from..to].to_vec();
                    let at = rng.below(len + 1);
                    text.splice(at..at, piece);
                }
                _ => {}
            }
        }
    }

    /// One in `BAD` random choices is a mistake.
    const BAD: usize = 80;

    fn random_space(rng: &mut Rng, out: &mut Vec<u8>) {
        if rng.one_in(BAD) {
            // Not JSON whitespace.
            let wrong: [&[u8]; 4] = [b"\x0c", b"\xc2\xa0", b"\0", b"\x0b"];
            let piece = *rng.pick(&wrong);
            out.extend_from_slice(piece);
        } else if rng.one_in(4) {
            for _ in 0..1 + rng.below(2) {
                out.push(*rng.pick(b" \t\n\r"));
            }
        }
    }

    fn random_string(rng: &mut Rng, out: &mut Vec<u8>) {
        #[rustfmt::skip]
        const GOOD: [&[u8]; 25] = [
            b"a", b"hello", b" ", b"0123456789abcdef", b"bench::module", b"\\n", b"\\t",
            b"\\\"", b"\\\\", b"\\/", b"\\b", b"\\f", b"\\r", b"\\u00e9", b"\\u20AC",
            b"\\uFFFF", b"\\u0000", b"\\ud83d\\ude00", b"\\uDBFF\\uDFFF", b"\xc3\xa9",
            b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\x7f", b"'", b"{[:,]}",
        ];
        #[rustfmt::skip]
        const WRONG: [&[u8]; 18] = [
            b"\\ud800", b"\\udc00", b"\\ud800\\u0041", b"\\ud800\\n", b"\\ud800\\ud800",
            b"\\x", b"\\u12", b"\\u12g4", b"\\U0041", b"\x01", b"\t", b"\n", b"\xff", b"\xc3",
            b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80", b"\xe0\x80\x80",
        ];
        out.push(b'"');
        for _ in 0..rng.below(10) {
            let piece = if rng.one_in(BAD) {
                *rng.pick(&WRONG)
            } else {
                *rng.pick(&GOOD)
            };
            out.extend_from_slice(piece);
        }
        out.push(b'"');
    }

    fn random_number(rng: &mut Rng, out: &mut Vec<u8>) {
        #[rustfmt::skip]
        const WRONG: [&[u8]; 16] = [
            b"01", b"1.", b"1e", b"-", b".5", b"+1", b"1e+", b"--1", b"0x1", b"1.e5", b"-01",
            b"00", b"1E", b"Infinity", b"NaN", b"1..2",
        ];
        if rng.one_in(BAD) {
            let piece = *rng.pick(&WRONG);
            out.extend_from_slice(piece);
            return;
        }
        let digit = |rng: &mut Rng| b'0' + rng.below(10) as u8;
        if rng.one_in(3) {
            out.push(b'-');
        }
        if rng.one_in(4) {
            out.push(b'0');
        } else {
            out.push(b'1' + rng.below(9) as u8);
            for _ in 0..rng.below(6) {
                out.push(digit(rng));
            }
        }
        if rng.one_in(3) {
            out.push(b'.');
            for _ in 0..1 + rng.below(4) {
                out.push(digit(rng));
            }
        }
        if rng.one_in(4) {
            out.push(*rng.pick(b"eE"));
            if rng.one_in(2) {
                out.push(*rng.pick(b"+-"));
            }
            // Up to 3 digits: sometimes beyond an f64.
            for _ in 0..1 + rng.below(3) {
                out.push(digit(rng));
            }
        }
    }

    /// Appends a random JSON value, one choice in [`BAD`] a mistake.
    fn random_json(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
        random_space(rng, out);
        match rng.below(if depth >= 4 { 4 } else { 7 }) {
            0 | 1 => random_string(rng, out),
            2 => random_number(rng, out),
            3 => {
                let words: [&[u8]; 3] = [b"true", b"false", b"null"];
                let wrong: [&[u8]; 4] = [b"tru", b"nul", b"True", b"nulll"];
                let word = if rng.one_in(BAD) {
                    *rng.pick(&wrong)
                } else {
                    *rng.pick(&words)
                };
                out.extend_from_slice(word);
            }
            4 => {
                out.push(b'[');
                let n = rng.below(4);
                for k in 0..n {
                    if k > 0 && !rng.one_in(BAD) {
                        out.push(b',');
                    }
                    random_json(rng, out, depth + 1);
                }
                if n > 0 && rng.one_in(BAD) {
                    out.push(b',');
                }
                random_space(rng, out);
                out.push(b']');
            }
            _ => random_object(rng, out, depth),
        }
        random_space(rng, out);
    }

    fn random_object(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
        out.push(b'{');
        let n = rng.below(5);
        for k in 0..n {
            if k > 0 && !rng.one_in(BAD) {
                out.push(b',');
            }
            random_space(rng, out);
            if rng.one_in(BAD) {
                random_number(rng, out);
            } else {
                random_string(rng, out);
            }
            random_space(rng, out);
            if !rng.one_in(BAD) {
                out.push(b':');
            }
            random_json(rng, out, depth + 1);
        }
        if n > 0 && rng.one_in(BAD) {
            out.push(b',');
        }
        random_space(rng, out);
        out.push(b'}');
    }

    /// A random frame: mostly an object, now and then another value.
    fn random_frame(rng: &mut Rng, out: &mut Vec<u8>) {
        if rng.one_in(8) {
            random_json(rng, out, 0);
        } else {
            random_space(rng, out);
            random_object(rng, out, 0);
            random_space(rng, out);
        }
    }

    /// An object nested around `depth` levels deep (the limit is 127), arrays
    /// and objects mixed, with siblings now and then.
    fn random_nesting(rng: &mut Rng, out: &mut Vec<u8>) {
        let depth = 118 + rng.below(20);
        let mut closers = vec![b'}'];
        out.push(b'{');
        out.extend_from_slice(b"\"k\":");
        for _ in 1..depth {
            if rng.one_in(2) {
                out.push(b'[');
                closers.push(b']');
                if rng.one_in(8) {
                    out.extend_from_slice(b"1,");
                }
            } else {
                out.extend_from_slice(b"{\"k\":");
                closers.push(b'}');
            }
        }
        out.push(b'1');
        while let Some(closer) = closers.pop() {
            out.push(closer);
            if closers.last() == Some(&b']') && rng.one_in(8) {
                out.extend_from_slice(b",[]");
            }
        }
    }

    #[test]
    fn gelf_seeds_are_valid() {
        for frame in GELF_FRAMES.iter().chain(&JSON_SEEDS) {
            assert!(same_gelf(frame.as_bytes()), "{frame}");
        }
    }

    #[test]
    fn gelf_matches_serde_json_on_every_truncation() {
        for frame in GELF_FRAMES.iter().chain(&JSON_SEEDS) {
            let frame = frame.as_bytes();
            for len in 0..frame.len() {
                same_gelf(&frame[..len]);
            }
        }
    }

    #[test]
    fn gelf_matches_serde_json_on_mutations() {
        let mutated = mutations(&GELF_FRAMES, &JSON_SEEDS, random_frame, &JSON_SNIPPETS);
        tally(0x9e37_79b9_7f4a_7c15, 130_000, mutated, same_gelf)
            .assert_both("mutated GELF frames", 10_000);
    }

    #[test]
    fn gelf_matches_serde_json_on_random_frames() {
        tally(0x2545_f491_4f6c_dd1d, 80_000, random_frame, same_gelf)
            .assert_both("random GELF frames", 20_000);
        tally(0x1234_5678_9abc_def1, 4_000, random_nesting, same_gelf)
            .assert_both("deeply nested GELF frames", 1_000);
    }

    #[test]
    fn gelf_edge_cases() {
        let deep = |levels: usize| {
            let mut s = String::from("{\"a\":");
            s.push_str(&"[".repeat(levels - 1));
            s.push('1');
            s.push_str(&"]".repeat(levels - 1));
            s.push('}');
            s
        };
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b" \t\r\n ", false),
            (b"{}", true),
            (b" {\"a\":1} ", true),
            (b"\n{\"a\":1}\r\n", true),
            (b"{\"a\":1}x", false),
            (b"{\"a\":1}{}", false),
            (b"{\"a\":1}\0", false),
            (b"[1]", false),
            (b"[]", false),
            (b"1", false),
            (b"\"s\"", false),
            (b"null", false),
            (b"\xef\xbb\xbf{}", false),
            (b"\x0c{}", false),
            // Members and separators.
            (b"{\"a\":1,\"a\":2}", true),
            (b"{\"a\":1,}", false),
            (b"{,}", false),
            (b"{\"a\"}", false),
            (b"{\"a\":}", false),
            (b"{\"a\" 1}", false),
            (b"{\"a\":1 \"b\":2}", false),
            (b"{1:2}", false),
            (b"{a:1}", false),
            (b"{'a':1}", false),
            (b"{\"a\":[1,]}", false),
            (b"{\"a\":[,1]}", false),
            (b"{\"a\":[1 2]}", false),
            (b"{\"a\":[1}", false),
            (b"{\"a\":{]}", false),
            (b"{\"a\":[] , \"b\" : { } }", true),
            (b"{\"a\":[true,false,null]}", true),
            (b"{\"a\":tru}", false),
            (b"{\"a\":nulll}", false),
            (b"{\"a\":True}", false),
            // Surrogates: a leading one escaped with an escaped trailing one,
            // as serde_json::Value wants.
            (br#"{"a":"\ud83d\ude00"}"#, true),
            (br#"{"a":"\uD83D\uDE00"}"#, true),
            (br#"{"a":"\ud800"}"#, false),
            (br#"{"a":"\udc00"}"#, false),
            (br#"{"a":"\ud800x"}"#, false),
            (br#"{"a":"\ud800\n"}"#, false),
            (br#"{"a":"\ud800\u0041"}"#, false),
            (br#"{"a":"\ud800\ud800"}"#, false),
            (br#"{"\ud800":1}"#, false),
            // Other escapes.
            (br#"{"a":"\"\\\/\b\f\n\r\t\u0000\u001f\uffff"}"#, true),
            (br#"{"a":"\x"}"#, false),
            (br#"{"a":"\a"}"#, false),
            (br#"{"a":"\U0041"}"#, false),
            (br#"{"a":"\u004"}"#, false),
            (br#"{"a":"\u004g"}"#, false),
            (br#"{"a":"\"}"#, false),
            // Control characters and UTF-8.
            (b"{\"a\":\"\x1f\"}", false),
            (b"{\"a\":\"\t\"}", false),
            (b"{\"a\":\"\0\"}", false),
            (b"{\"a\":\"\x7f\"}", true),
            (b"{\"a\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", true),
            (b"{\"a\":\"\xff\"}", false),
            (b"{\"a\":\"\xc3\"}", false),
            (b"{\"a\":\"\xc0\xaf\"}", false),
            (b"{\"a\":\"\xed\xa0\x80\"}", false),
            (b"{\"a\":\"\xf4\x90\x80\x80\"}", false),
            (b"{\"a\":1\xc3\xa9}", false),
            // Numbers.
            (b"{\"a\":-0}", true),
            (b"{\"a\":0}", true),
            (b"{\"a\":-0.0e-0}", true),
            (b"{\"a\":1E+5}", true),
            (b"{\"a\":1e5}", true),
            (b"{\"a\":12.5e-3}", true),
            (b"{\"a\":01}", false),
            (b"{\"a\":-01}", false),
            (b"{\"a\":00}", false),
            (b"{\"a\":1.}", false),
            (b"{\"a\":1.e5}", false),
            (b"{\"a\":.5}", false),
            (b"{\"a\":1e}", false),
            (b"{\"a\":1e+}", false),
            (b"{\"a\":1E-}", false),
            (b"{\"a\":-}", false),
            (b"{\"a\":+1}", false),
            (b"{\"a\":--1}", false),
            (b"{\"a\":0x1}", false),
            (b"{\"a\":NaN}", false),
            (b"{\"a\":Infinity}", false),
            (b"{\"a\":1 2}", false),
            // Beyond an f64 (serde_json::Value refuses it): still JSON.
            (b"{\"a\":1e400}", true),
            (b"{\"a\":-1.5E+999}", true),
        ];
        for &(frame, valid) in cases {
            assert_eq!(valid_gelf(frame), valid, "{}", show(frame));
        }
        // serde_json::Value refuses these, the oracle corrects it.
        assert!(same_gelf(b"{\"a\":1e400,\"b\":[-2.5E+999,1]}"));
        assert!(same_gelf(b"{\"a\":1.7976931348623159e308}"));
        // The nesting limit, serde_json's: 127 levels (the outer object and
        // 126 arrays) pass, 128 do not.
        for (levels, valid) in [(127, true), (128, false), (100_000, false)] {
            let frame = deep(levels);
            assert_eq!(valid_gelf(frame.as_bytes()), valid, "{levels} levels");
            if levels < 1000 {
                same_gelf(frame.as_bytes());
            }
        }
        // Unclosed, far too deep: refused, without recursion.
        assert!(!valid_gelf("{\"a\":".repeat(1_000_000).as_bytes()));
    }

    #[test]
    fn ltsv_seeds_are_valid() {
        for line in LTSV_LINES.iter().chain(&LTSV_SEEDS) {
            assert!(same_ltsv(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn ltsv_matches_the_old_validator_on_mutations() {
        let mutated = mutations(&LTSV_LINES, &LTSV_SEEDS, random_line, &LTSV_SNIPPETS);
        tally(0xd1b5_4a32_d192_ed03, 120_000, mutated, same_ltsv)
            .assert_both("mutated LTSV lines", 15_000);
    }

    #[test]
    fn ltsv_matches_the_old_validator_on_random_lines() {
        tally(0x8cb9_2ba7_2f3d_8dd7, 100_000, random_line, same_ltsv)
            .assert_both("random LTSV lines", 25_000);
    }

    /// A random line, one choice in 40 a mistake.
    fn random_line(rng: &mut Rng, out: &mut Vec<u8>) {
        const LABEL_BYTES: &[u8] = b"abcxyzABCXYZ0123456789_.-";
        const WRONG_LABEL: [&[u8]; 6] = [b" ", b"=", b"\xc3\xa9", b"\t", b"/", b"\0"];
        #[rustfmt::skip]
        const VALUE: [&[u8]; 14] = [
            b"a", b"value", b" ", b":", b"0123456789abcdef", b"bench::module", b"\"q\"",
            b"\\", b"\x01", b"\x0b", b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80",
        ];
        #[rustfmt::skip]
        const WRONG_VALUE: [&[u8]; 12] = [
            b"\r", b"\0", b"\t", b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xe2\x82",
        ];
        const WRONG: usize = 40;
        let fields = 1 + rng.below(6);
        for k in 0..fields {
            if k > 0 {
                out.push(b'\t');
            }
            let label_len = if rng.one_in(WRONG) {
                0
            } else {
                1 + rng.below(12)
            };
            for _ in 0..label_len {
                if rng.one_in(WRONG) {
                    let piece = *rng.pick(&WRONG_LABEL);
                    out.extend_from_slice(piece);
                } else {
                    out.push(*rng.pick(LABEL_BYTES));
                }
            }
            if !rng.one_in(WRONG) {
                out.push(b':');
            }
            for _ in 0..rng.below(8) {
                let piece = if rng.one_in(WRONG) {
                    *rng.pick(&WRONG_VALUE)
                } else {
                    *rng.pick(&VALUE)
                };
                out.extend_from_slice(piece);
            }
        }
        if rng.one_in(WRONG) {
            out.push(b'\t');
        }
    }

    #[test]
    fn ltsv_edge_cases() {
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b"a:", true),
            (b"a:b", true),
            (b"a:b\tc:d", true),
            (b"a:b:c", true),
            (b"a.b-c_D9:x", true),
            (b"a:\tb:", true),
            (b":x", false),
            (b"a", false),
            (b"a\tb:c", false),
            (b"a:b\t", false),
            (b"a:b\t\tc:d", false),
            (b"\ta:b", false),
            (b"a b:c", false),
            (b"a=b:c", false),
            (b"\xc3\xa9:x", false),
            (b"a:b\rc", false),
            (b"a:b\r", false),
            (b"a:b\0", false),
            (b"a:\x01\x0b\x1f\x7f", true),
            (b"a:\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true),
            (b"a:\xff", false),
            (b"a:\xc3", false),
            (b"a:\xc0\x80", false),
            (b"a:\xed\xa0\x80", false),
            (b"a:\xf4\x90\x80\x80", false),
            (b"a:0123456789abcdef0123456789\r", false),
            (b"a:0123456789abcdef0123456789\xc3", false),
            (b"a:0123456789abcdef0123456789\t", false),
        ];
        for &(line, valid) in cases {
            assert_eq!(valid_ltsv(line), valid, "{}", show(line));
            assert_eq!(ltsv_oracle(line), valid, "oracle: {}", show(line));
        }
    }

    /// Every sequence of one to four bytes from a set of boundary values,
    /// at every offset from a word boundary, inside an LTSV value and a JSON
    /// string: accepted exactly when it is UTF-8 (and, in JSON, has no
    /// control character).
    #[test]
    fn utf8_as_std() {
        const BYTES: [u8; 28] = [
            0x00, 0x09, 0x1f, 0x20, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
            0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
        ];
        let mut cases = 0;
        let (mut line, mut frame) = (Vec::new(), Vec::new());
        for len in 1..=4u32 {
            for n in 0..BYTES.len().pow(len) {
                let seq: Vec<u8> = (0..len)
                    .map(|k| BYTES[n / BYTES.len().pow(k) % BYTES.len()])
                    .collect();
                let pad = &b"xxxxxxxxxxxxxxxx"[..n % 9];
                let utf8 = std::str::from_utf8(&seq).is_ok();
                line.clear();
                line.extend_from_slice(b"k:");
                line.extend_from_slice(pad);
                line.extend_from_slice(&seq);
                line.extend_from_slice(b"tail");
                assert_eq!(valid_ltsv(&line), ltsv_oracle(&line), "{}", show(&line));
                frame.clear();
                frame.extend_from_slice(b"{\"k\":\"");
                frame.extend_from_slice(pad);
                frame.extend_from_slice(&seq);
                frame.extend_from_slice(b"tail\"}");
                let json = utf8 && seq.iter().all(|&b| b >= 0x20);
                assert_eq!(valid_gelf(&frame), json, "{}", show(&frame));
                cases += 1;
            }
        }
        assert_eq!(cases, 28 + 28 * 28 + 28 * 28 * 28 + 28 * 28 * 28 * 28);
    }
}
