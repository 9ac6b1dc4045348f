//! Optimal Huffman tables for the baseline JPEGs the encoder writes, computed without
//! libjpeg-turbo's optimisation pass.
//!
//! libjpeg-turbo gathers the symbol statistics for its optimised tables with a scalar loop
//! over all 64 coefficients of every block, which cost more than the rest of the encode
//! (a third of the daemon's CPU on 2-megapixel photos). Instead the encoder writes the
//! standard tables with its SIMD entropy coder, and [`optimize`] rewrites that scan: it
//! reads the symbols back (only the nonzero coefficients have any), counts them, builds
//! the optimal length-limited tables of ITU T.81 Annex K.2 and writes the same symbols
//! and extra bits with them. Lossless: the coefficients, hence the pixels, are unchanged.
//! Only the layout this encoder writes is taken (one interleaved baseline scan, 8-bit,
//! no restart intervals); anything else gives `None` and the caller lets libjpeg-turbo
//! optimise instead.

/// A Huffman table as a DHT segment stores it: codes per length 1..=16, then symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    counts: [u8; 16],
    symbols: Vec<u8>,
}

/// Canonical decoding of one table into tokens: a lookup by the next [`FAST_BITS`] bits,
/// then code lengths up to 16.
struct Decoder {
    /// By the next `FAST_BITS` bits: the token's table, symbol and extra-bit count (as
    /// [`token`] places them), with the code length in bits 0..5 and the code length
    /// plus the extra bits in bits 5..10; 0 when the code is longer.
    fast: Box<[u32; 1 << FAST_BITS]>,
    /// Per length 1..=16: the largest code of that length + 1 (left-aligned in
    /// `length` bits), and the index of its first symbol minus its first code.
    max_code: [u32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
    /// Table index (0..4 DC, 4..8 AC).
    table: usize,
}

const FAST_BITS: u32 = 11;

impl Decoder {
    /// `None` for a table that is no prefix code or holds a symbol baseline JPEG cannot
    /// have (a DC size over 11; an AC size over 10, or size 0 other than EOB and ZRL).
    fn new(table: &Table, index: usize) -> Option<Decoder> {
        let mut decoder = Decoder {
            fast: Box::new([0; 1 << FAST_BITS]),
            max_code: [0; 17],
            offset: [0; 17],
            symbols: table.symbols.clone(),
            table: index,
        };
        let mut code = 0u32;
        let mut at = 0usize;
        for length in 1..=16u32 {
            let n = u32::from(table.counts[length as usize - 1]);
            decoder.offset[length as usize] = at as i32 - code as i32;
            for _ in 0..n {
                let entry = decoder.entry(*table.symbols.get(at)?, length)?;
                if length <= FAST_BITS {
                    let shift = FAST_BITS - length;
                    let first = (code << shift) as usize;
                    decoder.fast[first..first + (1 << shift)].fill(entry);
                }
                code += 1;
                at += 1;
            }
            // A code space overfull at this length is not a prefix code.
            if code > 1 << length {
                return None;
            }
            decoder.max_code[length as usize] = code;
            code <<= 1;
        }
        Some(decoder)
    }

    /// The lookup entry of `symbol` with a code of `length` bits.
    fn entry(&self, symbol: u8, length: u32) -> Option<u32> {
        let size = if self.table < 4 {
            (symbol <= 11).then_some(symbol)?
        } else {
            let size = symbol & 15;
            (size <= 10 && (size != 0 || symbol == 0 || symbol == 0xF0)).then_some(size)?
        };
        let total = length + u32::from(size);
        Some(token(self.table, symbol, size, 0) | total << 5 | length)
    }

    /// The entry of a code longer than `FAST_BITS`, from the next 16 bits.
    #[cold]
    fn slow(&self, acc: u64) -> Option<u32> {
        let peek = (acc >> 48) as u32;
        for length in FAST_BITS + 1..=16 {
            let code = peek >> (16 - length);
            if code < self.max_code[length as usize] {
                let index = self.offset[length as usize] + code as i32;
                let symbol = *self.symbols.get(usize::try_from(index).ok()?)?;
                return self.entry(symbol, length);
            }
        }
        None
    }
}

/// Reads the destuffed entropy-coded bytes, MSB first; past the end it reads 1 bits (the
/// padding) and counts how many, so an overrun is seen.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    count: u32,
    overrun: u32,
}

