//! SHA-1 and MD5, streaming, written out here because the only use is fingerprinting a
//! file's first line the way fail2ban stores it (hex text in its `firstlinemd5` column).
//!
//! fail2ban 1.0.2 on Python 3 stores SHA-1 in that column: its MD5 self-test hashes a
//! `str`, which Python 3 refuses, and it falls back to SHA-1. Older or Python 2 databases
//! hold MD5, so both are needed to recognise a saved position. Neither is used for
//! anything security-related.

/// Which digest a saved fingerprint was made with, told apart by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha1,
    Md5,
}

impl Algorithm {
    /// The algorithm whose hex digest has this many characters.
    pub(crate) fn for_hex_len(len: usize) -> Option<Algorithm> {
        match len {
            40 => Some(Algorithm::Sha1),
            32 => Some(Algorithm::Md5),
            _ => None,
        }
    }
}

/// A streaming digest of either kind.
#[derive(Debug, Clone)]
pub(crate) enum Digest {
    Sha1(Sha1),
    Md5(Md5),
}

impl Digest {
    pub(crate) fn new(algorithm: Algorithm) -> Digest {
        match algorithm {
            Algorithm::Sha1 => Digest::Sha1(Sha1::new()),
            Algorithm::Md5 => Digest::Md5(Md5::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Digest::Sha1(d) => d.update(data),
            Digest::Md5(d) => d.update(data),
        }
    }

    pub(crate) fn finish_hex(self) -> String {
        match self {
            Digest::Sha1(d) => hex(&d.finish()),
            Digest::Md5(d) => hex(&d.finish()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Both digests share the 64-byte block framing; only the length's byte order differs.
#[derive(Debug, Clone)]
struct Blocks {
    pending: [u8; 64],
    pending_len: usize,
    total_len: u64,
}

impl Blocks {
    fn new() -> Blocks {
        Blocks {
            pending: [0; 64],
            pending_len: 0,
            total_len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8], mut compress: impl FnMut(&[u8; 64])) {
        self.total_len = self.total_len.wrapping_add(data.len() as u64);
        if self.pending_len > 0 {
            let take = (64 - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < 64 {
                return;
            }
            let block = self.pending;
            compress(&block);
            self.pending_len = 0;
        }
        let mut chunks = data.chunks_exact(64);
        for chunk in &mut chunks {
            let mut block = [0u8; 64];
            block.copy_from_slice(chunk);
            compress(&block);
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    fn finish(mut self, big_endian_length: bool, mut compress: impl FnMut(&[u8; 64])) {
        let bit_len = self.total_len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        tail[self.pending_len] = 0x80;
        let used = if self.pending_len < 56 { 64 } else { 128 };
        let length = if big_endian_length {
            bit_len.to_be_bytes()
        } else {
            bit_len.to_le_bytes()
        };
        tail[used - 8..used].copy_from_slice(&length);
        for chunk in tail[..used].chunks_exact(64) {
            let mut block = [0u8; 64];
            block.copy_from_slice(chunk);
            compress(&block);
        }
        self.pending_len = 0;
    }
}

/// SHA-1 (FIPS 180-4).
#[derive(Debug, Clone)]
pub(crate) struct Sha1 {
    state: [u32; 5],
    blocks: Blocks,
}

impl Sha1 {
    pub(crate) fn new() -> Sha1 {
        Sha1 {
            state: [
                0x6745_2301,
                0xefcd_ab89,
                0x98ba_dcfe,
                0x1032_5476,
                0xc3d2_e1f0,
            ],
            blocks: Blocks::new(),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.blocks.update(data, |b| sha1_compress(state, b));
    }

    pub(crate) fn finish(mut self) -> [u8; 20] {
        let state = &mut self.state;
        self.blocks.finish(true, |b| sha1_compress(state, b));
        let mut out = [0u8; 20];
        for (dst, word) in out.chunks_exact_mut(4).zip(self.state) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

fn sha1_compress(state: &mut [u32; 5], block: &[u8; 64]) {
    let mut w = [0u32; 80];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for (i, &wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
            20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
            _ => (b ^ c ^ d, 0xca62_c1d6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *s = s.wrapping_add(v);
    }
}

/// MD5 (RFC 1321).
#[derive(Debug, Clone)]
pub(crate) struct Md5 {
    state: [u32; 4],
    blocks: Blocks,
}

const MD5_SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

impl Md5 {
    pub(crate) fn new() -> Md5 {
        Md5 {
            state: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
            blocks: Blocks::new(),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let state = &mut self.state;
        self.blocks.update(data, |b| md5_compress(state, b));
    }

    pub(crate) fn finish(mut self) -> [u8; 16] {
        let state = &mut self.state;
        self.blocks.finish(false, |b| md5_compress(state, b));
        let mut out = [0u8; 16];
        for (dst, word) in out.chunks_exact_mut(4).zip(self.state) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

fn md5_constant(i: usize) -> u32 {
    // The table is floor(|sin(i + 1)| * 2^32); computing it keeps 64 magic numbers out of
    // the source, and f64 has the precision to get every entry exact.
    let value = ((i as f64) + 1.0).sin().abs() * 4_294_967_296.0;
    value as u32
}

fn md5_compress(state: &mut [u32; 4], block: &[u8; 64]) {
    let mut m = [0u32; 16];
    for (i, word) in block.chunks_exact(4).enumerate() {
        m[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    for i in 0..64 {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let shift = MD5_SHIFTS[(i / 16) * 4 + i % 4];
        let sum = a
            .wrapping_add(f)
            .wrapping_add(md5_constant(i))
            .wrapping_add(m[g]);
        a = d;
        d = c;
        c = b;
        b = b.wrapping_add(sum.rotate_left(shift));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1_hex(data: &[u8]) -> String {
        let mut d = Digest::new(Algorithm::Sha1);
        d.update(data);
        d.finish_hex()
    }

    fn md5_hex(data: &[u8]) -> String {
        let mut d = Digest::new(Algorithm::Md5);
        d.update(data);
        d.finish_hex()
    }

    #[test]
    fn sha1_known_answers() {
        // FIPS 180 examples.
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            sha1_hex(&vec![b'a'; 1_000_000]),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn md5_known_answers() {
        // RFC 1321 test suite.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"message digest"),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
        assert_eq!(
            md5_hex(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn streaming_in_odd_pieces_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [Algorithm::Sha1, Algorithm::Md5] {
            let mut whole = Digest::new(algorithm);
            whole.update(&data);
            let mut pieces = Digest::new(algorithm);
            let mut rest = &data[..];
            let mut step = 1;
            while !rest.is_empty() {
                let take = step.min(rest.len());
                pieces.update(&rest[..take]);
                rest = &rest[take..];
                step = step * 3 % 97 + 1;
            }
            assert_eq!(whole.finish_hex(), pieces.finish_hex());
        }
    }

    #[test]
    fn matches_python_hashlib_on_a_log_line() {
        // What fail2ban stores for this first line (computed with python3's hashlib).
        let line = b"Dec  2 03:00:01 host sshd[1]: Server listening on 0.0.0.0 port 22.\n";
        let expected_sha1 = std::process::Command::new("python3")
            .arg("-c")
            .arg("import sys,hashlib;print(hashlib.sha1(sys.stdin.buffer.read()).hexdigest(), hashlib.md5(b'x').hexdigest())")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().map(|mut s| s.write_all(line));
                child.wait_with_output()
            });
        let Ok(out) = expected_sha1 else {
            eprintln!("python3 not available; skipping the cross-check");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        assert_eq!(words.next(), Some(sha1_hex(line).as_str()));
        assert_eq!(words.next(), Some(md5_hex(b"x").as_str()));
    }
}
