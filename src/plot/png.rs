//! A minimal PNG encoder: 8-bit RGB, zlib stream with fixed-Huffman DEFLATE blocks holding
//! literals and run-length matches (distance 1 and one image row), CRC-32 and Adler-32 by
//! hand. Plots compress well with it (flat areas become long matches).

/// CRC-32 (ISO-HDLC, as PNG uses) of `data`, continuing from `crc` (start with 0).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Adler-32 of `data`.
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, v: u32, nbits: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += nbits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let mut rev = 0;
        for i in 0..len {
            rev |= ((code >> i) & 1) << (len - 1 - i);
        }
        self.put(rev, len);
    }
    fn literal(&mut self, v: u32) {
        match v {
            0..=143 => self.code(0x30 + v, 8),
            144..=255 => self.code(0x190 + v - 144, 9),
            256..=279 => self.code(v - 256, 7),
            _ => self.code(0xC0 + v - 280, 8),
        }
    }
    fn length(&mut self, len: usize) {
        const BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        let k = BASE.iter().rposition(|&b| b <= len).unwrap_or(0);
        self.literal(257 + k as u32);
        if EXTRA[k] > 0 {
            self.put((len - BASE[k]) as u32, EXTRA[k]);
        }
    }
    fn distance(&mut self, d: usize) {
        let mut base = [0usize; 30];
        let mut extra = [0u32; 30];
        let mut b = 1;
        for k in 0..30 {
            extra[k] = if k < 4 { 0 } else { (k as u32 - 2) / 2 };
            base[k] = b;
            b += 1 << extra[k];
        }
        let k = base.iter().rposition(|&x| x <= d).unwrap_or(0);
        self.code(k as u32, 5);
        if extra[k] > 0 {
            self.put((d - base[k]) as u32, extra[k]);
        }
    }
}

/// A zlib stream of `data`: one fixed-Huffman block; matches at distance 1 (runs) and
/// `stride` (the row above), greedy, up to 258 bytes.
pub fn zlib(data: &[u8], stride: usize) -> Vec<u8> {
    let mut w = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    w.put(1, 1); // final block
    w.put(1, 2); // fixed Huffman
    let n = data.len();
    let mut i = 0;
    let run = |i: usize, d: usize| -> usize {
        if i < d {
            return 0;
        }
        let mut l = 0;
        while l < 258 && i + l < n && data[i + l] == data[i + l - d] {
            l += 1;
        }
        l
    };
    while i < n {
        let (l1, l2) = (
            run(i, 1),
            if stride > 1 && stride <= 32768 {
                run(i, stride)
            } else {
                0
            },
        );
        let (len, d) = if l2 > l1 { (l2, stride) } else { (l1, 1) };
        if len >= 3 {
            w.length(len);
            w.distance(d);
            i += len;
        } else {
            w.literal(u32::from(data[i]));
            i += 1;
        }
    }
    w.literal(256);
    if w.n > 0 {
        w.put(0, 8 - w.n);
    }
    let mut out = w.out;
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let c = crc32(crc32(0, kind), data);
    out.extend_from_slice(&c.to_be_bytes());
}

/// Encode an RGB image (`width * height` pixels, row-major from the top) as PNG.
pub fn encode_rgb(width: usize, height: usize, rgb: &[[u8; 3]]) -> Vec<u8> {
    let stride = 3 * width + 1;
    let mut raw = Vec::with_capacity(stride * height);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&rgb.get(y * width + x).copied().unwrap_or([0, 0, 0]));
        }
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib(&raw, stride));
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_published_values() {
        // check values of the CRC-32/ISO-HDLC and Adler-32 catalogues for "123456789"
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