impl Bits<'_> {
    /// Tops the buffer up to at least 56 bits.
    #[inline]
    fn refill(&mut self) {
        if let Some(next) = self.data.get(self.pos..self.pos + 8) {
            // Eight bytes at once; the bits past `count` are the next byte's, so or-ing
            // them in again on the next refill changes nothing.
            let word = u64::from_be_bytes(next.try_into().unwrap_or_default());
            self.acc |= word >> self.count;
            let bytes = (63 - self.count) >> 3;
            self.pos += bytes as usize;
            self.count += 8 * bytes;
            return;
        }
        (self.pos, self.acc, self.count, self.overrun) =
            refill_at_end(self.data, self.pos, self.acc, self.count, self.overrun);
    }

    /// The next symbol and its extra bits, as a token. A code and its extra bits take
    /// at most 16 + 11 bits, so one refill serves both.
    #[inline(always)]
    fn token(&mut self, d: &Decoder) -> Option<u32> {
        if self.count < 32 {
            self.refill();
        }
        let mut entry = d.fast[(self.acc >> (64 - FAST_BITS)) as usize];
        if entry == 0 {
            entry = d.slow(self.acc)?;
        }
        let total = entry >> 5 & 31;
        let size = entry >> 11 & 15;
        let extra = (self.acc >> (64 - total)) as u32 & ((1 << size) - 1);
        self.acc <<= total;
        self.count -= total;
        Some(entry & !0x7FF | extra)
    }
}

/// The byte-at-a-time refill of the last bytes and the padding past them; by value, so
/// that the reader's state stays in registers.
#[cold]
fn refill_at_end(
    data: &[u8],
    mut pos: usize,
    mut acc: u64,
    mut count: u32,
    mut overrun: u32,
) -> (usize, u64, u32, u32) {
    while count <= 56 {
        let byte = match data.get(pos) {
            Some(&b) => {
                pos += 1;
                b
            }
            None => {
                overrun += 8;
                0xFF
            }
        };
        acc |= u64::from(byte) << (56 - count);
        count += 8;
    }
    (pos, acc, count, overrun)
}

/// One symbol to write again, packed in a `u32`: its table (0..8: DC then AC tables by
/// id) in bits 23..26, the symbol in 15..23, the count of extra bits in 11..15 and the
/// extra bits in 0..11. Bits 15..26 index the per-table arrays of 256 symbols.
#[inline]
fn token(table: usize, symbol: u8, extra_len: u8, extra: u32) -> u32 {
    (table as u32) << 23 | u32::from(symbol) << 15 | u32::from(extra_len) << 11 | extra
}

struct Header<'a> {
    /// Everything before the entropy data with the DHT segments left out, and where
    /// the SOS segment starts in it (the new tables go just before it).
    head: Vec<u8>,
    sos_at: usize,
    tables: [Option<Table>; 8],
    /// (h, v, dc table, ac table) per scan component, in scan order.
    components: Vec<(u8, u8, usize, usize)>,
    width: u32,
    height: u32,
    entropy: &'a [u8],
}

/// The frame header: width, height, and (id, h, v) per component.
type Frame = (u32, u32, Vec<(u8, u8, u8)>);

fn segment_len(bytes: &[u8], at: usize) -> Option<usize> {
    let hi = *bytes.get(at + 2)? as usize;
    let lo = *bytes.get(at + 3)? as usize;
    let len = hi << 8 | lo;
    (len >= 2 && at + 2 + len <= bytes.len()).then_some(len)
}

