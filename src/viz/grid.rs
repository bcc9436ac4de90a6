//! Image grids from tensors: samples, label maps, mask and activation overlays, and maps of
//! which of a set of channels fires most at each pixel.
//!
//! A grid converts its tensors to RGB cells when built, so it keeps no tensor (nor device
//! memory) alive and renders the same picture every time it is shown.

use super::{draw_labels, encode_png, jet, palette, short_list, Label};
use crate::display::{Output, Render};
use image::{imageops, Rgb, RgbImage};
use plotters::style::RGBColor;
use tch::{Device, Kind, Tensor};

/// How pixels without a label (value -1) or below an argmax threshold are drawn: a grey that
/// is not in the [`palette`].
pub const UNLABELLED: Rgb<u8> = Rgb([96, 96, 96]);
const BORDER: Rgb<u8> = Rgb([40, 40, 40]);
const LABEL_HEIGHT: u32 = 18;
const LEGEND_ENTRY_WIDTH: u32 = 170;

/// A grid of pictures with optional per-cell labels and a colour legend.
#[derive(Debug, Clone)]
pub struct Grid {
    cells: Vec<RgbImage>,
    labels: Vec<String>,
    legend: Vec<(Rgb<u8>, String)>,
    kind: &'static str,
    columns: usize,
    padding: u32,
    border: u32,
    scale: u32,
}

impl Grid {
    /// Images `[N,3,H,W]` (or `[N,1,H,W]`, `[N,H,W]` grey) with values in [0, 1].
    pub fn new(images: &Tensor) -> Self {
        Self::from_cells(to_rgb(images), "images")
    }

    /// Label maps `[N,H,W]` (integers; -1 = unlabelled, drawn grey), each label in its
    /// [`palette`] colour; the legend names the labels that occur, from `names` (e.g.
    /// `Vocabulary::names(category)`).
    pub fn label_maps<S: AsRef<str>>(maps: &Tensor, names: &[S]) -> Self {
        let (cells, present) = colour_labels(maps);
        let name = |v: i64| names.get(v as usize).map_or_else(|| format!("label {v}"), |s| s.as_ref().to_owned());
        let legend = present.into_iter().map(|v| (to_rgb8(palette(v as usize)), name(v))).collect();
        Self { legend, ..Self::from_cells(cells, "label maps") }
    }

    /// Images `[N,3,H,W]` with `maps` `[N,H,W]` (or `[N,1,H,W]`) blended over them at
    /// `alpha`: a Bool map is a mask, tinted where true; any other kind is an activation
    /// map, min-max normalised per image, resized bilinearly and coloured with [`jet`].
    pub fn overlay(images: &Tensor, maps: &Tensor, alpha: f64) -> Self {
        let mut cells = to_rgb(images);
        let (h, w) = cells.first().map_or((1, 1), |c| (c.height() as i64, c.width() as i64));
        let maps = if maps.dim() == 4 { maps.squeeze_dim(1) } else { maps.shallow_clone() }.to_device(Device::Cpu);
        let is_mask = maps.kind() == Kind::Bool;
        let maps = maps.to_kind(Kind::Float).unsqueeze(1);
        let maps = if is_mask {
            maps.upsample_nearest2d([h, w], None, None)
        } else {
            let resized = maps.upsample_bilinear2d([h, w], false, None, None);
            let lo = resized.amin([1, 2, 3], true);
            let hi = resized.amax([1, 2, 3], true);
            (resized - &lo) / (hi - lo).clamp_min(1e-12)
        };
        let values = to_vec_f32(&maps);
        let alpha = alpha.clamp(0.0, 1.0) as f32;
        let tint = to_rgb8(palette(3));
        for (cell, map) in cells.iter_mut().zip(values.chunks((h * w) as usize)) {
            for (pixel, &v) in cell.pixels_mut().zip(map) {
                let (colour, a) =
                    if is_mask { (tint, if v > 0.5 { alpha } else { 0.0 }) } else { (to_rgb8(jet(v as f64)), alpha) };
                *pixel = blend(*pixel, colour, a);
            }
        }
        Self::from_cells(cells, if is_mask { "mask overlays" } else { "activation overlays" })
    }

