//! Plots drawn from a results folder alone (`meta.json` + `raw/*.hlog`), as PNG and SVG:
//!
//! - `spectrum`: latency against percentile on the usual log scale (0, 90, 99, 99.9,
//!   99.99, 99.999), one line per configuration (its repetitions' histograms merged), the
//!   floors dashed as the reference;
//! - `bars`: p50 and p99.9 per configuration, the bar at the median repetition and a
//!   whisker over min–max, so a difference can be checked against the spread; a panel
//!   whose values span more than 10× (a tail, usually) is drawn on a log axis;
//! - `throughput` (when configurations carry a `series`): latency against achieved rate.
//!
//! Deterministic by construction: fixed sizes, fixed palette, the embedded font (no
//! system font lookup), inputs in file order; redrawing gives the same bytes.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{spread, Meta, Run, RunKind};

/// Liberation Sans Regular 2.1.5 (SIL OFL 1.1, from Debian's fonts-liberation2; see
/// assets/LiberationSans-LICENSE.txt). Embedded so every machine draws the same glyphs.
static FONT: &[u8] = include_bytes!("../assets/LiberationSans-Regular.ttf");
const FONT_NAME: &str = "liberation-sans";
const SIZE: (u32, u32) = (1100, 650);
/// Spectrum x axis: -log10(1 - p), from p = 0 to p = 99.999 %.
const SPECTRUM_X_MAX: f64 = 5.0;
const SPECTRUM_STEPS_PER_DECADE: u32 = 20;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
];
const FLOOR_COLORS: [RGBColor; 2] = [RGBColor(120, 120, 120), RGBColor(180, 180, 180)];

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the embedded font does not parse"));
    });
    result
}

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT_NAME), size, FontStyle::Normal)
}

/// Every plot for the folder; returns the file names written.
pub fn draw_all(dir: &Path) -> Result<Vec<String>> {
    register_font()?;
    let meta = Meta::read(dir)?;
    let spectra = spectra(dir, &meta)?;
    let mut kinds = vec![Plot::Spectrum, Plot::Bars];
    if meta.runs.iter().any(|r| r.series.is_some()) {
        kinds.push(Plot::Throughput);
    }
    let mut written = Vec::new();
    for kind in kinds {
        for ext in ["png", "svg"] {
            let name = format!("{}.{ext}", kind.name());
            let path = dir.join(&name);
            if ext == "svg" {
                let root = SVGBackend::new(&path, SIZE).into_drawing_area();
                draw(kind, &root, &meta, &spectra)?;
                root.present().map_err(|e| anyhow!("writing {name}: {e}"))?;
            } else {
                let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
                draw(kind, &root, &meta, &spectra)?;
                root.present().map_err(|e| anyhow!("writing {name}: {e}"))?;
            }
            written.push(name);
        }
    }
    Ok(written)
}

#[derive(Clone, Copy)]
enum Plot {
    Spectrum,
    Bars,
    Throughput,
}

impl Plot {
    fn name(self) -> &'static str {
        match self {
            Plot::Spectrum => "spectrum",
            Plot::Bars => "bars",
            Plot::Throughput => "throughput",
        }
    }
}

/// plotters errors borrow the backend's error type; flatten them to text.
macro_rules! d {
    ($e:expr) => {
        $e.map_err(|e| anyhow!("drawing: {e}"))?
    };
}

fn draw<DB: DrawingBackend>(
    kind: Plot,
    root: &DrawingArea<DB, Shift>,
    meta: &Meta,
    spectra: &[Spectrum],
) -> Result<()> {
    d!(root.fill(&WHITE));
    match kind {
        Plot::Spectrum => spectrum_plot(root, meta, spectra),
        Plot::Bars => bars_plot(root, meta),
        Plot::Throughput => throughput_plot(root, meta),
    }
}

fn caption(meta: &Meta, what: &str) -> String {
    format!(
        "{} — {what} ({} reps, {})",
        meta.experiment,
        meta.repetitions,
        meta.environment.time.get(..10).unwrap_or("")
    )
}

/// One colour per label, fixed by its place in the folder (floors grey), so a
/// configuration has the same colour in every plot even when some are excluded.
fn color_of(meta: &Meta, label: &str) -> RGBColor {
    let (mut conf_i, mut floor_i) = (0, 0);
    for l in meta.labels() {
        let is_floor = meta.runs_of(&l).any(|r| r.kind == RunKind::Floor);
        if l == label {
            return if is_floor {
                FLOOR_COLORS[floor_i % FLOOR_COLORS.len()]
            } else {
                PALETTE[conf_i % PALETTE.len()]
            };
        }
        if is_floor {
            floor_i += 1;
        } else {
            conf_i += 1;
        }
    }
    BLACK
}

