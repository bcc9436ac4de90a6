//! Plots drawn with plotters: line plots, grouped bar charts, scatter plots and heatmaps.
//!
//! Every plot is a builder that owns its data, so a cell can keep it, add points (a loss
//! curve while training) and show it again with [`Handle::update`](crate::display::Handle).
//! PNG is the default display; `.svg_output()` switches a plot's display to SVG.

use super::{fonts, jet, palette, short_list};
use crate::display::{Output, Render};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::{Kind, Tensor};

type DrawResult = Result<(), String>;

/// What every plot has: title, axis labels, pixel size and the display format.
#[derive(Debug, Clone)]
struct Frame {
    title: String,
    x_label: String,
    y_label: String,
    width: u32,
    height: u32,
    svg: bool,
}

impl Frame {
    fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            width: 640,
            height: 400,
            svg: false,
        }
    }

    /// Draws with `draw` into an RGB buffer and encodes it as PNG.
    fn png(&self, draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult) -> Vec<u8> {
        fonts();
        let mut rgb = vec![255u8; self.width as usize * self.height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (self.width, self.height)).into_drawing_area();
            draw(&root).and_then(|_| root.present().map_err(|e| e.to_string())).unwrap_or_else(|e| failed(&e));
        }
        super::encode_png(&rgb, self.width, self.height)
    }

    fn svg(&self, draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult) -> String {
        fonts();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (self.width, self.height)).into_drawing_area();
            draw(&root).and_then(|_| root.present().map_err(|e| e.to_string())).unwrap_or_else(|e| failed(&e));
        }
        out
    }

    /// The picture plus a one-line text/plain summary.
    fn output(&self, summary: String, png: impl FnOnce() -> Vec<u8>, svg: impl FnOnce() -> String) -> Output {
        let picture = if self.svg { Output::svg(svg()) } else { Output::png(&png()) };
        picture.and(Output::text(summary))
    }
}

/// Drawing into memory fails only on a bug (plotters reports e.g. an empty range), never on
/// user input, which is checked before drawing.
fn failed(err: &str) -> ! {
    panic!("drawing a plot failed: {err}")
}

/// The titled, labelled axes over every point of `series`, shared by line and scatter plots;
/// `x_pad` widens the x range by that fraction (0 for curves that should touch the edges).
fn xy_axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    frame: &Frame,
    series: &[Series],
    x_pad: f64,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    root.fill(&WHITE).map_err(err)?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = span(all().map(|p| p.0), x_pad);
    let (y0, y1) = span(all().map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(root)
        .caption(&frame.title, font(20.0))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&frame.x_label)
        .y_desc(&frame.y_label)
        .label_style(font(13.0))
        .light_line_style(BLACK.mix(0.05))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The builder methods every plot shares.
macro_rules! frame_builders {
    () => {
        /// Label under the x axis.
        pub fn x_label(mut self, label: impl Into<String>) -> Self {
            self.frame.x_label = label.into();
            self
        }

        /// Label beside the y axis.
        pub fn y_label(mut self, label: impl Into<String>) -> Self {
            self.frame.y_label = label.into();
            self
        }

        /// Size in pixels (640×400 unless set).
        pub fn size(mut self, width: u32, height: u32) -> Self {
            self.frame.width = width.max(64);
            self.frame.height = height.max(64);
            self
        }

        /// Shows this plot as SVG instead of PNG (sharp at any zoom, larger for many points).
        pub fn svg_output(mut self) -> Self {
            self.frame.svg = true;
            self
        }

        /// PNG file bytes.
        pub fn png(&self) -> Vec<u8> {
            self.frame.png(|root| self.draw(root))
        }

        /// An SVG document.
        pub fn svg(&self) -> String {
            self.frame.svg(|root| self.draw(root))
        }
    };
}

/// The range `values` span, widened a little, and never empty (plotters rejects that).
fn span(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let margin = (hi - lo) * pad;
    (lo - margin, hi + margin)
}

/// A named series of points.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn to_points<X: Into<f64>, Y: Into<f64>>(
    xs: impl IntoIterator<Item = X>,
    ys: impl IntoIterator<Item = Y>,
) -> Vec<(f64, f64)> {
    xs.into_iter().map(Into::into).zip(ys.into_iter().map(Into::into)).collect()
}

