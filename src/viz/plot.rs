//! Plots drawn with plotters: line plots, grouped bar charts, scatter plots and heatmaps.
//!
//! Every plot is a builder that owns its data, so a cell can keep it, add points (a loss
//! curve while training) and show it again with [`Handle::update`](crate::display::Handle).
//! PNG is the default display; `.svg_output()` switches a plot's display to SVG.

use super::{fonts, jet, palette, point_names, short_list};
use crate::display::{Output, Render};
use plotters::coord::ranged1d::ValueFormatter;
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
    let (whole_x, whole_y) = (whole_numbers(all().map(|p| p.0)), whole_numbers(all().map(|p| p.1)));
    let mut chart = ChartBuilder::on(root)
        .caption(&frame.title, font(20.0))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let x_tick = |v: &f64| tick_label(*v, whole_x);
    let y_tick = |v: &f64| tick_label(*v, whole_y);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&frame.x_label)
        .y_desc(&frame.y_label)
        .label_style(font(13.0))
        .light_line_style(BLACK.mix(0.05))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick);
    if whole_x {
        mesh.x_labels(whole_ticks(x0, x1));
    }
    if whole_y {
        mesh.y_labels(whole_ticks(y0, y1));
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

/// Ticks that plotters draws by default on an axis.
const TICKS: usize = 11;

/// Whether every finite value is a whole number (steps, epochs, counts), so that the axis
/// reads `100`, not `100.0`; false when there is none. From 2^52 (about 4.5e15) up every
/// f64 is whole, so whole values that large say nothing about the data.
fn whole_numbers(mut values: impl Iterator<Item = f64>) -> bool {
    let mut any = false;
    values.all(|v| {
        any |= v.is_finite();
        !v.is_finite() || (v.fract() == 0.0 && v.abs() < 1e15)
    }) && any
}

/// How many ticks an axis of whole numbers over `lo..hi` asks plotters for: no more than
/// there are whole numbers in it, so that the ticks stay 1 apart or more (0..4 would
/// otherwise get a tick every 0.5).
fn whole_ticks(lo: f64, hi: f64) -> usize {
    ((hi - lo).floor() as usize + 1).clamp(1, TICKS)
}

/// A tick's label: whole numbers without decimals on an axis of whole numbers (`whole`),
/// plotters' own label (`0.25`, `100.0`) otherwise. A tick between whole numbers keeps its
/// decimals even there, rather than be rounded to a wrong label.
fn tick_label(v: f64, whole: bool) -> String {
    let rounded = v.round();
    // Tick positions are computed in floating point, so a whole tick may be a hair off.
    if whole && v.is_finite() && (v - rounded).abs() <= 1e-9 * rounded.abs().max(1.0) {
        // `+ 0.0` turns -0 into 0.
        format!("{:.0}", rounded + 0.0)
    } else {
        RangedCoordf64::format(&v)
    }
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

/// The smoothing weight [`LinePlot::smoothed`] suggests: each point's trend value is 90%
/// the trend so far and 10% the point, an average over roughly the last ten points.
pub const SMOOTHING: f64 = 0.9;

/// A smoothing weight as [`smooth`] uses it: at 1 the average would never take in a point
/// (and its bias correction would divide by 0), so it stops at 0.999; NaN is no smoothing.
fn smoothing_weight(weight: f64) -> f64 {
    if weight.is_nan() {
        0.0
    } else {
        weight.clamp(0.0, 0.999)
    }
}

/// The exponential moving average of `values` with bias correction, as TensorBoard smooths
/// scalars (`vz_line_chart2/line-chart.ts`): `last = weight * last + (1 - weight) * v` from
/// `last = 0`, divided by `1 - weight^n` after `n` finite values, so that the start is the
/// data's and not pulled towards 0. Non-finite values pass through and leave the average as
/// it was. `weight` 0 (or NaN) returns `values`; it is clamped to `0..=0.999`.
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let weight = smoothing_weight(weight);
    let (mut last, mut n) = (0.0, 0);
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                return v;
            }
            last = weight * last + (1.0 - weight) * v;
            n += 1;
            last / (1.0 - weight.powi(n))
        })
        .collect()
}

/// How much of its colour the raw line under a trend keeps: enough to show the noise's
/// spread, little enough that the trend stands out where the raw points are dense.
const RAW_TINT: f64 = 0.3;

/// `colour` lightened towards white, keeping `amount` of it: drawn opaque, since a
/// translucent line darkens wherever its segments overlap, and a noisy curve is mostly
/// overlaps.
fn tint(colour: RGBColor, amount: f64) -> RGBColor {
    let mix = |c: u8| (255.0 - (255.0 - c as f64) * amount).round() as u8;
    RGBColor(mix(colour.0), mix(colour.1), mix(colour.2))
}