    /// For activations `[N,K,H,W]`, colours each pixel by which of `channels` is largest
    /// there ([`argmax_channels`]), grey where none exceeds `threshold`; the legend reads
    /// "ch 7: wheel" (the embedded font has no arrow glyph) from `concepts` (one per entry of `channels`).
    pub fn top_channels<S: AsRef<str>>(activations: &Tensor, channels: &[i64], threshold: f64, concepts: &[S]) -> Self {
        let (cells, _) = colour_labels(&argmax_channels(activations, channels, threshold));
        let legend = channels
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let concept = concepts.get(j).map_or("?", |s| s.as_ref());
                (to_rgb8(palette(j)), format!("ch {c}: {concept}"))
            })
            .collect();
        Self { legend, ..Self::from_cells(cells, "top-channel maps") }
    }

    fn from_cells(cells: Vec<RgbImage>, kind: &'static str) -> Self {
        Self { cells, labels: Vec::new(), legend: Vec::new(), kind, columns: 8, padding: 4, border: 1, scale: 1 }
    }

    /// Cells per row (8 unless set).
    pub fn columns(mut self, columns: usize) -> Self {
        self.columns = columns.max(1);
        self
    }

    /// White space between cells, in pixels.
    pub fn padding(mut self, padding: u32) -> Self {
        self.padding = padding;
        self
    }

    /// Width of the dark frame around each cell, in pixels (0 for none).
    pub fn border(mut self, border: u32) -> Self {
        self.border = border;
        self
    }

    /// Nearest-neighbour upscaling, so 28×28 digits or 7×7 activation maps stay crisp.
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = scale.clamp(1, 64);
        self
    }

    /// A caption above each cell (class names, channel numbers, scores).
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// The picture: cells in rows, each framed and captioned, the legend underneath.
    pub fn image(&self) -> RgbImage {
        let layout = Layout::of(self);
        let mut out = RgbImage::from_pixel(layout.width, layout.height, Rgb([255, 255, 255]));
        let mut texts = Vec::new();
        for (i, cell) in self.cells.iter().enumerate() {
            let (x, y) = layout.tile(i);
            let frame = RgbImage::from_pixel(layout.cell_w + 2 * self.border, layout.cell_h + 2 * self.border, BORDER);
            imageops::replace(&mut out, &frame, x as i64, (y + layout.label_h) as i64);
            let scaled = imageops::resize(
                cell,
                cell.width() * self.scale,
                cell.height() * self.scale,
                imageops::FilterType::Nearest,
            );
            imageops::replace(&mut out, &scaled, (x + self.border) as i64, (y + layout.label_h + self.border) as i64);
            if let Some(text) = self.labels.get(i) {
                texts.push(Label { x: x as i32, y: y as i32 + 2, text: text.clone(), size: 13 });
            }
        }
        for (i, (colour, name)) in self.legend.iter().enumerate() {
            let (x, y) = layout.legend_entry(i);
            let swatch = RgbImage::from_pixel(12, 12, *colour);
            imageops::replace(&mut out, &swatch, x as i64, y as i64 + 2);
            texts.push(Label { x: x as i32 + 16, y: y as i32, text: name.clone(), size: 13 });
        }
        draw_labels(&mut out, &texts);
        out
    }

    /// PNG file bytes of [`Grid::image`].
    pub fn png(&self) -> Vec<u8> {
        let img = self.image();
        encode_png(img.as_raw(), img.width(), img.height())
    }

    fn summary(&self) -> String {
        let mut out = format!(
            "grid of {} {} ({} per row)",
            self.cells.len(),
            self.kind,
            self.columns.min(self.cells.len().max(1))
        );
        if !self.labels.is_empty() {
            out.push_str(&format!("\nlabels: {}", short_list(&self.labels, 16)));
        }
        if !self.legend.is_empty() {
            out.push_str(&format!(
                "\nlegend: {}",
                short_list(&self.legend.iter().map(|l| l.1.clone()).collect::<Vec<_>>(), 20)
            ));
        }
        out
    }
}