fn font(size: f64) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// Draws the legend box where it hides the least of what the plot shows (`drawn`: points
/// in data coordinates, dense enough to stand for lines and bars), as matplotlib's "best".
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    labels: &[&str],
    drawn: &[(f64, f64)],
) -> DrawResult {
    let (x, y) = (chart.x_range(), chart.y_range());
    let (width, height) = chart.plotting_area().dim_in_pixel();
    // About 7.5 pixels a character at the label font, plus the marker and the padding.
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let boxed = (
        (longest as f64 * 7.5 + 45.0) / width.max(1) as f64,
        (labels.len() as f64 * 20.0 + 12.0) / height.max(1) as f64,
    );
    chart
        .configure_series_labels()
        .position(quietest_place(drawn, (x.start, x.end), (y.start, y.end), boxed))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .label_font(font(13.0))
        .draw()
        .map_err(err)
}

/// Of the nine places a legend can sit (corners first, then the middles of the sides, then
/// the centre), the one whose box of `size` (fractions of the plot's width and height)
/// covers the fewest `points`; the upper right on a tie.
fn quietest_place(points: &[(f64, f64)], x: (f64, f64), y: (f64, f64), size: (f64, f64)) -> SeriesLabelPosition {
    use SeriesLabelPosition::*;
    let (w, h) = (size.0.min(1.0), size.1.min(1.0));
    // Where a box of `extent` starts along an axis: 0 (low), middle (0.5) or 1 (high).
    let starts = |at: f64, extent: f64| at * (1.0 - extent);
    let places = [
        (UpperRight, 1.0, 1.0),
        (UpperLeft, 0.0, 1.0),
        (LowerRight, 1.0, 0.0),
        (LowerLeft, 0.0, 0.0),
        (MiddleRight, 1.0, 0.5),
        (MiddleLeft, 0.0, 0.5),
        (UpperMiddle, 0.5, 1.0),
        (LowerMiddle, 0.5, 0.0),
        (MiddleMiddle, 0.5, 0.5),
    ];
    let fraction = |v: f64, (lo, hi): (f64, f64)| (v - lo) / (hi - lo);
    let covered = |hx: f64, hy: f64| {
        let (x0, y0) = (starts(hx, w), starts(hy, h));
        points
            .iter()
            .filter(|p| {
                let (fx, fy) = (fraction(p.0, x), fraction(p.1, y));
                (x0..=x0 + w).contains(&fx) && (y0..=y0 + h).contains(&fy)
            })
            .count()
    };
    places.into_iter().min_by_key(|(_, hx, hy)| covered(*hx, *hy)).map(|(place, ..)| place).unwrap_or(UpperRight)
}

/// The points along a polyline, 16 to a segment, so that a legend box over a line between
/// two far-apart points counts as covering it.
fn traced(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = points
        .windows(2)
        .flat_map(|w| {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            (0..16).map(move |k| {
                let t = k as f64 / 16.0;
                (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
            })
        })
        .collect();
    out.extend(points.last());
    out
}

/// Line plot of one or more named series: inspectability curves, loss curves.
#[derive(Debug, Clone)]
pub struct LinePlot {
    frame: Frame,
    series: Vec<Series>,
}

impl LinePlot {
    pub fn new(title: impl Into<String>) -> Self {
        Self { frame: Frame::new(title), series: Vec::new() }
    }

    frame_builders!();

    /// Adds a named series; `xs` and `ys` are paired up to the shorter one.
    pub fn series<X: Into<f64>, Y: Into<f64>>(
        mut self,
        name: impl Into<String>,
        xs: impl IntoIterator<Item = X>,
        ys: impl IntoIterator<Item = Y>,
    ) -> Self {
        self.series.push(Series { name: name.into(), points: to_points(xs, ys) });
        self
    }

    /// Adds a series over x = 0, 1, 2, … (a loss per step).
    pub fn series_y<Y: Into<f64>>(self, name: impl Into<String>, ys: impl IntoIterator<Item = Y>) -> Self {
        let ys: Vec<f64> = ys.into_iter().map(Into::into).collect();
        self.series(name, (0..ys.len()).map(|i| i as f64), ys)
    }

    /// Appends one point to the named series (created if new): for curves that grow while a
    /// cell runs and are re-shown with a display handle.
    pub fn push(&mut self, name: &str, x: f64, y: f64) {
        match self.series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((x, y)),
            None => self.series.push(Series { name: name.to_owned(), points: vec![(x, y)] }),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut chart = xy_axes(root, &self.frame, &self.series, 0.0)?;
        for (i, s) in self.series.iter().enumerate() {
            let colour = palette(i);
            let points = s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite());
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        if !self.series.is_empty() {
            let drawn: Vec<(f64, f64)> = self.series.iter().flat_map(|s| traced(&s.points)).collect();
            legend(&mut chart, &self.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), &drawn)?;
        }
        Ok(())
    }
}

