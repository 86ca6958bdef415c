//! Small statistics and formatting helpers for the report.

/// The median of `values` (mean of the middle two for an even count);
/// NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// The smallest and largest of `values`.
pub fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// `a[i] / b[i]` for each round.
pub fn paired_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// Seconds with a millisecond resolution (or finer under 10 ms).
pub fn secs(s: f64) -> String {
    if s < 0.01 {
        format!("{s:.5}")
    } else {
        format!("{s:.3}")
    }
}

/// A ratio as `1.23x`.
pub fn ratio(r: f64) -> String {
    format!("{r:.2}x")
}

/// Whether a measured ratio meets its target, as a word for the table.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}
