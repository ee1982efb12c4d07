//! The enrolment QR code drawn in a terminal with Unicode half blocks (two
//! modules per character cell, so the code stays square and small enough for
//! an 80x24 screen). A terminal draws characters in its foreground colour,
//! so which modules get a block depends on the background: by default we
//! draw for a dark background (light modules as blocks, like
//! `qrencode -t UTF8`), and `invert` draws for a light one. Either way the
//! 4-module quiet zone is part of the drawing, because scanners need it.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// The drawing of `text` as lines of half blocks, one string with `\n`s.
pub fn render(text: &str, invert: bool) -> Result<String, String> {
    // M tolerates smudges and glare on a screen while keeping an otpauth URI
    // (about 130 bytes) under 60 columns.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| format!("cannot draw the QR code: {e}"))?;
    let mut r = code.render::<Dense1x2>();
    r.quiet_zone(true).module_dimensions(1, 1);
    if !invert {
        r.dark_color(Dense1x2::Light).light_color(Dense1x2::Dark);
    }
    Ok(r.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a drawing back into modules (true = dark), as a person looking at
    /// the screen sees them: a cell's foreground halves are dark only when
    /// the terminal background is light.
    fn read_back(drawing: &str, invert: bool) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in drawing.lines() {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for ch in line.chars() {
                let (t, b) = match ch {
                    ' ' => (false, false),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    '\u{2588}' => (true, true),
                    other => panic!("unexpected character {other:?} in the drawing"),
                };
                // Foreground is dark on a light background (invert), light otherwise.
                top.push(t == invert);
                bottom.push(b == invert);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    fn modules(text: &str) -> (usize, Vec<bool>) {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        (
            code.width(),
            code.to_colors().iter().map(|c| *c == qrcode::Color::Dark).collect(),
        )
    }

    #[test]
    fn drawing_holds_exactly_the_modules_with_a_light_quiet_zone() {
        let uri = "otpauth://totp/Test%20Mail:alice%40example.org?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Test%20Mail&algorithm=SHA1&digits=6&period=30";
        let (w, m) = modules(uri);
        for invert in [false, true] {
            let rows = read_back(&render(uri, invert).unwrap(), invert);
            let q = 4;
            assert_eq!(rows[0].len(), w + 2 * q, "invert={invert}");
            assert!(rows.len() >= w + 2 * q);
            for (y, row) in rows.iter().enumerate().take(w + 2 * q) {
                for (x, dark) in row.iter().enumerate() {
                    let inside = (q..q + w).contains(&x) && (q..q + w).contains(&y);
                    let want = inside && m[(y - q) * w + (x - q)];
                    assert_eq!(*dark, want, "module ({x},{y}) invert={invert}");
                }
            }
        }
    }
}