impl Render for LinePlot {
    fn render(&self) -> Output {
        let summary = format!("line plot '{}' ({} series)", self.frame.title, self.series.len());
        self.frame.output(summary, || self.png(), || self.svg())
    }
}

/// Scatter plot of one or more named point sets.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    frame: Frame,
    series: Vec<Series>,
    radius: u32,
}

impl ScatterPlot {
    pub fn new(title: impl Into<String>) -> Self {
        Self { frame: Frame::new(title), series: Vec::new(), radius: 3 }
    }

    frame_builders!();

    /// Adds a named set of points; `xs` and `ys` are paired up to the shorter one.
    pub fn series<X: Into<f64>, Y: Into<f64>>(
        mut self,
        name: impl Into<String>,
        xs: impl IntoIterator<Item = X>,
        ys: impl IntoIterator<Item = Y>,
    ) -> Self {
        self.series.push(Series { name: name.into(), points: to_points(xs, ys) });
        self
    }

    /// Marker radius in pixels (3 unless set).
    pub fn radius(mut self, radius: u32) -> Self {
        self.radius = radius.max(1);
        self
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let mut chart = xy_axes(root, &self.frame, &self.series, 0.05)?;
        let r = self.radius as i32;
        for (i, s) in self.series.iter().enumerate() {
            let colour = palette(i);
            let points = s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite());
            chart
                .draw_series(points.map(|p| Circle::new(p, r, colour.mix(0.8).filled())))
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| Circle::new((x + 10, y), r, colour.filled()));
        }
        if !self.series.is_empty() {
            let drawn: Vec<(f64, f64)> = self.series.iter().flat_map(|s| s.points.iter().copied()).collect();
            legend(&mut chart, &self.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), &drawn)?;
        }
        Ok(())
    }
}

impl Render for ScatterPlot {
    fn render(&self) -> Output {
        let n: usize = self.series.iter().map(|s| s.points.len()).sum();
        let summary = format!("scatter plot '{}' ({} series, {n} points)", self.frame.title, self.series.len());
        self.frame.output(summary, || self.png(), || self.svg())
    }
}

/// Bar chart over named categories, with one bar per group in each (AUiC per layer, one
/// group per model).
#[derive(Debug, Clone)]
pub struct BarChart {
    frame: Frame,
    categories: Vec<String>,
    groups: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    pub fn new(title: impl Into<String>) -> Self {
        Self { frame: Frame::new(title), categories: Vec::new(), groups: Vec::new() }
    }

    frame_builders!();