impl Render for Grid {
    fn render(&self) -> Output {
        Output::png(&self.png()).and(Output::text(self.summary()))
    }
}

/// Pixel positions of a grid's tiles and legend.
struct Layout {
    cell_w: u32,
    cell_h: u32,
    label_h: u32,
    tile_w: u32,
    tile_h: u32,
    columns: u32,
    padding: u32,
    legend_top: u32,
    legend_per_line: u32,
    width: u32,
    height: u32,
}

impl Layout {
    fn of(grid: &Grid) -> Self {
        let n = grid.cells.len() as u32;
        let cell_w = grid.cells.iter().map(RgbImage::width).max().unwrap_or(0) * grid.scale;
        let cell_h = grid.cells.iter().map(RgbImage::height).max().unwrap_or(0) * grid.scale;
        let label_h = if grid.labels.is_empty() { 0 } else { LABEL_HEIGHT };
        let (tile_w, tile_h) = (cell_w + 2 * grid.border, label_h + cell_h + 2 * grid.border);
        let columns = (grid.columns as u32).min(n).max(1);
        let rows = n.div_ceil(columns);
        let pad = grid.padding;
        let mut width = columns * tile_w + (columns + 1) * pad;
        let legend_top = rows * tile_h + (rows + 1) * pad;
        let mut height = legend_top;
        let mut legend_per_line = 1;
        if !grid.legend.is_empty() {
            width = width.max(LEGEND_ENTRY_WIDTH + 2 * pad);
            legend_per_line = ((width - 2 * pad) / LEGEND_ENTRY_WIDTH).max(1);
            let lines = (grid.legend.len() as u32).div_ceil(legend_per_line);
            height += lines * LABEL_HEIGHT + pad;
        }
        Self {
            cell_w,
            cell_h,
            label_h,
            tile_w,
            tile_h,
            columns,
            padding: pad,
            legend_top,
            legend_per_line,
            width: width.max(1),
            height: height.max(1),
        }
    }

    /// Top-left corner of tile `i`.
    fn tile(&self, i: usize) -> (u32, u32) {
        let (col, row) = (i as u32 % self.columns, i as u32 / self.columns);
        (self.padding + col * (self.tile_w + self.padding), self.padding + row * (self.tile_h + self.padding))
    }

    fn legend_entry(&self, i: usize) -> (u32, u32) {
        let (col, line) = (i as u32 % self.legend_per_line, i as u32 / self.legend_per_line);
        (self.padding + col * LEGEND_ENTRY_WIDTH, self.legend_top + line * LABEL_HEIGHT)
    }
}

/// For activations `[N,K,H,W]`: at each pixel, the position in `channels` of the channel
/// with the largest activation, or -1 where that activation is not above `threshold`.
/// Returns `[N,H,W]` int64.
pub fn argmax_channels(activations: &Tensor, channels: &[i64], threshold: f64) -> Tensor {
    assert_eq!(activations.dim(), 4, "activations must be [N,K,H,W], got {:?}", activations.size());
    let index = Tensor::from_slice(channels).to_device(activations.device());
    let chosen = activations.index_select(1, &index).to_kind(Kind::Float);
    let (best, which) = chosen.max_dim(1, false);
    which.where_self(&best.gt(threshold), &Tensor::from(-1i64).to_device(which.device())).to_device(Device::Cpu)
}

/// Colours integer label maps `[N,H,W]` with the palette; returns the cells and the sorted
/// labels that occur (excluding -1).
fn colour_labels(maps: &Tensor) -> (Vec<RgbImage>, Vec<i64>) {
    assert_eq!(maps.dim(), 3, "label maps must be [N,H,W], got {:?}", maps.size());
    let size = maps.size();
    let (h, w) = (size[1] as u32, size[2] as u32);
    let values: Vec<i64> = Vec::try_from(maps.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous().view([-1]))
        .expect("an int64 tensor converts to Vec<i64>");
    let mut present: Vec<i64> = values.iter().copied().filter(|&v| v >= 0).collect();
    present.sort_unstable();
    present.dedup();
    let cells = values
        .chunks((h * w).max(1) as usize)
        .take(size[0] as usize)
        .map(|map| {
            let mut cell = RgbImage::new(w, h);
            for (pixel, &v) in cell.pixels_mut().zip(map) {
                *pixel = if v < 0 { UNLABELLED } else { to_rgb8(palette(v as usize)) };
            }
            cell
        })
        .collect();
    (cells, present)
}