/// Line plot of one or more named series: inspectability curves, loss curves.
#[derive(Debug, Clone)]
pub struct LinePlot {
    frame: Frame,
    series: Vec<Series>,
    /// The weight of [`smooth`], when each series is drawn with its trend.
    smoothing: Option<f64>,
}

impl LinePlot {
    pub fn new(title: impl Into<String>) -> Self {
        Self { frame: Frame::new(title), series: Vec::new(), smoothing: None }
    }

    frame_builders!();

    /// Draws each series as a thin light line under a bold line of its trend, [`smooth`]ed
    /// with `weight` (0 to 0.999; [`SMOOTHING`] suits a short run's loss per step): for noisy curves,
    /// where the raw line alone hides whether the loss still falls.
    pub fn smoothed(mut self, weight: f64) -> Self {
        self.smoothing = Some(smoothing_weight(weight));
        self
    }

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
        let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
        if self.smoothing.is_some() {
            // Every raw line before any trend, so that no series' noise covers another's trend.
            for (i, s) in self.series.iter().enumerate() {
                let points = s.points.iter().copied().filter(finite);
                chart.draw_series(LineSeries::new(points, tint(palette(i), RAW_TINT).stroke_width(1))).map_err(err)?;
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let colour = palette(i);
            let ys: Vec<f64> = s.points.iter().map(|p| p.1).collect();
            let trend = match self.smoothing {
                Some(weight) => s.points.iter().zip(smooth(&ys, weight)).map(|(p, y)| (p.0, y)).collect(),
                None => s.points.clone(),
            };
            chart
                .draw_series(LineSeries::new(trend.into_iter().filter(finite), colour.stroke_width(2)))
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
        // Weights derived from a run's length (0.98 from 1 - 100/5000) print as 0.98, not
        // with float noise in the last digits.
        let smoothed = self.smoothing.map(|w| format!(", smoothed {}", (w * 1000.0).round() / 1000.0));
        let smoothed = smoothed.unwrap_or_default();
        let summary = format!("line plot '{}' ({} series{smoothed})", self.frame.title, self.series.len());
        self.frame.output(summary, || self.png(), || self.svg())
    }
}

/// Scatter plot of one or more named point sets.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    frame: Frame,
    series: Vec<Series>,
    /// For each series, the names written beside its points (none unless set).
    point_names: Vec<Vec<String>>,
    radius: u32,
}

impl ScatterPlot {
    pub fn new(title: impl Into<String>) -> Self {
        Self { frame: Frame::new(title), series: Vec::new(), point_names: Vec::new(), radius: 3 }
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
        self.point_names.push(Vec::new());
        self
    }

