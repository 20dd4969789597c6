//! The one quantile every benchmark reports, so their numbers compare.

/// The nearest-rank `p` quantile of sorted samples (the default when there are none).
pub(crate) fn nearest_rank<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
