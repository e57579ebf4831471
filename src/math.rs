//! Small numerical helpers shared by the engine and the config layer (no engine types).

/// `numpy.linspace(start, stop, num)` with numpy's arithmetic (`i·step + start`, the last
/// value set to `stop`).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}