fn parse(jpeg: &[u8]) -> Option<Header<'_>> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut head = vec![0xFF, 0xD8];
    let mut tables: [Option<Table>; 8] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut at = 2;
    loop {
        if *jpeg.get(at)? != 0xFF {
            return None;
        }
        let marker = *jpeg.get(at + 1)?;
        let len = segment_len(jpeg, at)?;
        let body = &jpeg[at + 4..at + 2 + len];
        match marker {
            0xC4 => {
                let mut rest = body;
                while !rest.is_empty() {
                    let class_id = rest[0];
                    let (class, id) = (class_id >> 4, class_id & 15);
                    if class > 1 || id > 3 {
                        return None;
                    }
                    let counts: [u8; 16] = rest.get(1..17)?.try_into().ok()?;
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    let symbols = rest.get(17..17 + n)?.to_vec();
                    tables[usize::from(class * 4 + id)] = Some(Table { counts, symbols });
                    rest = &rest[17 + n..];
                }
            }
            // Baseline 8-bit only.
            0xC0 => {
                if *body.first()? != 8 {
                    return None;
                }
                let height = u32::from(*body.get(1)?) << 8 | u32::from(*body.get(2)?);
                let width = u32::from(*body.get(3)?) << 8 | u32::from(*body.get(4)?);
                let n = usize::from(*body.get(5)?);
                let mut components = Vec::with_capacity(n);
                for c in 0..n {
                    let part = body.get(6 + 3 * c..9 + 3 * c)?;
                    components.push((part[0], part[1] >> 4, part[1] & 15));
                }
                frame = Some((width, height, components));
                head.extend_from_slice(&jpeg[at..at + 2 + len]);
            }
            0xC1..=0xCF => return None,
            // A restart interval other than 0.
            0xDD if body.get(..2)? != [0, 0] => return None,
            0xDA => {
                let (width, height, frame_components) = frame?;
                let n = usize::from(*body.first()?);
                if n != frame_components.len() || width == 0 || height == 0 {
                    return None;
                }
                let mut components = Vec::with_capacity(n);
                for c in 0..n {
                    let part = body.get(1 + 2 * c..3 + 2 * c)?;
                    let &(_, h, v) = frame_components.iter().find(|fc| fc.0 == part[0])?;
                    let (dc, ac) = (usize::from(part[1] >> 4), usize::from(part[1] & 15));
                    if dc > 3 || ac > 3 || !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                        return None;
                    }
                    components.push((h, v, dc, 4 + ac));
                }
                // Spectral selection 0..63, no successive approximation; a single
                // component scan only for a 1x1 component (its MCU is then one block).
                if body.get(1 + 2 * n..4 + 2 * n)? != [0, 63, 0]
                    || (n == 1 && (components[0].0, components[0].1) != (1, 1))
                {
                    return None;
                }
                let sos_at = head.len();
                head.extend_from_slice(&jpeg[at..at + 2 + len]);
                return Some(Header {
                    head,
                    sos_at,
                    tables,
                    components,
                    width,
                    height,
                    entropy: &jpeg[at + 2 + len..],
                });
            }
            _ => head.extend_from_slice(&jpeg[at..at + 2 + len]),
        }
        at += 2 + len;
    }
}

/// The entropy-coded bytes with the stuffed zeros taken out; `None` unless they end at
/// EOI (a restart or other marker inside means another layout).
fn destuff(entropy: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(entropy.len());
    let mut rest = entropy;
    loop {
        let ff = rest.iter().position(|&b| b == 0xFF)?;
        out.extend_from_slice(&rest[..ff]);
        match rest.get(ff + 1)? {
            0x00 => {
                out.push(0xFF);
                rest = &rest[ff + 2..];
            }
            0xD9 => return Some(out),
            _ => return None,
        }
    }
}

/// Symbol counts per table (index: table << 8 | symbol).
type Counts = [u32; 8 * 256];

/// The symbols of the scan as tokens, counted per table (`None` if they do not decode
/// exactly).
#[inline(never)]
fn read_scan(header: &Header<'_>, data: &[u8]) -> Option<(Vec<u32>, Box<Counts>)> {
    let mut decoders: Vec<Option<Decoder>> = Vec::with_capacity(8);
    for (index, table) in header.tables.iter().enumerate() {
        decoders.push(match table {
            Some(t) => Some(Decoder::new(t, index)?),
            None => None,
        });
    }
    let hmax = u32::from(header.components.iter().map(|c| c.0).max()?);
    let vmax = u32::from(header.components.iter().map(|c| c.1).max()?);
    let mcus =
        u64::from(header.width.div_ceil(8 * hmax)) * u64::from(header.height.div_ceil(8 * vmax));
    // Per scan component: blocks per MCU and its two decoders.
    let mut components = Vec::with_capacity(header.components.len());
    for &(h, v, dc, ac) in &header.components {
        let (dc, ac) = (decoders[dc].as_ref()?, decoders[ac].as_ref()?);
        components.push((u32::from(h) * u32::from(v), dc, ac));
    }
    let per_mcu: u64 = components.iter().map(|c| u64::from(c.0)).sum();
    // Room for a DC and a few AC symbols per block; more grows the vector.
    let mut tokens = Vec::with_capacity((mcus * per_mcu * 8) as usize);
    let mut counts: Box<Counts> = Box::new([0; 8 * 256]);
    let mut bits = Bits {
        data,
        pos: 0,
        acc: 0,
        count: 0,
        overrun: 0,
    };
    for _ in 0..mcus {
        for &(blocks, dc, ac) in &components {
            for _ in 0..blocks {
                let t = bits.token(dc)?;
                counts[(t >> 15) as usize & 0x7FF] += 1;
                tokens.push(t);
                let mut k = 1u32;
                loop {
                    let t = bits.token(ac)?;
                    counts[(t >> 15) as usize & 0x7FF] += 1;
                    tokens.push(t);
                    let symbol = t >> 15 & 0xFF;
                    // End of block (the decoder takes no other symbol of size 0 but
                    // ZRL, a run of 16 zeros).
                    if symbol == 0 {
                        break;
                    }
                    k += (symbol >> 4) + 1;
                    if k >= 64 {
                        if k > 64 {
                            return None;
                        }
                        break;
                    }
                }
            }
        }
    }
    // At most the padding of the last byte may have been read past the data; fewer
    // than 8 bits of it may be left over.
    let left = u64::from(bits.count) + 8 * (data.len() - bits.pos) as u64;
    let overrun = u64::from(bits.overrun);
    if overrun > left || left - overrun >= 8 {
        return None;
    }
    Some((tokens, counts))
}

