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

/// Canonical decoding of one table: a 10-bit lookup, then code lengths 11..=16.
struct Decoder {
    /// `length << 8 | symbol` by the next 10 bits; 0 when the code is longer.
    fast: Vec<u16>,
    /// Per length 1..=16: the largest code of that length + 1 (left-aligned in
    /// `length` bits), and the index of its first symbol minus its first code.
    max_code: [u32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const FAST_BITS: u32 = 10;

impl Decoder {
    fn new(table: &Table) -> Option<Decoder> {
        let mut fast = vec![0u16; 1 << FAST_BITS];
        let mut max_code = [0u32; 17];
        let mut offset = [0i32; 17];
        let mut code = 0u32;
        let mut index = 0usize;
        for length in 1..=16u32 {
            let n = u32::from(table.counts[length as usize - 1]);
            offset[length as usize] = index as i32 - code as i32;
            for _ in 0..n {
                let symbol = *table.symbols.get(index)?;
                if length <= FAST_BITS {
                    let shift = FAST_BITS - length;
                    let first = (code << shift) as usize;
                    for slot in &mut fast[first..first + (1 << shift)] {
                        *slot = (length as u16) << 8 | u16::from(symbol);
                    }
                }
                code += 1;
                index += 1;
            }
            // A code space overfull at this length is not a prefix code.
            if code > 1 << length {
                return None;
            }
            max_code[length as usize] = code;
            code <<= 1;
        }
        Some(Decoder {
            fast,
            max_code,
            offset,
            symbols: table.symbols.clone(),
        })
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
        while self.count <= 56 {
            let byte = match self.data.get(self.pos) {
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    self.overrun += 8;
                    0xFF
                }
            };
            self.acc |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.refill();
        }
        let value = (self.acc >> (64 - n)) as u32;
        self.acc <<= n;
        self.count -= n;
        value
    }

    #[inline]
    fn symbol(&mut self, d: &Decoder) -> Option<u8> {
        if self.count < 16 {
            self.refill();
        }
        let entry = d.fast[(self.acc >> (64 - FAST_BITS)) as usize];
        if entry != 0 {
            let length = u32::from(entry >> 8);
            self.acc <<= length;
            self.count -= length;
            return Some(entry as u8);
        }
        let peek = (self.acc >> 48) as u32;
        for length in FAST_BITS + 1..=16 {
            let code = peek >> (16 - length);
            if code < d.max_code[length as usize] {
                self.acc <<= length;
                self.count -= length;
                let index = d.offset[length as usize] + code as i32;
                return d.symbols.get(usize::try_from(index).ok()?).copied();
            }
        }
        None
    }
}

/// One symbol to write again, packed in a `u32`: its table (0..8: DC then AC tables by
/// id) in bits 23..26, the symbol in 15..23, the count of extra bits in 11..15 and the
/// extra bits in 0..11.
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

/// The symbols of the scan, counted per table (`None` if they do not decode exactly).
fn read_scan(header: &Header<'_>, data: &[u8]) -> Option<(Vec<u32>, [[u32; 257]; 8])> {
    let mut decoders: Vec<Option<Decoder>> = Vec::with_capacity(8);
    for table in &header.tables {
        decoders.push(match table {
            Some(t) => Some(Decoder::new(t)?),
            None => None,
        });
    }
    let hmax = u32::from(header.components.iter().map(|c| c.0).max()?);
    let vmax = u32::from(header.components.iter().map(|c| c.1).max()?);
    let mcus =
        u64::from(header.width.div_ceil(8 * hmax)) * u64::from(header.height.div_ceil(8 * vmax));
    let per_mcu: u64 = header
        .components
        .iter()
        .map(|c| u64::from(c.0) * u64::from(c.1))
        .sum();
    let mut tokens = Vec::with_capacity((mcus * per_mcu * 8) as usize);
    let mut freq = [[0u32; 257]; 8];
    let mut bits = Bits {
        data,
        pos: 0,
        acc: 0,
        count: 0,
        overrun: 0,
    };
    for _ in 0..mcus {
        for &(h, v, dc, ac) in &header.components {
            let (dc_decoder, ac_decoder) = (decoders[dc].as_ref()?, decoders[ac].as_ref()?);
            for _ in 0..u32::from(h) * u32::from(v) {
                let size = bits.symbol(dc_decoder)?;
                if size > 11 {
                    return None;
                }
                let extra = bits.take(u32::from(size));
                freq[dc][usize::from(size)] += 1;
                tokens.push(token(dc, size, size, extra));
                let mut k = 1u32;
                while k < 64 {
                    let symbol = bits.symbol(ac_decoder)?;
                    let (run, size) = (u32::from(symbol >> 4), symbol & 15);
                    if size == 0 && run != 15 {
                        // End of block.
                        freq[ac][usize::from(symbol)] += 1;
                        tokens.push(token(ac, symbol, 0, 0));
                        break;
                    }
                    if size > 10 {
                        return None;
                    }
                    k += run + 1;
                    if k > 64 {
                        return None;
                    }
                    let extra = bits.take(u32::from(size));
                    freq[ac][usize::from(symbol)] += 1;
                    tokens.push(token(ac, symbol, size, extra));
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
    Some((tokens, freq))
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

/// Writes bits MSB first with the 0xFF bytes stuffed.
struct Writer {
    out: Vec<u8>,
    acc: u64,
    count: u32,
}

impl Writer {
    /// Appends `length` (at most 32) bits; whole 32-bit words go out at once.
    #[inline]
    fn put(&mut self, value: u32, length: u32) {
        self.acc = self.acc << length | u64::from(value);
        self.count += length;
        if self.count >= 32 {
            self.count -= 32;
            let word = (self.acc >> self.count) as u32;
            // Any 0xFF byte in the word (a zero byte in its complement)?
            let inverse = !word;
            if inverse.wrapping_sub(0x0101_0101) & !inverse & 0x8080_8080 == 0 {
                self.out.extend_from_slice(&word.to_be_bytes());
            } else {
                for byte in word.to_be_bytes() {
                    self.out.push(byte);
                    if byte == 0xFF {
                        self.out.push(0);
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        // The last bits padded with ones to a whole byte.
        let pad = (8 - self.count % 8) % 8;
        self.acc = self.acc << pad | ((1u64 << pad) - 1);
        self.count += pad;
        while self.count > 0 {
            self.count -= 8;
            let byte = (self.acc >> self.count) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.out
    }
}

/// `jpeg` (a baseline JPEG as the encoder writes it, with any Huffman tables) with
/// optimal Huffman tables and the same coefficients; `None` for any other layout.
pub fn optimize(jpeg: &[u8]) -> Option<Vec<u8>> {
    let header = parse(jpeg)?;
    let data = destuff(header.entropy)?;
    let (tokens, freq) = read_scan(&header, &data)?;
    let mut used = [false; 8];
    for &(_, _, dc, ac) in &header.components {
        used[dc] = true;
        used[ac] = true;
    }
    let mut dht = Vec::new();
    // By table and symbol: code << 8 | length.
    let mut table_codes = vec![0u32; 8 * 256];
    for (t, f) in freq.iter().enumerate().filter(|(t, _)| used[*t]) {
        let table = optimal_table(f)?;
        for (symbol, (code, length)) in codes(&table).into_iter().enumerate() {
            table_codes[t * 256 + symbol] = code << 8 | length;
        }
        dht.push((((t / 4) << 4) | (t % 4)) as u8);
        dht.extend_from_slice(&table.counts);
        dht.extend_from_slice(&table.symbols);
    }
    let mut out = Vec::with_capacity(jpeg.len());
    out.extend_from_slice(&header.head[..header.sos_at]);
    let len = dht.len() + 2;
    out.extend_from_slice(&[0xFF, 0xC4, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(&dht);
    out.extend_from_slice(&header.head[header.sos_at..]);
    let mut writer = Writer {
        out,
        acc: 0,
        count: 0,
    };
    for &t in &tokens {
        let entry = table_codes[(t >> 15) as usize];
        let extra_len = t >> 11 & 15;
        // A code plus its extra bits: at most 16 + 11 bits.
        writer.put(
            (entry >> 8) << extra_len | t & 0x7FF,
            (entry & 0xFF) + extra_len,
        );
    }
    let mut out = writer.finish();
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
