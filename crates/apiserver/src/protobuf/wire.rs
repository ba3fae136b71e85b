//! The protobuf wire format, read without a schema: a message is a sequence of (field number,
//! wire type, payload). Every read is bounds-checked; nothing here can panic on any input.

/// One field's payload as the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type's name, for error messages.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Len(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD: u64 = (1 << 29) - 1;

pub(super) fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            return Err("truncated varint".into());
        };
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], String> {
    let len = usize::try_from(len).map_err(|_| "length out of range".to_string())?;
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= buf.len())
        .ok_or_else(|| format!("{len} bytes announced, {} left", buf.len() - *pos))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

/// The fields of one message, in wire order.
pub(super) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(super) fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<(u32, Wire<'a>), String> {
        let key = varint(self.buf, &mut self.pos)?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD {
            return Err(format!("field number {number} is out of range"));
        }
        let wire = match key & 7 {
            0 => Wire::Varint(varint(self.buf, &mut self.pos)?),
            1 => {
                let b = take(self.buf, &mut self.pos, 8)?;
                Wire::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| "short fixed64")?,
                ))
            }
            2 => {
                let len = varint(self.buf, &mut self.pos)?;
                Wire::Len(take(self.buf, &mut self.pos, len)?)
            }
            5 => {
                let b = take(self.buf, &mut self.pos, 4)?;
                Wire::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| "short fixed32")?,
                ))
            }
            t => {
                return Err(format!(
                    "field {number} has wire type {t}, which Kubernetes never uses"
                ));
            }
        };
        // In range: checked against MAX_FIELD above.
        Ok((number as u32, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            // One error ends the message: what follows cannot be framed.
            self.pos = self.buf.len();
        }
        Some(item)
    }
}

#[cfg(test)]
pub(super) mod encode {
    //! A test-only encoder: just enough to build messages by hand.

    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A length-delimited field.
    pub fn ld(field: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        varint(u64::from(field) << 3 | 2, &mut v);
        varint(payload.len() as u64, &mut v);
        v.extend_from_slice(payload);
        v
    }

    /// A varint field (negative int32/int64 as Go writes them: sign-extended to 64 bits).
    pub fn int(field: u32, value: i64) -> Vec<u8> {
        let mut v = Vec::new();
        varint(u64::from(field) << 3, &mut v);
        varint(value as u64, &mut v);
        v
    }

    pub fn double(field: u32, value: f64) -> Vec<u8> {
        let mut v = Vec::new();
        varint(u64::from(field) << 3 | 1, &mut v);
        v.extend_from_slice(&value.to_bits().to_le_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    #[test]
    fn reads_every_wire_type_and_rejects_bad_framing() {
        let mut msg = [int(1, -1), ld(2, b"ab"), double(3, 1.5)].concat();
        msg.extend_from_slice(&[(4 << 3) | 5, 1, 0, 0, 0]);
        let got: Vec<_> = fields(&msg).collect::<Result<_, _>>().expect("valid");
        assert_eq!(
            got,
            vec![
                (1, Wire::Varint(u64::MAX)),
                (2, Wire::Len(b"ab")),
                (3, Wire::Fixed64(1.5f64.to_bits())),
                (4, Wire::Fixed32(1)),
            ]
        );
        for bad in [
            &[0x0a, 5, b'a'][..], // length past the end
            &[0x08][..],          // truncated varint
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
            ][..],
            &[0x0b][..],       // wire type 3 (group)
            &[0x00, 0x00][..], // field number 0
            &[0x09, 1, 2][..], // short fixed64
        ] {
            let items: Vec<_> = fields(bad).collect();
            assert!(
                items.last().is_some_and(Result::is_err),
                "{bad:?}: {items:?}"
            );
        }
    }
}
