//! The pairing token as a QR code (`TOKEN-14`): the text form in alphanumeric mode,
//! error-correction level M, drawn with Unicode half blocks for a terminal or written as
//! a PNG.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use qrcode::bits::Bits;
use qrcode::render::unicode::Dense1x2;
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode, Version};

/// Modules of light border around the code (the QR specification's quiet zone).
pub const QUIET_ZONE: usize = 4;
/// Pixels per module in a PNG.
pub const PNG_SCALE: usize = 8;

/// Encodes `text` (the token's text form) in alphanumeric mode at level M, in the smallest
/// version that holds it (`TOKEN-14`).
///
/// # Errors
/// [`QrError::UnsupportedCharacterSet`] for text outside the alphanumeric set,
/// [`QrError::DataTooLong`] if no version holds it.
pub fn encode(text: &str) -> Result<QrCode, QrError> {
    // The encoder maps characters outside the set to '0' silently: check first.
    if !text.bytes().all(is_alphanumeric) {
        return Err(QrError::UnsupportedCharacterSet);
    }
    for v in 1..=40 {
        let mut bits = Bits::new(Version::Normal(v));
        match bits
            .push_alphanumeric_data(text.as_bytes())
            .and_then(|()| bits.push_terminator(EcLevel::M))
        {
            Ok(()) => return QrCode::with_bits(bits, EcLevel::M),
            Err(QrError::DataTooLong) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(QrError::DataTooLong)
}

/// Whether a byte is in the QR alphanumeric set: `0-9 A-Z`, space, `$ % * + - . / :`.
pub fn is_alphanumeric(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase() || b" $%*+-./:".contains(&b)
}

/// The code as lines of Unicode half blocks (two modules per character cell), light on
/// dark so that it scans from a dark terminal, with the quiet zone.
pub fn to_terminal(code: &QrCode) -> String {
    code.render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build()
}

/// Writes the code as an 8-bit grayscale PNG, [`PNG_SCALE`] pixels per module, with the
/// quiet zone.
///
/// # Errors
/// The file's or the encoder's error.
pub fn write_png(code: &QrCode, path: &Path) -> io::Result<()> {
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for dy in 0..PNG_SCALE {
            let row = (my * PNG_SCALE + dy) * side + mx * PNG_SCALE;
            if let Some(run) = pixels.get_mut(row..row + PNG_SCALE) {
                run.fill(0);
            }
        }
    }
    let side = u32::try_from(side).map_err(io::Error::other)?;
    let file = BufWriter::new(File::create(path)?);
    let mut encoder = png::Encoder::new(file, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(&pixels).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_14_alphanumeric_level_m() {
        let code = encode("TETHER:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::M);
        // Lower case is outside the alphanumeric set: refused rather than sent in byte
        // mode.
        assert!(matches!(
            encode("tether:abc"),
            Err(QrError::UnsupportedCharacterSet)
        ));
        let text = to_terminal(&code);
        assert!(text.contains('▀') || text.contains('▄') || text.contains('█'));
    }

    #[test]
    fn png_has_signature_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let code = encode("TETHER:AAAA").unwrap();
        write_png(&code, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let side = u32::try_from((code.width() + 8) * PNG_SCALE).unwrap();
        // IHDR width and height.
        assert_eq!(&bytes[16..20], &side.to_be_bytes());
        assert_eq!(&bytes[20..24], &side.to_be_bytes());
    }
}