/// The optimal table for these symbol counts, code lengths limited to 16 and the
/// all-ones code left unused (ITU T.81 Annex K.2 and K.3).
fn optimal_table(freq: &[u32; 257]) -> Option<Table> {
    let mut freq: Vec<u64> = freq.iter().map(|&f| u64::from(f)).collect();
    // A reserved symbol with the lowest count takes the all-ones code.
    freq[256] = 1;
    let mut size = [0u32; 257];
    let mut next: [Option<usize>; 257] = [None; 257];
    loop {
        // The two least frequent symbols (on ties, the higher one).
        let mut least: Option<usize> = None;
        for i in 0..257 {
            if freq[i] > 0 && least.is_none_or(|l| freq[i] <= freq[l]) {
                least = Some(i);
            }
        }
        let mut second: Option<usize> = None;
        for i in 0..257 {
            if freq[i] > 0 && Some(i) != least && second.is_none_or(|s| freq[i] <= freq[s]) {
                second = Some(i);
            }
        }
        let (Some(c1), Some(c2)) = (least, second) else {
            break;
        };
        freq[c1] += freq[c2];
        freq[c2] = 0;
        let mut c = c1;
        size[c] += 1;
        while let Some(n) = next[c] {
            c = n;
            size[c] += 1;
        }
        next[c] = Some(c2);
        let mut c = c2;
        size[c] += 1;
        while let Some(n) = next[c] {
            c = n;
            size[c] += 1;
        }
    }
    let mut bits = [0u32; 33];
    for &s in &size {
        // Deeper than 32 takes counts in a Fibonacci series beyond any real scan.
        if s > 32 {
            return None;
        }
        if s > 0 {
            bits[s as usize] += 1;
        }
    }
    // Lengths over 16: a pair of codes at the longest length becomes one a bit shorter
    // and one moved under a shorter code split in two.
    for i in (17..=32).rev() {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
    }
    // Give back the reserved code (the longest).
    let mut i = 16;
    while bits[i] == 0 {
        i -= 1;
    }
    bits[i] -= 1;
    let mut counts = [0u8; 16];
    for (l, c) in counts.iter_mut().enumerate() {
        *c = bits[l + 1] as u8;
    }
    // Symbols by code length, then by value (the reserved one excluded).
    let mut symbols = Vec::new();
    for length in 1..=32 {
        for (symbol, &s) in size[..256].iter().enumerate() {
            if s == length {
                symbols.push(symbol as u8);
            }
        }
    }
    Some(Table { counts, symbols })
}

/// (code, length) per symbol of a table.
fn codes(table: &Table) -> [(u32, u32); 256] {
    let mut out = [(0u32, 0u32); 256];
    let mut code = 0u32;
    let mut index = 0;
    for length in 1..=16u32 {
        for _ in 0..table.counts[length as usize - 1] {
            out[usize::from(table.symbols[index])] = (code, length);
            code += 1;
            index += 1;
        }
        code <<= 1;
    }
    out
}