fn spectrum_plot<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    meta: &Meta,
    spectra: &[Spectrum],
) -> Result<()> {
    let ys: Vec<f64> = spectra
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .filter(|y| *y > 0.0)
        .collect();
    let y_lo = ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let y_hi = ys.iter().cloned().fold(0.0, f64::max);
    let (y_lo, y_hi) = if ys.is_empty() {
        (1.0, 10.0)
    } else {
        (y_lo * 0.8, y_hi * 1.25)
    };
    let mut chart = d!(ChartBuilder::on(root)
        .caption(
            caption(meta, "latency by percentile, repetitions merged"),
            font(22.0)
        )
        .margin(15)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..SPECTRUM_X_MAX, (y_lo..y_hi).log_scale()));
    d!(chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format_us(*y))
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .label_style(font(15.0))
        .axis_desc_style(font(17.0))
        .draw());
    for (label, is_floor, pts) in spectra {
        let c = color_of(meta, label);
        if *is_floor {
            d!(chart.draw_series(DashedLineSeries::new(
                pts.iter().cloned(),
                8,
                5,
                c.stroke_width(2)
            )))
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        } else {
            d!(chart.draw_series(LineSeries::new(pts.iter().cloned(), c.stroke_width(2))))
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        }
    }
    // Excluded configurations stay visible in the legend, so a missing line is explained.
    for label in meta.labels() {
        if !meta.runs_of(&label).any(|r| r.comparable()) {
            let why = match meta.runs_of(&label).next().map(|r| r.status) {
                Some(crate::results::Status::Fallback) => "fallback",
                _ => "failed",
            };
            d!(chart.draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), WHITE)))
                .label(format!("{label}: excluded ({why})"))
                .legend(|(x, y)| Cross::new((x + 10, y), 4, RGBColor(150, 150, 150)));
        }
    }
    d!(chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(15.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw());
    Ok(())
}

fn percentile_label(x: f64) -> String {
    match x.round() as i64 {
        0 => "0".into(),
        1 => "90".into(),
        2 => "99".into(),
        3 => "99.9".into(),
        4 => "99.99".into(),
        5 => "99.999".into(),
        _ => String::new(),
    }
}

fn format_us(y: f64) -> String {
    if y >= 10.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

/// (label, is_floor, median, min, max) of one metric over comparable repetitions;
/// excluded configurations keep their slot with no bar so they are visibly missing.
type BarRow = (String, bool, Option<(f64, f64, f64)>);

/// One number of a run (None when the run has none).
type Metric = fn(&Run) -> Option<f64>;

fn bar_rows(meta: &Meta, metric: Metric) -> Vec<BarRow> {
    meta.labels()
        .into_iter()
        .map(|label| {
            let runs: Vec<&Run> = meta.runs_of(&label).collect();
            let is_floor = runs.first().is_some_and(|r| r.kind == RunKind::Floor);
            let v: Vec<f64> = runs
                .iter()
                .filter(|r| r.comparable())
                .filter_map(|r| metric(r))
                .collect();
            (label, is_floor, spread(&v))
        })
        .collect()
}

/// Values that span more than this factor get a log axis in the bar panels.
const LOG_AXIS_SPAN: f64 = 10.0;

/// The x range of a log axis for these values (whole decades around them), or None when
/// they span at most [`LOG_AXIS_SPAN`] (a linear axis from 0 reads better then).
fn log_axis_range(values: &[f64]) -> Option<(f64, f64)> {
    let positive = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite());
    let lo = positive.clone().fold(f64::INFINITY, f64::min);
    let hi = positive.fold(0.0f64, f64::max);
    if !(lo.is_finite() && hi / lo > LOG_AXIS_SPAN) {
        return None;
    }
    Some((
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    ))
}

/// One bar panel on a linear or a log x axis (one body, two coordinate types): bars
/// from the axis' low end to the median, a whisker over min–max.
macro_rules! bar_panel {
    ($panel:expr, $meta:expr, $title:expr, $rows:expr, $n:expr, $y_label:expr, $x_spec:expr, $x_lo:expr, $x_hi:expr) => {{
        let (n, x_lo, x_hi): (usize, f64, f64) = ($n, $x_lo, $x_hi);
        let mut chart = d!(ChartBuilder::on($panel)
            .margin(12)
            // Room for the last x label (a log axis ends on a wide "10000").
            .margin_right(36)
            .x_label_area_size(35)
            .y_label_area_size(190)
            .caption($title, font(18.0))
            .build_cartesian_2d($x_spec, 0.0..n as f64));
        d!(chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter($y_label)
            .x_label_formatter(&|x| format_us(*x))
            .label_style(font(14.0))
            .draw());
        for (i, (label, _, s)) in $rows.iter().enumerate() {
            let c = color_of($meta, label);
            let y0 = n as f64 - i as f64 - 0.85;
            let y1 = n as f64 - i as f64 - 0.15;
            let ym = n as f64 - i as f64 - 0.5;
            let Some((m, lo, hi)) = s else {
                // At 1 % of the axis from its low end, on either kind of axis.
                let x_text = if x_lo > 0.0 {
                    x_lo * (x_hi / x_lo).powf(0.01)
                } else {
                    x_hi * 0.01
                };
                d!(chart.draw_series(std::iter::once(Text::new(
                    "excluded (see runs.csv)",
                    (x_text, ym + 0.1),
                    font(13.0)
                ))));
                continue;
            };
            let (m, lo, hi) = (m.max(x_lo), lo.max(x_lo), hi.max(x_lo));
            d!(chart.draw_series(std::iter::once(Rectangle::new(
                [(x_lo, y0), (m, y1)],
                c.filled()
            ))));
            d!(chart.draw_series(std::iter::once(PathElement::new(
                vec![(lo, ym), (hi, ym)],
                BLACK.stroke_width(2)
            ))));
            for x in [lo, hi] {
                d!(chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, ym - 0.15), (x, ym + 0.15)],
                    BLACK.stroke_width(2)
                ))));
            }
        }
    }};
}