    /// Names the points of the last series added, in order, each written beside its point;
    /// for a few points that a reader must tell apart (classes in a correlation).
    pub fn point_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        if let Some(last) = self.point_names.last_mut() {
            *last = names.into_iter().map(Into::into).collect();
        }
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
        let named: Vec<((f64, f64), &String)> = (self.series.iter().zip(&self.point_names))
            .flat_map(|(s, names)| s.points.iter().copied().zip(names))
            .filter(|(p, _)| p.0.is_finite() && p.1.is_finite())
            .collect();
        if !named.is_empty() {
            let style = font(12.0).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Top));
            let at: Vec<(i32, i32)> = named.iter().map(|(p, _)| chart.backend_coord(p)).collect();
            let sizes = named.iter().map(|(_, name)| root.estimate_text_size(name, &style).map_err(err));
            let sizes = sizes.collect::<Result<Vec<_>, _>>()?;
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            let (x0, y0) = root.get_base_pixel();
            for ((_, name), b) in named.iter().zip(point_names::place(&at, &sizes, r, xs, ys)) {
                root.draw(&Text::new(name.as_str(), (b.left - x0, b.top - y0), style.clone())).map_err(err)?;
            }
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

    /// A noisy loss per step, falling fast and then slowly, as training draws it.
    fn noisy_loss(steps: usize) -> Vec<f64> {
        let mut state = 12345u64;
        (0..steps)
            .map(|t| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let trend = 2.0 * (-(t as f64) / (steps as f64 / 6.0)).exp() + 0.35;
                trend * (1.0 + 0.9 * noise)
            })
            .collect()
    }

    #[test]
    fn smoothing_is_a_debiased_moving_average() {
        let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        // 1, then 0s, weight 0.5: 0.5/0.5, 0.25/0.75, 0.125/0.875.
        assert!(close(&smooth(&[1.0, 0.0, 0.0], 0.5), &[1.0, 1.0 / 3.0, 1.0 / 7.0]));
        // Bias correction: a constant stays itself from the first point on.
        assert!(close(&smooth(&[3.0; 6], SMOOTHING), &[3.0; 6]));
        // Weight 0 is no smoothing; NaN passes through without counting.
        assert!(close(&smooth(&[1.0, 5.0, 2.0], 0.0), &[1.0, 5.0, 2.0]));
        let gap = smooth(&[1.0, f64::NAN, 0.0], 0.5);
        assert!(gap[1].is_nan() && close(&[gap[0], gap[2]], &[1.0, 1.0 / 3.0]));
        // Against the closed form: sum of (1-w) w^(n-k) v_k over 1 - w^n.
        let values = noisy_loss(40);
        let w: f64 = 0.9;
        let direct: Vec<f64> = (1..=values.len())
            .map(|n| {
                let sum: f64 = (0..n).map(|k| (1.0 - w) * w.powi((n - 1 - k) as i32) * values[k]).sum();
                sum / (1.0 - w.powi(n as i32))
            })
            .collect();
        assert!(close(&smooth(&values, w), &direct));
        // A weight of 1 would freeze the average at 0; it is held below that.
        assert!(smooth(&[2.0, 2.0], 1.0).iter().all(|v| (v - 2.0).abs() < 1e-9));
    }

    #[test]
    fn a_smoothed_plot_draws_the_raw_line_light_under_its_trend() {
        let plot = LinePlot::new("loss").x_label("step").series_y("train", noisy_loss(400)).smoothed(SMOOTHING);
        let img = decode(&plot.png());
        assert_eq!(img.dimensions(), (640, 400));
        assert!(has_colour(&img, palette(0)) && has_colour(&img, tint(palette(0), RAW_TINT)));
        assert_eq!(plot.render().data()["text/plain"], "line plot 'loss' (1 series, smoothed 0.9)");
        let tuned = plot.clone().smoothed(1.0 - 100.0 / 3000.0).render();
        assert_eq!(tuned.data()["text/plain"], "line plot 'loss' (1 series, smoothed 0.967)");
        assert!(plot.svg().contains("train"));
        // Unsmoothed plots draw no light line.
        let plain = LinePlot::new("loss").series_y("train", noisy_loss(400));
        assert!(!has_colour(&decode(&plain.png()), tint(palette(0), RAW_TINT)));
    }

    #[test]
    fn axes_of_whole_numbers_have_whole_labels() {
        assert_eq!(tick_label(100.0, true), "100");
        assert_eq!(tick_label(100.0, false), "100.0");
        assert_eq!(tick_label(-0.0, true), "0");
        assert_eq!(tick_label(-20.0, true), "-20");
        assert_eq!(tick_label(0.1 + 0.2 + 2.7, true), "3");
        // A tick between whole numbers keeps its decimals.
        assert_eq!(tick_label(0.5, true), "0.5");
        assert_eq!(tick_label(0.25, false), "0.25");
        assert!(whole_numbers([0.0, 1.0, 25000.0, f64::NAN].into_iter()));
        assert!(!whole_numbers([0.0, 0.5].into_iter()));
        assert!(!whole_numbers([1e16].into_iter()));
        assert!(!whole_numbers(std::iter::empty()));
        // Few whole numbers: no more ticks than there are of them.
        assert_eq!((whole_ticks(0.0, 4.0), whole_ticks(-0.5, 0.5), whole_ticks(0.0, 25000.0)), (5, 2, TICKS));
        // plotters' SVG puts each text on a line of its own.
        let text = |svg: &str, label: &str| svg.contains(&format!(">\n{label}\n</text>"));
        let steps = LinePlot::new("loss").series_y("train", noisy_loss(201)).svg();
        assert!(text(&steps, "200") && !text(&steps, "200.0") && text(&steps, "1.0"), "{steps}");
        let few = LinePlot::new("loss").series("train", [0, 1, 2, 3, 4], [1, 3, 2, 5, 4]).svg();
        assert!(text(&few, "4") && text(&few, "5"), "{few}");
        assert!(!text(&few, "0.5") && !text(&few, "3.5") && !text(&few, "4.0"), "{few}");
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
    fn a_scatter_plots_points_can_be_named() {
        let plain = ScatterPlot::new("D vs accuracy").series("classes", [0.3, 0.5], [0.9, 0.2]).size(300, 300);
        let named = plain.clone().point_names(["lamp", "tree"]);
        let svg = named.svg();
        assert!(svg.contains("lamp") && svg.contains("tree"), "{svg}");
        assert!(!plain.svg().contains("lamp"));
        assert_ne!(named.png(), plain.png(), "the names are drawn in the PNG too");
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
