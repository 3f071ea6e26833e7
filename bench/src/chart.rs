//! The PNG chart of the time series, drawn with plotters into a pixel buffer and encoded with
//! `png`. Its text uses a small DejaVu Sans embedded in the binary (`fonts/`, with its
//! licence), so no system font is needed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::series::{Interval, Series};
use crate::target::Counts;

/// DejaVu Sans, cut down to ASCII and a few symbols (see `fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 330;

/// What the chart marks besides the lines.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    /// The receiver's outage window, seconds.
    pub outage: Option<(f64, f64)>,
}

struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

impl Line {
    fn wide(mut self) -> Line {
        self.width = 5;
        self
    }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

fn rate_line(label: &str, color: RGBColor, s: &Series, f: fn(&Counts) -> u64) -> Line {
    let points = s
        .intervals()
        .iter()
        .filter(|i| i.dt > 0.0)
        .map(|i: &Interval| (i.t, f(&i.delta) as f64 / i.dt))
        .collect();
    Line {
        label: label.to_owned(),
        color,
        width: 2,
        points,
    }
}

fn level_line(label: &str, color: RGBColor, s: &Series, f: fn(&Counts) -> u64) -> Line {
    Line {
        label: label.to_owned(),
        color,
        width: 2,
        points: s
            .samples
            .iter()
            .map(|x| (x.t, f(&x.counts) as f64))
            .collect(),
    }
}

/// Draws the series to `path`: for one system, its rates and its queue and store; for
/// several, one panel per measure with a line per system.
pub fn draw(path: &Path, series: &[Series], title: &str, marks: Marks) -> Result<(), String> {
    // Registering twice (a second chart in one process) replaces the same font: harmless.
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| "the embedded font is not a valid TrueType font".to_owned())?;
    let panels: Vec<(&str, &str, Vec<Line>)> = match series {
        [one] => vec![
            (
                "Calls and events per second (each point: 100 ms)",
                "events/s",
                vec![
                    rate_line("offered", COLORS[5], one, |c| c.offered),
                    // Drawn under `accepted`, wider, so both show where they are equal.
                    rate_line("delivered", COLORS[2], one, |c| c.delivered).wide(),
                    rate_line("accepted", COLORS[0], one, |c| c.accepted),
                    rate_line("turned away", COLORS[1], one, Counts::rejected),
                    rate_line("dropped or failed", COLORS[3], one, |c| {
                        c.dropped() + c.failed
                    }),
                ],
            ),
            (
                "Events held",
                "events",
                vec![
                    level_line("queued", COLORS[0], one, |c| c.queued),
                    level_line("in flight", COLORS[4], one, |c| c.in_flight),
                    level_line("in the store", COLORS[3], one, |c| c.stored),
                ],
            ),
        ],
        many => {
            let per = |f: fn(&Series, usize) -> Line| -> Vec<Line> {
                many.iter().enumerate().map(|(i, s)| f(s, i)).collect()
            };
            vec![
                (
                    "Delivered per second",
                    "events/s",
                    per(|s, i| rate_line(s.system, COLORS[i % 6], s, |c| c.delivered)),
                ),
                (
                    "Lost per second: turned away, dropped or failed",
                    "events/s",
                    per(|s, i| rate_line(s.system, COLORS[i % 6], s, Counts::lost)),
                ),
                (
                    "Queued",
                    "events",
                    per(|s, i| level_line(s.system, COLORS[i % 6], s, |c| c.queued)),
                ),
            ]
        }
    };
    let x_max = series
        .iter()
        .flat_map(|s| s.samples.last())
        .map(|x| x.t)
        .fold(0.1, f64::max);
    let run_end = series.iter().map(|s| s.run_end).fold(0.0, f64::max);
    let height = 60 + PANEL_HEIGHT * panels.len() as u32;
    let mut pixels = vec![255u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, (FAMILY, 20).into_font())
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((panels.len(), 1));
        for ((caption, unit, lines), area) in panels.iter().zip(&areas) {
            panel(area, caption, unit, lines, x_max, run_end, marks)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(path, &pixels, WIDTH, height)
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    lines: &[Line],
    x_max: f64,
    run_end: f64,
    marks: Marks,
) -> Result<(), String> {
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.12;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, (FAMILY, 16).into_font())
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .y_label_formatter(&|v| short(*v))
        .x_label_formatter(&|v| {
            if x_max <= 5.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .label_style((FAMILY, 13).into_font())
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    if let Some((a, b)) = marks.outage {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a.min(x_max), 0.0), (b.min(x_max), y_max)],
                RGBColor(255, 200, 200).mix(0.45).filled(),
            )))
            .map_err(|e| e.to_string())?
            .label("receiver outage")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 18, y + 5)],
                    RGBColor(255, 200, 200).filled(),
                )
            });
    }
    chart
        .draw_series(DashedLineSeries::new(
            [(run_end, 0.0), (run_end, y_max)],
            6,
            4,
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .map_err(|e| e.to_string())?
        .label("producers stop")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(90, 90, 90)));
    for line in lines {
        let (color, width) = (line.color, line.width);
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(|e| e.to_string())?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color.stroke_width(width.min(4)))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 13).into_font())
        .draw()
        .map_err(|e| e.to_string())
}

/// `500k`, `1.2M`: axis labels.
fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e3 => format!("{:.0}k", v / 1e3),
        _ => format!("{v:.0}"),
    }
}

fn encode_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), String> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| format!("png: {e}"))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| format!("png: {e}"))?;
        writer.finish().map_err(|e| format!("png: {e}"))?;
    }
    crate::series::write_file(path, &bytes)
}