    /// The category names along the x axis.
    pub fn categories<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.categories = names.into_iter().map(Into::into).collect();
        self
    }

    /// One named group: a value per category, in category order (missing ones draw no bar).
    pub fn group<V: Into<f64>>(mut self, name: impl Into<String>, values: impl IntoIterator<Item = V>) -> Self {
        self.groups.push((name.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// As many categories as the longest group, named by index when not given.
    fn category_names(&self) -> Vec<String> {
        let n = self.groups.iter().map(|g| g.1.len()).max().unwrap_or(0).max(self.categories.len());
        (0..n).map(|i| self.categories.get(i).cloned().unwrap_or_else(|| i.to_string())).collect()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        let names = self.category_names();
        let values = || self.groups.iter().flat_map(|g| g.1.iter().copied());
        let (lo, hi) = span(values().chain([0.0]), 0.0);
        // Head room above the tallest bar, and for the legend's rows when there is one.
        let legend_rows = if self.groups.len() > 1 { self.groups.len() } else { 0 };
        let y1 = hi + (hi - lo) * (0.08 + 0.075 * legend_rows as f64);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.frame.title, font(20.0))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..names.len().max(1) as f64, lo..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc(&self.frame.x_label)
            .y_desc(&self.frame.y_label)
            .label_style(font(13.0))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        let k = self.groups.len().max(1) as f64;
        let width = 0.8 / k;
        for (g, (name, vals)) in self.groups.iter().enumerate() {
            let colour = palette(g);
            let bars = vals.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| {
                let x = i as f64 + 0.1 + g as f64 * width;
                Rectangle::new([(x, 0.0f64.max(lo)), (x + width, v)], colour.filled())
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
        }
        // Category names centred under their bars, in pixels, since plotters' own tick
        // positions would not fall on category centres.
        let style = font(13.0).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in names.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, lo));
            root.draw(&Text::new(name.clone(), (px, py + 6), style.clone())).map_err(err)?;
        }
        if self.groups.len() > 1 {
            // Each bar as a column of points from its base to its top, at both edges.
            let drawn: Vec<(f64, f64)> = self
                .groups
                .iter()
                .enumerate()
                .flat_map(|(g, (_, vals))| {
                    vals.iter().enumerate().filter(|(_, v)| v.is_finite()).flat_map(move |(i, &v)| {
                        let x = i as f64 + 0.1 + g as f64 * width;
                        let base = 0.0f64.max(lo);
                        [x, x + width].into_iter().flat_map(move |x| traced(&[(x, base), (x, v)]))
                    })
                })
                .collect();
            legend(&mut chart, &self.groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), &drawn)?;
        }
        Ok(())
    }
}

impl Render for BarChart {
    fn render(&self) -> Output {
        let summary = format!(
            "bar chart '{}' ({} categories × {} groups: {})",
            self.frame.title,
            self.category_names().len(),
            self.groups.len(),
            short_list(&self.groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>(), 6)
        );
        self.frame.output(summary, || self.png(), || self.svg())
    }
}

/// A matrix drawn as coloured cells with a colour bar (row 0 at the top).
#[derive(Debug, Clone)]
pub struct Heatmap {
    frame: Frame,
    rows: Vec<Vec<f64>>,
    row_names: Vec<String>,
    col_names: Vec<String>,
}

impl Heatmap {
    pub fn new(title: impl Into<String>, rows: Vec<Vec<f64>>) -> Self {
        Self { frame: Frame::new(title), rows, row_names: Vec::new(), col_names: Vec::new() }
    }

    /// From a 2-D tensor of any numeric kind and device.
    pub fn from_tensor(title: impl Into<String>, matrix: &Tensor) -> Self {
        assert_eq!(matrix.dim(), 2, "a heatmap needs a 2-D tensor, got shape {:?}", matrix.size());
        let cols = matrix.size()[1] as usize;
        let flat: Vec<f64> =
            Vec::try_from(matrix.to_kind(Kind::Double).to_device(tch::Device::Cpu).contiguous().view([-1]))
                .expect("a double tensor converts to Vec<f64>");
        let rows = if cols == 0 { Vec::new() } else { flat.chunks(cols).map(<[f64]>::to_vec).collect() };
        Self::new(title, rows)
    }

    frame_builders!();

