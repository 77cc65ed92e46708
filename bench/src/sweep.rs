//! `forkbench sweep`: fork latency against the memory the parent touched,
//! as CSV and an SVG line plot (median per series). The plotting itself
//! ([`line_plot`]) also draws `forkbench scale`'s throughput curves.
//!
//! The SVG is drawn with `plotters` (SVG backend only, no fonts: the
//! backend writes `<text>` elements and leaves glyphs to the viewer).

use crate::report::Entry;

/// The CSV columns.
pub const CSV_HEADER: [&str; 14] = [
    "target",
    "metric",
    "mem_mib",
    "min_ns",
    "median_ns",
    "p90_ns",
    "max_ns",
    "mean_ns",
    "stddev_ns",
    "p99_ns",
    "p99_9_ns",
    "median_ci_lower_ns",
    "median_ci_upper_ns",
    "kvm_exits_per_iter",
];

/// `entries` with statistics as CSV rows under [`CSV_HEADER`] (written by
/// the `csv` crate); a field the entry lacks is empty.
pub fn to_csv(entries: &[Entry]) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(CSV_HEADER).expect("CSV into memory");
    let opt = |n: Option<u64>| n.map_or(String::new(), |n| n.to_string());
    let optf = |n: Option<f64>| n.map_or(String::new(), |n| format!("{n:.3}"));
    for e in entries {
        if let Some(s) = e.stats() {
            let ci = s.median_ci;
            csv.write_record([
                e.target.name().to_string(),
                e.metric.clone(),
                e.mem_mib.unwrap_or(0).to_string(),
                s.min.to_string(),
                s.median.to_string(),
                s.p90.to_string(),
                s.max.to_string(),
                optf(s.mean),
                optf(s.stddev),
                opt(s.p99),
                opt(s.p99_9),
                opt(ci.map(|ci| ci.lower)),
                opt(ci.map(|ci| ci.upper)),
                optf(e.vm_exits.as_ref().and_then(|x| x.kvm_per_iter)),
            ])
            .expect("CSV into memory");
        }
    }
    String::from_utf8(csv.into_inner().expect("CSV into memory")).expect("CSV is UTF-8")
}

/// The series (`target/metric`) in first-seen order, each with its
/// `(mem_mib, median_ns)` points.
pub fn series(entries: &[Entry]) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut out: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    for e in entries {
        let Some(s) = e.stats() else { continue };
        let name = format!("{}/{}", e.target.name(), e.metric);
        let point = (e.mem_mib.unwrap_or(0), s.median);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, points)) => points.push(point),
            None => out.push((name, vec![point])),
        }
    }
    out
}

/// An SVG line plot (drawn with `plotters`): x = MiB touched on a
/// log2(1 + MiB) axis, y = median us, one line per series with a legend.
pub fn to_svg(entries: &[Entry]) -> Result<String, String> {
    let xs = |mib: u64| (1.0 + mib as f64).log2();
    let lines: Vec<Line> = series(entries)
        .into_iter()
        .map(|(name, points)| Line {
            name,
            points: points
                .iter()
                .map(|&(m, ns)| (xs(m), ns as f64 / 1e3))
                .collect(),
        })
        .collect();
    let axes = Axes {
        x_desc: "MiB touched by the parent (log2(1 + MiB))",
        y_desc: "median latency (us)",
        x_label: &|x: &f64| {
            let mib = x.exp2() - 1.0;
            if mib < 10.0 {
                format!("{mib:.1}")
            } else {
                format!("{mib:.0}")
            }
        },
    };
    line_plot(&lines, &axes)
}

/// One line of a [`line_plot`]: its legend and its `(x, y)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The axes of a [`line_plot`]: descriptions and how an x value is
/// labelled.
pub struct Axes<'a> {
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_label: &'a dyn Fn(&f64) -> String,
}

/// An SVG plot (drawn with `plotters`) of `lines` from 0 on both axes,
/// one colour per line, with a legend. The sweep's and `forkbench
/// scale`'s plots.
pub fn line_plot(lines: &[Line], axes: &Axes<'_>) -> Result<String, String> {
    use plotters::prelude::*;

    const COLORS: [RGBColor; 6] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
    ];
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(x, _)| x))
        .fold(1.0f64, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(_, y)| y))
        .fold(1e-3f64, f64::max)
        * 1.1;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 420)).into_drawing_area();
        let err = |e: &dyn std::fmt::Debug| format!("plotting: {e:?}");
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .x_label_formatter(axes.x_label)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, line) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, Target};

    fn entry(target: Target, metric: &str, mem: u64, median: u64) -> Entry {
        Entry {
            op: "fork_mem".to_string(),
            metric: metric.to_string(),
            target,
            mem_mib: Some(mem),
            iters: 10,
            outcome: Outcome::Ok {
                ns: crate::stats::summarize(&[median - 1, median, median + 1, median + 2]).unwrap(),
            },
            note: None,
            vm_exits: None,
            samples: Vec::new(),
        }
    }

    #[test]
    fn csv_rows_and_svg_lines_per_series() {
        let mut entries = vec![
            entry(Target::Guest, "create_exit_reap", 0, 1000),
            entry(Target::Guest, "create_exit_reap", 16, 2000),
            entry(Target::Host, "create", 0, 500),
            entry(Target::Host, "create", 16, 900),
        ];
        entries.push(Entry {
            outcome: Outcome::Error {
                error: "no samples".to_string(),
            },
            ..entry(Target::Host, "create_exit_reap", 0, 1)
        });
        let csv = to_csv(&entries);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(reader.headers().unwrap(), CSV_HEADER.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 4, "{csv}");
        // target, metric, MiB, min, median (the lower median), p90, max, mean.
        assert_eq!(
            &rows[1].iter().take(8).collect::<Vec<_>>(),
            &[
                "guest",
                "create_exit_reap",
                "16",
                "1999",
                "2000",
                "2002",
                "2002",
                "2000.500"
            ]
        );
        assert_eq!(
            rows[3].iter().take(3).collect::<Vec<_>>(),
            ["host", "create", "16"]
        );
        // No exits on these entries: an empty last field.
        assert_eq!(&rows[0][13], "");
        assert_eq!(
            series(&entries),
            [
                (
                    "guest/create_exit_reap".to_string(),
                    vec![(0, 1000), (16, 2000)]
                ),
                ("host/create".to_string(), vec![(0, 500), (16, 900)]),
            ]
        );
        let svg = to_svg(&entries).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        let lines = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
            .count();
        assert_eq!(lines, 2, "{svg}");
        assert!(to_svg(&[]).unwrap().starts_with("<svg"));
    }
}