fn bars_plot<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, meta: &Meta) -> Result<()> {
    let (title, body) = root.split_vertically(40);
    d!(title.titled(
        &caption(meta, "median, whiskers min–max over repetitions"),
        font(22.0)
    ));
    let panels = body.split_evenly((1, 2));
    let metrics: [(&str, Metric); 2] = [
        ("p50 (µs)", |r| r.latency_us.as_ref().map(|p| p.p50)),
        ("p99.9 (µs)", |r| r.latency_us.as_ref().map(|p| p.p99_9)),
    ];
    for (panel, (name, metric)) in panels.iter().zip(metrics) {
        // Horizontal bars: configuration labels read left to right however long they are.
        let rows = bar_rows(meta, metric);
        let n = rows.len().max(1);
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let y_label = |y: &f64| {
            // Row i sits at n - i - 0.5 so the first configuration is on top.
            let i = n as f64 - 0.5 - *y;
            let r = i.round();
            if (i - r).abs() < 1e-6 && r >= 0.0 {
                labels.get(r as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let shown: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.2)
            .flat_map(|(m, lo, hi)| [m, lo, hi])
            .collect();
        // One tail bar of 4 ms next to bars of 30 µs leaves the others as slivers; on a
        // log axis every bar keeps its length's order of magnitude readable.
        match log_axis_range(&shown) {
            Some((x_lo, x_hi)) => bar_panel!(
                panel,
                meta,
                &format!("{name}, log scale"),
                &rows,
                n,
                &y_label,
                (x_lo..x_hi).log_scale(),
                x_lo,
                x_hi
            ),
            None => {
                let x_hi = shown.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.1;
                bar_panel!(panel, meta, name, &rows, n, &y_label, 0.0..x_hi, 0.0, x_hi)
            }
        }
    }
    Ok(())
}

/// (achieved rate, p50, p99.9)
type RatePoint = (f64, f64, f64);

/// Latency (p50 solid, p99.9 dashed) against achieved rate, one curve per series.
fn throughput_plot<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, meta: &Meta) -> Result<()> {
    // series -> [(rate, p50, p99.9)] by label, medians over comparable repetitions.
    let mut series: Vec<(String, Vec<RatePoint>)> = Vec::new();
    for label in meta.labels() {
        let runs: Vec<&Run> = meta.runs_of(&label).filter(|r| r.comparable()).collect();
        let Some(name) = runs.first().and_then(|r| r.series.clone()) else {
            continue;
        };
        let med = |f: fn(&Run) -> Option<f64>| {
            spread(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>()).map(|s| s.0)
        };
        let (Some(rate), Some(p50), Some(p999)) = (
            med(|r| r.rate_per_s),
            med(|r| r.latency_us.as_ref().map(|p| p.p50)),
            med(|r| r.latency_us.as_ref().map(|p| p.p99_9)),
        ) else {
            continue;
        };
        match series.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1.push((rate, p50, p999)),
            None => series.push((name, vec![(rate, p50, p999)])),
        }
    }
    for s in &mut series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let all: Vec<&(f64, f64, f64)> = series.iter().flat_map(|s| s.1.iter()).collect();
    let x_hi = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_lo = all
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(1e9)
        * 0.8;
    let y_hi = all.iter().map(|p| p.2).fold(1.0, f64::max) * 1.25;
    let y_lo = if y_lo.is_finite() && y_lo > 0.0 {
        y_lo
    } else {
        1.0
    };
    let mut chart = d!(ChartBuilder::on(root)
        .caption(
            caption(
                meta,
                "latency vs achieved throughput (p50 solid, p99.9 dashed)"
            ),
            font(22.0)
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..x_hi, (y_lo..y_hi).log_scale()));
    d!(chart
        .configure_mesh()
        .x_desc("achieved rate (messages/s)")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .y_label_formatter(&|y| format_us(*y))
        .label_style(font(15.0))
        .axis_desc_style(font(17.0))
        .draw());
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        d!(chart.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            c.stroke_width(2)
        )))
        .label(format!("{name} p50"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        d!(chart.draw_series(DashedLineSeries::new(
            pts.iter().map(|p| (p.0, p.2)),
            8,
            5,
            c.stroke_width(2)
        )))
        .label(format!("{name} p99.9"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(1)));
        d!(chart.draw_series(
            pts.iter()
                .flat_map(|p| [(p.0, p.1), (p.0, p.2)])
                .map(|p| Circle::new(p, 4, c.filled()))
        ));
    }
    d!(chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(15.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw());
    Ok(())
}

/// (label, is_floor, points (x = -log10(1-p), latency µs)).
type Spectrum = (String, bool, Vec<(f64, f64)>);

/// One merged histogram per label over its comparable runs' interval logs; falls back to
/// the summary percentiles (median across repetitions) when a run has no interval log.
fn spectra(dir: &Path, meta: &Meta) -> Result<Vec<Spectrum>> {
    let mut out = Vec::new();
    for label in meta.labels() {
        let runs: Vec<&Run> = meta.runs_of(&label).filter(|r| r.comparable()).collect();
        if runs.is_empty() {
            continue;
        }
        let is_floor = runs[0].kind == RunKind::Floor;
        let mut merged: Option<Histogram<u64>> = None;
        let mut all_logs = true;
        for r in &runs {
            match &r.interval_log {
                Some(rel) => {
                    let h = read_interval_log(&dir.join(rel))?;
                    match &mut merged {
                        Some(m) => m.add(&h).map_err(|e| anyhow!("merging {rel}: {e:?}"))?,
                        None => merged = Some(h),
                    }
                }
                None => all_logs = false,
            }
        }
        let points = match merged {
            Some(h) if all_logs && !h.is_empty() => {
                let mut pts = Vec::new();
                let steps = (SPECTRUM_X_MAX * SPECTRUM_STEPS_PER_DECADE as f64) as u32;
                for i in 0..=steps {
                    let x = i as f64 / SPECTRUM_STEPS_PER_DECADE as f64;
                    let q = 1.0 - 10f64.powf(-x);
                    // Beyond what the sample count can resolve, the line would only repeat max.
                    if (1.0 - q) * (h.len() as f64) < 1.0 {
                        break;
                    }
                    pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
                }
                pts.push((
                    (h.len() as f64).log10().min(SPECTRUM_X_MAX),
                    h.max() as f64 / 1000.0,
                ));
                pts
            }
            _ => summary_points(&runs),
        };
        out.push((label, is_floor, points));
    }
    Ok(out)
}

fn summary_points(runs: &[&Run]) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    type Pick = fn(&crate::results::Percentiles) -> f64;
    let fields: [(f64, Pick); 5] = [
        (0.5, |p| p.p50),
        (0.9, |p| p.p90),
        (0.99, |p| p.p99),
        (0.999, |p| p.p99_9),
        (0.9999, |p| p.p99_99),
    ];
    for (q, f) in fields {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.latency_us.as_ref().map(f))
            .collect();
        if let Some((m, _, _)) = spread(&v) {
            pts.push((-(1.0f64 - q).log10(), m));
        }
    }
    pts
}