/// Images `[N,C,H,W]` (C = 1 or 3) or `[N,H,W]` in [0, 1] as RGB cells.
fn to_rgb(images: &Tensor) -> Vec<RgbImage> {
    let images = match images.dim() {
        3 => images.unsqueeze(1),
        4 => images.shallow_clone(),
        _ => panic!("images must be [N,3,H,W], [N,1,H,W] or [N,H,W], got {:?}", images.size()),
    };
    let size = images.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    assert!(c == 1 || c == 3, "images need 1 or 3 channels, got {c}");
    let images = if c == 1 { images.expand([n, 3, h, w], false) } else { images };
    let bytes = images.to_device(Device::Cpu).to_kind(Kind::Float).clamp(0.0, 1.0) * 255.0;
    let bytes: Vec<u8> =
        Vec::try_from(bytes.round().to_kind(Kind::Uint8).permute([0, 2, 3, 1]).contiguous().view([-1]))
            .expect("a uint8 tensor converts to Vec<u8>");
    let len = (h * w * 3).max(1) as usize;
    bytes.chunks(len).map(|b| RgbImage::from_raw(w as u32, h as u32, b.to_vec()).expect("chunk is one image")).collect()
}

fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.to_kind(Kind::Float).contiguous().view([-1])).expect("a float tensor converts to Vec<f32>")
}

fn to_rgb8(c: RGBColor) -> Rgb<u8> {
    Rgb([c.0, c.1, c.2])
}