/// Appends the scan: each token's symbol in its table's new code, then its extra bits,
/// MSB first, whole 32-bit words at a time, the 0xFF bytes stuffed, the last byte
/// padded with ones. `codes`: by table and symbol, code << 8 | length. (Storing every
/// word and moving on only when full measured slower than this branch.)
#[inline(never)]
fn write_scan(out: &mut Vec<u8>, tokens: &[u32], codes: &[u32; 8 * 256]) {
    let (mut acc, mut count) = (0u64, 0u32);
    for &t in tokens {
        let entry = codes[(t >> 15) as usize & 0x7FF];
        let extra_len = t >> 11 & 15;
        acc =
            acc << ((entry & 0xFF) + extra_len) | u64::from((entry >> 8) << extra_len | t & 0x7FF);
        count += (entry & 0xFF) + extra_len;
        if count >= 32 {
            count -= 32;
            let word = (acc >> count) as u32;
            // Any 0xFF byte in the word (a zero byte in its complement)?
            let inverse = !word;
            if inverse.wrapping_sub(0x0101_0101) & !inverse & 0x8080_8080 == 0 {
                out.extend_from_slice(&word.to_be_bytes());
            } else {
                push_stuffed(out, &word.to_be_bytes());
            }
        }
    }
    let pad = (8 - count % 8) % 8;
    acc = acc << pad | ((1u64 << pad) - 1);
    count += pad;
    let tail: Vec<u8> = (0..count / 8)
        .rev()
        .map(|i| (acc >> (8 * i)) as u8)
        .collect();
    push_stuffed(out, &tail);
}

#[cold]
fn push_stuffed(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        out.push(byte);
        if byte == 0xFF {
            out.push(0);
        }
    }
}