/// Sums every interval of an HdrHistogram log (values in ns) into one histogram.
pub fn read_interval_log(path: &Path) -> Result<Histogram<u64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut de = Deserializer::new();
    let mut total: Option<Histogram<u64>> = None;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow!("{}: {e:?}", path.display()))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .with_context(|| format!("{}: bad base64", path.display()))?;
            let h: Histogram<u64> = de
                .deserialize(&mut raw.as_slice())
                .map_err(|e| anyhow!("{}: {e:?}", path.display()))?;
            match &mut total {
                Some(t) => t.add(&h).map_err(|e| anyhow!("{e:?}"))?,
                None => total = Some(h),
            }
        }
    }
    total.with_context(|| format!("{}: no intervals", path.display()))
}

#[cfg(test)]
mod tests {
    use super::log_axis_range;

    #[test]
    fn bar_panels_go_logarithmic_only_beyond_a_tenfold_span() {
        assert_eq!(
            log_axis_range(&[30.0, 35.0, 290.0]),
            None,
            "9.7x stays linear"
        );
        assert_eq!(log_axis_range(&[30.0, 4000.0]), Some((10.0, 10000.0)));
        assert_eq!(
            log_axis_range(&[0.0, 5.0, 60.0]),
            Some((1.0, 100.0)),
            "zero ignored"
        );
        assert_eq!(log_axis_range(&[]), None);
    }
}