/// `base` with `over` laid on it at opacity `alpha`; alpha 0 leaves `base` unchanged.
fn blend(base: Rgb<u8>, over: Rgb<u8>, alpha: f32) -> Rgb<u8> {
    let mix = |b: u8, o: u8| (b as f32 * (1.0 - alpha) + o as f32 * alpha).round() as u8;
    Rgb([mix(base[0], over[0]), mix(base[1], over[1]), mix(base[2], over[2])])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> RgbImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("a valid PNG").to_rgb8()
    }

    /// Varied pixels in [0, 1) without libtorch's generator, which seeded tests own.
    fn images(n: i64) -> Tensor {
        (Tensor::arange(n * 3 * 64, (Kind::Float, Device::Cpu)) * 0.618034).frac().view([n, 3, 8, 8])
    }

    #[test]
    fn grid_lays_out_columns_padding_border_and_scale() {
        let grid = Grid::new(&images(5)).columns(3).padding(2).border(1).scale(2);
        let img = decode(&grid.png());
        // 3 tiles of 16 + 2 border, 4 paddings; 2 rows likewise.
        assert_eq!(img.dimensions(), (3 * 18 + 4 * 2, 2 * 18 + 3 * 2));
        assert_eq!(*img.get_pixel(0, 0), Rgb([255, 255, 255]));
        assert_eq!(*img.get_pixel(2, 2), BORDER);
        assert!(img.pixels().collect::<std::collections::HashSet<_>>().len() > 10);
    }

    #[test]
    fn cells_keep_the_image_values() {
        let t = Tensor::from_slice(&[0.0f32, 1.0, 0.5, 0.25]).view([1, 1, 2, 2]);
        let cells = to_rgb(&t);
        assert_eq!(*cells[0].get_pixel(1, 0), Rgb([255, 255, 255]));
        assert_eq!(*cells[0].get_pixel(0, 1), Rgb([128, 128, 128]));
    }

    #[test]
    fn labels_add_a_caption_row_and_text() {
        let plain = Grid::new(&images(2)).image();
        let labelled = Grid::new(&images(2)).labels(["cat", "dog"]).image();
        assert_eq!(labelled.height(), plain.height() + LABEL_HEIGHT);
        let caption = imageops::crop_imm(&labelled, 0, 0, labelled.width(), LABEL_HEIGHT).to_image();
        assert!(caption.pixels().any(|p| p.0[0] < 128), "caption text was drawn");
        assert!(Grid::new(&images(2)).labels(["cat", "dog"]).render().data()["text/plain"]
            .as_str()
            .unwrap()
            .contains("cat, dog"));
    }

    #[test]
    fn label_map_colours_follow_the_palette() {
        let maps = Tensor::from_slice(&[0i64, 1, 2, -1]).view([1, 2, 2]);
        let grid = Grid::label_maps(&maps, &["sky", "car", "road"]);
        let cell = &grid.cells[0];
        assert_eq!(*cell.get_pixel(0, 0), to_rgb8(palette(0)));
        assert_eq!(*cell.get_pixel(1, 0), to_rgb8(palette(1)));
        assert_eq!(*cell.get_pixel(0, 1), to_rgb8(palette(2)));
        assert_eq!(*cell.get_pixel(1, 1), UNLABELLED);
        assert_eq!(grid.legend.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(), ["sky", "car", "road"]);
        let img = decode(&grid.scale(8).png());
        assert!(img.pixels().any(|p| *p == to_rgb8(palette(2))));
        assert!(img.width() >= LEGEND_ENTRY_WIDTH);
    }

    #[test]
    fn overlay_at_alpha_zero_is_the_image() {
        let _serial = crate::models::serial();
        let imgs = images(2);
        let acts = Tensor::rand([2, 4, 4], (Kind::Float, Device::Cpu));
        let mask = acts.gt(0.5);
        assert_eq!(Grid::overlay(&imgs, &acts, 0.0).cells, to_rgb(&imgs));
        assert_eq!(Grid::overlay(&imgs, &mask, 0.0).cells, to_rgb(&imgs));
        assert_ne!(Grid::overlay(&imgs, &acts, 0.5).cells, to_rgb(&imgs));
    }

    #[test]
    fn mask_overlay_tints_only_the_mask() {
        let black = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let mask = Tensor::from_slice(&[true, false, false, false]).view([1, 2, 2]);
        let grid = Grid::overlay(&black, &mask, 1.0);
        assert_eq!(*grid.cells[0].get_pixel(0, 0), to_rgb8(palette(3)));
        assert_eq!(*grid.cells[0].get_pixel(1, 0), Rgb([0, 0, 0]));
        assert_eq!(decode(&grid.png()).dimensions(), (2 + 2 + 8, 2 + 2 + 8));
    }

    #[test]
    fn argmax_picks_the_strongest_listed_channel() {
        // 4 channels on a 1×3 image; only channels 3 and 1 are asked about.
        let acts = Tensor::from_slice(&[
            9.0f32, 9.0, 9.0, // channel 0: strongest everywhere but not asked about
            0.2, 0.8, 0.1, // channel 1
            0.0, 0.0, 0.0, // channel 2
            0.7, 0.3, 0.05, // channel 3
        ])
        .view([1, 4, 1, 3]);
        let which = argmax_channels(&acts, &[3, 1], 0.5);
        assert_eq!(Vec::<i64>::try_from(which.view([-1])).unwrap(), [0, 1, -1]);
        let grid = Grid::top_channels(&acts, &[3, 1], 0.5, &["wheel", "sky"]);
        assert_eq!(*grid.cells[0].get_pixel(0, 0), to_rgb8(palette(0)));
        assert_eq!(*grid.cells[0].get_pixel(2, 0), UNLABELLED);
        let text = grid.render().data()["text/plain"].as_str().unwrap().to_owned();
        assert!(text.contains("ch 3: wheel") && text.contains("ch 1: sky"), "{text}");
        assert!(decode(&grid.scale(4).png()).width() >= LEGEND_ENTRY_WIDTH);
    }
}
