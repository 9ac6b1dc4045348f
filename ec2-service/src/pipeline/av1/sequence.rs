//! The AV1 sequence header of an AVIF item, read before anything is decoded: the largest
//! frame its stream can hold. A frame may declare any size its header's bit widths
//! allow, so that (not the maximum it states) bounds what the decoder would allocate.

/// What a sequence header says about frame sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `max_frame_width_minus_1 + 1`, `max_frame_height_minus_1 + 1`.
    pub max_width: u32,
    pub max_height: u32,
    /// Bits of the frame width and height fields (`frame_width_bits_minus_1 + 1`, ...).
    pub width_bits: u8,
    pub height_bits: u8,
    /// A reduced still-picture header: every frame is exactly the maximum size.
    pub reduced: bool,
}

impl SequenceHeader {
    /// The most pixels a frame of this stream can have.
    pub fn largest_frame(&self) -> u64 {
        if self.reduced {
            u64::from(self.max_width) * u64::from(self.max_height)
        } else {
            (1u64 << self.width_bits) * (1u64 << self.height_bits)
        }
    }
}

const OBU_SEQUENCE_HEADER: u8 = 1;

/// Finds and reads the sequence header OBU among the OBUs of an item's data.
pub fn read(obus: &[u8]) -> Result<SequenceHeader, String> {
    let mut at = 0usize;
    while at < obus.len() {
        let header = obus[at];
        if header & 0x80 != 0 {
            return Err("OBU forbidden bit set".into());
        }
        let kind = (header >> 3) & 0x0F;
        let extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        at += 1 + usize::from(extension);
        let size = if has_size {
            let (size, used) = leb128(obus.get(at..).unwrap_or_default())?;
            at += used;
            usize::try_from(size).map_err(|_| "OBU size overflows")?
        } else {
            obus.len().saturating_sub(at)
        };
        let end = at
            .checked_add(size)
            .filter(|&e| e <= obus.len())
            .ok_or("OBU runs past the item's data")?;
        if kind == OBU_SEQUENCE_HEADER {
            return parse(&obus[at..end]);
        }
        at = end;
    }
    Err("no AV1 sequence header in the item's data".into())
}

fn leb128(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("bad OBU size field".into())
}

/// Reads bits most significant first.
struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<bool, String> {
        let byte = self
            .bytes
            .get(self.at / 8)
            .ok_or("sequence header is truncated")?;
        let bit = (byte >> (7 - self.at % 8)) & 1 == 1;
        self.at += 1;
        Ok(bit)
    }

    fn bits(&mut self, n: u8) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// `uvlc()`: leading zeros, then as many value bits.
    fn uvlc(&mut self) -> Result<(), String> {
        let mut zeros = 0u8;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Ok(());
            }
        }
        self.bits(zeros).map(|_| ())
    }
}

/// `sequence_header_obu()` of the AV1 specification (5.5), as far as the frame sizes.
fn parse(payload: &[u8]) -> Result<SequenceHeader, String> {
    let mut r = Bits {
        bytes: payload,
        at: 0,
    };
    let _profile = r.bits(3)?;
    let _still_picture = r.bit()?;
    let reduced = r.bit()?;
    if reduced {
        let _level = r.bits(5)?;
    } else {
        let timing_info = r.bit()?;
        let mut decoder_model = false;
        let mut buffer_delay_bits = 0u8;
        if timing_info {
            let _units_in_tick = r.bits(32)?;
            let _time_scale = r.bits(32)?;
            if r.bit()? {
                r.uvlc()?;
            }
            decoder_model = r.bit()?;
            if decoder_model {
                buffer_delay_bits = r.bits(5)? as u8 + 1;
                let _units_in_decoding_tick = r.bits(32)?;
                let _removal_time_bits = r.bits(5)?;
                let _presentation_time_bits = r.bits(5)?;
            }
        }
        let initial_display_delay = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            let _idc = r.bits(12)?;
            let level = r.bits(5)?;
            if level > 7 {
                let _tier = r.bit()?;
            }
            if decoder_model && r.bit()? {
                let _decoder_delay = r.bits(buffer_delay_bits)?;
                let _encoder_delay = r.bits(buffer_delay_bits)?;
                let _low_delay = r.bit()?;
            }
            if initial_display_delay && r.bit()? {
                let _delay = r.bits(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? as u8 + 1;
    let height_bits = r.bits(4)? as u8 + 1;
    let max_width = r.bits(width_bits)? + 1;
    let max_height = r.bits(height_bits)? + 1;
    Ok(SequenceHeader {
        max_width,
        max_height,
        width_bits,
        height_bits,
        reduced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits most significant first.
    #[derive(Default)]
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn put(&mut self, value: u32, n: u8) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((value >> i) & 1 == 1);
            }
            self
        }

        fn bytes(&self) -> Vec<u8> {
            self.bits
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |b, (i, &v)| b | (u8::from(v) << (7 - i)))
                })
                .collect()
        }
    }

    fn obu(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(kind << 3) | 0x02, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_reduced_still_picture_header_gives_its_exact_size() {
        // profile 0, still, reduced, level 8; 11 and 10 bits; 1999x1000
        let mut w = Writer::default();
        w.put(0, 3).put(1, 1).put(1, 1).put(8, 5);
        w.put(10, 4).put(9, 4).put(1998, 11).put(999, 10);
        let data = [obu(2, &[]), obu(OBU_SEQUENCE_HEADER, &w.bytes())].concat();
        let h = read(&data).unwrap();
        assert_eq!((h.max_width, h.max_height, h.reduced), (1999, 1000, true));
        assert_eq!(h.largest_frame(), 1999 * 1000);
    }

    #[test]
    fn a_full_header_is_bounded_by_its_bit_widths() {
        // timing info with a decoder model, two operating points, then 16-bit widths.
        let mut w = Writer::default();
        w.put(0, 3).put(0, 1).put(0, 1);
        w.put(1, 1).put(1, 32).put(25, 32).put(1, 1).put(1, 1); // uvlc(0) = "1"
        w.put(1, 1).put(4, 5).put(1, 32).put(3, 5).put(3, 5);
        w.put(1, 1).put(1, 5); // initial display delay, 2 operating points
        for level in [9, 3] {
            w.put(0, 12).put(level, 5);
            if level > 7 {
                w.put(0, 1);
            }
            w.put(1, 1).put(7, 5).put(7, 5).put(0, 1);
            w.put(1, 1).put(2, 4);
        }
        w.put(15, 4).put(15, 4).put(63, 16).put(47, 16);
        let h = read(&obu(OBU_SEQUENCE_HEADER, &w.bytes())).unwrap();
        assert_eq!((h.max_width, h.max_height, h.reduced), (64, 48, false));
        assert_eq!(h.largest_frame(), 1 << 32);
    }

    #[test]
    fn broken_obus_are_errors() {
        assert!(read(&[]).unwrap_err().contains("no AV1 sequence header"));
        assert!(read(&[0x0A, 0x7F, 0x00]).unwrap_err().contains("past"));
        assert!(read(&[0x0A, 0x01, 0x00]).unwrap_err().contains("truncated"));
        assert!(read(&[0x8A, 0x00]).unwrap_err().contains("forbidden"));
        assert!(read(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }
}
