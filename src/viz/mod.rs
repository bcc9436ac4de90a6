//! Pictures: plots ([`plot`]) and image grids ([`grid`]), rendered to PNG (or SVG) and shown
//! inline through [`Render`](crate::display::Render).
//!
//! Text is drawn with plotters' `ab_glyph` renderer and a font that ships inside a Rust
//! crate, so plots have titles, axes and legends on machines without any system font or
//! fontconfig.

pub mod grid;
pub mod plot;
pub mod point_names;
pub mod sample;

pub use grid::Grid;
pub use plot::{BarChart, Heatmap, LinePlot, ScatterPlot};

use image::{ImageEncoder, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// Registers the embedded font under every generic family name, once per process: plotters
/// looks fonts up by name, and cells may ask for any of them.
pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let sans = epaint_default_fonts::UBUNTU_LIGHT;
        let mono = epaint_default_fonts::HACK_REGULAR;
        for (name, bytes) in [("sans-serif", sans), ("serif", sans), ("monospace", mono)] {
            // Both fonts are valid TrueType files compiled into the binary; failure is a bug.
            let _ = plotters::style::register_font(name, FontStyle::Normal, bytes);
        }
    });
}

/// Distinct colours for series, labels and channels (Tableau 20 order: the first ten are
/// the most distinct, so small legends stay readable). Index `i` wraps around.
pub fn palette(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (127, 127, 127),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (219, 219, 141),
        (158, 218, 229),
        (199, 199, 199),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

/// A jet-like colour map for `t` in [0, 1]: dark blue → cyan → yellow → dark red, so that
/// strong activations stand out against an image.
pub fn jet(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let channel = |offset: f64| (1.5 - (4.0 * t - offset).abs()).clamp(0.0, 1.0);
    let to_u8 = |v: f64| (v * 255.0).round() as u8;
    RGBColor(to_u8(channel(3.0)), to_u8(channel(2.0)), to_u8(channel(1.0)))
}

/// PNG file bytes of an RGB buffer, compressed as far as the encoder goes: figures end up
/// in committed notebooks, and plots of flat colour shrink several times over the default.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .expect("encoding an in-memory RGB buffer as PNG");
    out
}

/// One piece of text to draw at a pixel position (top-left anchored).
pub(crate) struct Label {
    pub x: i32,
    pub y: i32,
    pub text: String,
    pub size: u32,
}

/// Draws text onto an image through plotters' bitmap backend, so grids share the plots' font.
pub(crate) fn draw_labels(img: &mut RgbImage, labels: &[Label]) {
    if labels.is_empty() {
        return;
    }
    fonts();
    let (w, h) = img.dimensions();
    let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
    for l in labels {
        let style = ("sans-serif", l.size as f64).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Top));
        let _ = root.draw(&Text::new(l.text.clone(), (l.x, l.y), style));
    }
    let _ = root.present();
}

/// Formats a list for a text/plain summary, cut short when long.
pub(crate) fn short_list(items: &[String], max: usize) -> String {
    let mut out = items.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > max {
        out.push_str(&format!(", … ({} more)", items.len() - max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_blue_to_red() {
        let (lo, hi) = (jet(0.0), jet(1.0));
        assert!(lo.2 > lo.0 && hi.0 > hi.2);
        assert_eq!(jet(f64::NAN), jet(0.0));
    }

    #[test]
    fn palette_colours_are_distinct() {
        let colours: std::collections::HashSet<_> = (0..20).map(|i| palette(i).rgb()).collect();
        assert_eq!(colours.len(), 20);
        assert_eq!(palette(20), palette(0));
    }
}