/// `jpeg` (a baseline JPEG as the encoder writes it, with any Huffman tables) with
/// optimal Huffman tables and the same coefficients; `None` for any other layout.
pub fn optimize(jpeg: &[u8]) -> Option<Vec<u8>> {
    let header = parse(jpeg)?;
    let data = destuff(header.entropy)?;
    let (tokens, counts) = read_scan(&header, &data)?;
    let mut used = [false; 8];
    for &(_, _, dc, ac) in &header.components {
        used[dc] = true;
        used[ac] = true;
    }
    let mut dht = Vec::new();
    let mut table_codes = Box::new([0u32; 8 * 256]);
    for t in (0..8).filter(|&t| used[t]) {
        let mut freq = [0u32; 257];
        freq[..256].copy_from_slice(&counts[t * 256..(t + 1) * 256]);
        let table = optimal_table(&freq)?;
        for (symbol, (code, length)) in codes(&table).into_iter().enumerate() {
            table_codes[t * 256 + symbol] = code << 8 | length;
        }
        dht.push((((t / 4) << 4) | (t % 4)) as u8);
        dht.extend_from_slice(&table.counts);
        dht.extend_from_slice(&table.symbols);
    }
    let mut out = Vec::with_capacity(jpeg.len() + jpeg.len() / 16);
    out.extend_from_slice(&header.head[..header.sos_at]);
    let len = dht.len() + 2;
    out.extend_from_slice(&[0xFF, 0xC4, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(&dht);
    out.extend_from_slice(&header.head[header.sos_at..]);
    write_scan(&mut out, &tokens, &table_codes);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

    /// A photo-like test picture: gradients, texture and a sharp edge.
    fn picture(w: usize, h: usize, channels: usize) -> Vec<u8> {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut data = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                for c in 0..channels {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let edge = if x > w / 2 { 90 } else { 0 };
                    let v =
                        (x * 255 / w + y * (c + 1) * 97 / h + edge + (seed % 24) as usize) % 256;
                    data.push(v as u8);
                }
            }
        }
        data
    }

    fn encode(w: usize, h: usize, gray: bool, subsamp: Subsamp, optimize: bool) -> Vec<u8> {
        let channels = if gray { 1 } else { 3 };
        let pixels = picture(w, h, channels);
        let mut c = Compressor::new().unwrap();
        c.set_quality(82).unwrap();
        c.set_subsamp(if gray { Subsamp::Gray } else { subsamp })
            .unwrap();
        c.set_optimize(optimize).unwrap();
        let format = if gray {
            PixelFormat::GRAY
        } else {
            PixelFormat::RGB
        };
        c.compress_to_vec(Image {
            pixels: pixels.as_slice(),
            width: w,
            pitch: w * channels,
            height: h,
            format,
        })
        .unwrap()
    }

    fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let image = turbojpeg::decompress(jpeg, PixelFormat::RGB).unwrap();
        (image.width, image.height, image.pixels)
    }

    #[test]
    fn same_pixels_and_the_size_of_libjpeg_turbos_optimised_tables() {
        for (w, h, gray, subsamp) in [
            (640, 480, false, Subsamp::Sub2x2),
            (333, 217, false, Subsamp::Sub2x2),
            (97, 61, false, Subsamp::None),
            (250, 131, false, Subsamp::Sub2x1),
            (129, 77, true, Subsamp::Gray),
            (7, 5, false, Subsamp::Sub2x2),
        ] {
            let standard = encode(w, h, gray, subsamp, false);
            let theirs = encode(w, h, gray, subsamp, true);
            let ours = optimize(&standard).unwrap_or_else(|| panic!("{w}x{h} {subsamp:?}"));
            assert_eq!(decode(&ours), decode(&standard), "{w}x{h} {subsamp:?}");
            // The same optimal tables as libjpeg-turbo's, and byte for byte the same
            // scan; the file is smaller by the 4-byte headers of the DHT segments that
            // libjpeg-turbo writes one per table (4 tables, 2 for gray), where one
            // segment holds them all here.
            let tables = if gray { 2 } else { 4 };
            assert_eq!(
                theirs.len() - ours.len(),
                4 * (tables - 1),
                "{w}x{h} {subsamp:?}: ours {}, libjpeg-turbo {}",
                ours.len(),
                theirs.len()
            );
            let scan = |j: &[u8]| {
                let at = j.windows(2).rposition(|p| p == [0xFF, 0xDA]).unwrap();
                j[at..].to_vec()
            };
            assert_eq!(scan(&ours), scan(&theirs), "{w}x{h} {subsamp:?}");
            assert!(ours.len() < standard.len(), "{w}x{h} {subsamp:?}");
            // Already optimal tables stay optimal.
            assert_eq!(optimize(&ours).map(|o| o.len()), Some(ours.len()));
        }
    }

    #[test]
    fn other_layouts_and_broken_streams_are_left_to_libjpeg_turbo() {
        let standard = encode(160, 120, false, Subsamp::Sub2x2, false);
        let scan = standard
            .windows(2)
            .rposition(|p| p == [0xFF, 0xDA])
            .unwrap();
        for cut in [
            0,
            1,
            2,
            20,
            scan,
            scan + 20,
            standard.len() / 2,
            standard.len() - 2,
        ] {
            assert!(optimize(&standard[..cut]).is_none(), "cut at {cut}");
        }
        // Trailing garbage in the scan: the symbols no longer end where the data does.
        let mut longer = standard[..standard.len() - 2].to_vec();
        longer.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
        assert!(optimize(&longer).is_none());
        // Progressive.
        let mut progressive = standard.clone();
        let sof = progressive
            .windows(2)
            .position(|p| p == [0xFF, 0xC0])
            .unwrap();
        progressive[sof + 1] = 0xC2;
        assert!(optimize(&progressive).is_none());
        // A table with a symbol baseline JPEG cannot hold (a DC size of 12).
        let mut odd_table = standard.clone();
        let dht = odd_table
            .windows(5)
            .position(|p| p[..2] == [0xFF, 0xC4] && p[4] == 0x00)
            .unwrap();
        let symbols: usize = odd_table[dht + 5..dht + 21]
            .iter()
            .map(|&c| usize::from(c))
            .sum();
        odd_table[dht + 20 + symbols] = 12;
        assert!(optimize(&odd_table).is_none());
        // Flipped bits never panic.
        for i in (scan..standard.len() - 2).step_by(37) {
            let mut broken = standard.clone();
            broken[i] ^= 0x5A;
            let _ = optimize(&broken);
        }
    }

    #[test]
    fn optimal_tables_are_prefix_codes_within_16_bits() {
        // Counts spread over nine orders of magnitude force lengths over 16.
        let mut freq = [0u32; 257];
        for (i, f) in freq.iter_mut().take(40).enumerate() {
            *f = 1 << (i % 24);
        }
        let table = optimal_table(&freq).unwrap();
        assert_eq!(table.symbols.len(), 40);
        let kraft: f64 = (1..=16)
            .map(|l| f64::from(table.counts[l - 1]) / f64::from(1u32 << l))
            .sum();
        assert!(kraft < 1.0, "the all-ones code stays free: {kraft}");
        let one = optimal_table(&{
            let mut f = [0u32; 257];
            f[0] = 5;
            f
        })
        .unwrap();
        assert_eq!((one.counts[0], one.symbols.clone()), (1, vec![0]));
    }
}