    /// Names for the rows, drawn left of the matrix.
    pub fn row_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.row_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Names for the columns, drawn under the matrix.
    pub fn col_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.col_names = names.into_iter().map(Into::into).collect();
        self
    }

    fn shape(&self) -> (usize, usize) {
        (self.rows.len(), self.rows.iter().map(Vec::len).max().unwrap_or(0))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(err)?;
        let (n_rows, n_cols) = self.shape();
        let (lo, hi) = span(self.rows.iter().flatten().copied(), 0.0);
        let colour = |v: f64| jet((v - lo) / (hi - lo));
        let root = root.titled(&self.frame.title, font(20.0)).map_err(err)?;
        let (main, bar) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(90));
        let label_w = if self.row_names.is_empty() { 48 } else { 90 };
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(if self.col_names.is_empty() { 42 } else { 48 })
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..n_cols.max(1) as f64, n_rows.max(1) as f64..0.0)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh().x_desc(&self.frame.x_label).y_desc(&self.frame.y_label).label_style(font(12.0));
        if !self.col_names.is_empty() {
            mesh.x_labels(0);
        }
        if !self.row_names.is_empty() {
            mesh.y_labels(0);
        }
        mesh.draw().map_err(err)?;
        let cells = self.rows.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(c, &v)| {
                Rectangle::new([(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)], colour(v).filled())
            })
        });
        chart.draw_series(cells).map_err(err)?;
        let style = font(12.0).color(&BLACK);
        for (c, name) in self.col_names.iter().enumerate().take(n_cols) {
            let (px, py) = chart.backend_coord(&(c as f64 + 0.5, n_rows as f64));
            main.draw(&Text::new(name.clone(), (px, py + 6), style.pos(Pos::new(HPos::Center, VPos::Top))))
                .map_err(err)?;
        }
        for (r, name) in self.row_names.iter().enumerate().take(n_rows) {
            let (px, py) = chart.backend_coord(&(0.0, r as f64 + 0.5));
            main.draw(&Text::new(name.clone(), (px - 6, py), style.pos(Pos::new(HPos::Right, VPos::Center))))
                .map_err(err)?;
        }
        colour_bar(&bar, lo, hi)
    }
}

/// A vertical gradient from `lo` to `hi` with value ticks, right of a heatmap.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, lo: f64, hi: f64) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_bottom(52)
        .margin_right(8)
        .y_label_area_size(0)
        .right_y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(err)?;
    chart.configure_mesh().disable_mesh().disable_x_axis().label_style(font(12.0)).draw().map_err(err)?;
    let steps = 64;
    let step = (hi - lo) / steps as f64;
    let strips = (0..steps).map(|i| {
        let v = lo + i as f64 * step;
        Rectangle::new([(0.0, v), (1.0, v + step)], jet((i as f64 + 0.5) / steps as f64).filled())
    });
    chart.draw_series(strips).map_err(err)?;
    Ok(())
}

impl Render for Heatmap {
    fn render(&self) -> Output {
        let (r, c) = self.shape();
        let summary = format!("heatmap '{}' ({r}×{c})", self.frame.title);
        self.frame.output(summary, || self.png(), || self.svg())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn decode(png: &[u8]) -> RgbImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("a valid PNG").to_rgb8()
    }

    fn colours(img: &RgbImage) -> usize {
        img.pixels().map(|p| p.0).collect::<std::collections::HashSet<_>>().len()
    }

    fn has_colour(img: &RgbImage, c: RGBColor) -> bool {
        img.pixels().any(|p| p.0 == [c.0, c.1, c.2])
    }

    fn curve() -> LinePlot {
        let xs: Vec<f64> = (0..50).map(|i| i as f64 / 49.0).collect();
        LinePlot::new("inspectability")
            .x_label("ξ")
            .y_label("fraction of channels")
            .series("SSB", xs.clone(), xs.iter().map(|x| 1.0 - x * x))
            .series("baseline", xs.clone(), xs.iter().map(|x| 1.0 - x))
            .size(500, 300)
    }

    #[test]
    fn the_legend_goes_where_it_hides_the_least() {
        use SeriesLabelPosition::*;
        let place = |points: &[(f64, f64)]| quietest_place(points, (0.0, 1.0), (0.0, 1.0), (0.3, 0.2));
        // A line rising to the upper right leaves the upper left free; an empty plot keeps the default.
        assert!(matches!(place(&traced(&[(0.0, 0.0), (1.0, 1.0)])), UpperLeft));
        assert!(matches!(place(&traced(&[(0.0, 1.0), (1.0, 0.0)])), UpperRight));
        assert!(matches!(place(&[]), UpperRight));
        // Everything high up: a lower corner.
        assert!(matches!(place(&traced(&[(0.0, 0.9), (1.0, 0.95)])), LowerRight));
        // Lines along the top and the bottom: the middle of a side.
        let both: Vec<_> = [traced(&[(0.0, 0.95), (1.0, 0.9)]), traced(&[(0.0, 0.05), (1.0, 0.1)])].concat();
        assert!(matches!(place(&both), MiddleRight));
        // Two points far apart still count as the line between them.
        assert_eq!(traced(&[(0.0, 0.0), (1.0, 1.0)]).len(), 17);
    }

    #[test]
    fn line_plot_png_has_its_size_and_series_colours() {
        let img = decode(&curve().png());
        assert_eq!(img.dimensions(), (500, 300));
        assert!(colours(&img) > 10);
        assert!(has_colour(&img, palette(0)) && has_colour(&img, palette(1)));
    }

    #[test]
    fn line_plot_svg_has_title_and_legend() {
        let svg = curve().svg();
        assert!(svg.contains("<svg") && svg.contains("inspectability") && svg.contains("baseline"));
    }

    #[test]
    fn line_plot_renders_png_and_summary_or_svg_on_request() {
        let out = curve().render();
        assert!(out.data().contains_key("image/png"));
        assert_eq!(out.data()["text/plain"], "line plot 'inspectability' (2 series)");
        let out = curve().svg_output().render();
        assert!(out.data().contains_key("image/svg+xml") && !out.data().contains_key("image/png"));
    }

    #[test]
    fn pushed_points_grow_a_series() {
        let mut plot = LinePlot::new("loss");
        for step in 0..5 {
            plot.push("train", step as f64, 1.0 / (step + 1) as f64);
        }
        plot.push("test", 0.0, 0.9);
        assert_eq!(plot.series.len(), 2);
        assert_eq!(plot.series[0].points.len(), 5);
        assert_eq!(decode(&plot.png()).dimensions(), (640, 400));
    }

    #[test]
    fn text_is_drawn_without_system_fonts() {
        // A title alone changes pixels only if the embedded font rendered it.
        let blank = decode(&LinePlot::new("").png());
        let titled = decode(&LinePlot::new("A title").png());
        assert_ne!(blank, titled);
    }

    #[test]
    fn empty_and_flat_plots_still_draw() {
        assert_eq!(decode(&LinePlot::new("nothing").png()).dimensions(), (640, 400));
        let flat = LinePlot::new("flat").series_y("c", [2.0f32; 3]);
        assert!(has_colour(&decode(&flat.png()), palette(0)));
    }

    #[test]
    fn bar_chart_draws_grouped_bars() {
        let chart = BarChart::new("AUiC per layer")
            .categories(["conv1", "layer1", "layer2"])
            .group("SSB", [0.2, 0.5, 0.7])
            .group("baseline", [0.1, 0.3, 0.4])
            .size(400, 300);
        let img = decode(&chart.png());
        assert_eq!(img.dimensions(), (400, 300));
        assert!(has_colour(&img, palette(0)) && has_colour(&img, palette(1)));
        let svg = chart.svg();
        assert!(svg.contains("<svg") && svg.contains("AUiC per layer") && svg.contains("layer2"));
        assert!(chart.render().data()["text/plain"].as_str().unwrap().contains("3 categories × 2 groups"));
    }

    #[test]
    fn scatter_plot_draws_points() {
        let plot = ScatterPlot::new("mIoU vs channels").series("a", [1, 2, 3], [0.1, 0.4, 0.2]).size(300, 300);
        let img = decode(&plot.png());
        assert_eq!(img.dimensions(), (300, 300));
        assert!(colours(&img) > 5);
        assert!(plot.svg().contains("mIoU vs channels"));
    }

    #[test]
    fn heatmap_draws_cells_and_colour_bar() {
        let map = Heatmap::from_tensor("overlap", &Tensor::arange(12, (Kind::Float, tch::Device::Cpu)).view([3, 4]))
            .row_names(["a", "b", "c"])
            .size(480, 320);
        assert_eq!(map.shape(), (3, 4));
        let img = decode(&map.png());
        assert_eq!(img.dimensions(), (480, 320));
        assert!(has_colour(&img, jet(0.0)) && has_colour(&img, jet(1.0)));
        assert!(map.svg().contains("overlap"));
        assert_eq!(map.render().data()["text/plain"], "heatmap 'overlap' (3×4)");
    }
}
