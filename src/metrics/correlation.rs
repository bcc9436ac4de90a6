//! Correlation coefficients with the p-value of the test for no correlation, as the SeVec
//! paper reports between concept diversity and per-class accuracy (table 2).
//!
//! The p-value needs only the Student t tail, which is the regularised incomplete beta
//! function; that is a few lines here, rather than a statistics crate and its linear-algebra
//! dependencies in every build.

use std::fmt;

/// A correlation over `n` pairs and its two-sided p-value under "no correlation".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    pub r: f64,
    pub p: f64,
    pub n: usize,
}

impl fmt::Display for Correlation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r = {:.3}, p = {:.3e} (n = {})", self.r, self.p, self.n)
    }
}

/// Pearson's r, with the p-value of `t = r sqrt((n - 2) / (1 - r²))` on n − 2 degrees of
/// freedom (the test the SeVec paper's table 2 reports). NaN when fewer than 3 pairs or a
/// constant variable leave it undefined.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Correlation {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(xs), mean(ys));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    let r = if n < 3 || sxx == 0.0 || syy == 0.0 { f64::NAN } else { (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0) };
    Correlation { r, p: p_value(r, n), n }
}

/// Spearman's rank correlation: Pearson's r of the ranks (ties share their mean rank), with
/// the same t approximation for the p-value.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Correlation {
    let n = xs.len().min(ys.len());
    pearson(&ranks(&xs[..n]), &ranks(&ys[..n]))
}

/// 1-based ranks, ties averaged.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn p_value(r: f64, n: usize) -> f64 {
    if !r.is_finite() {
        return f64::NAN;
    }
    if r.abs() >= 1.0 {
        return 0.0;
    }
    let df = (n - 2) as f64;
    student_t_two_sided(r * (df / (1.0 - r * r)).sqrt(), df)
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: `I_{df/(df+t²)}(df/2, 1/2)`.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { f64::NAN } else { 0.0 };
    }
    incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (evaluated
/// with Lentz's method), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction
/// converges slowly.
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let log_front = a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b);
    log_front.exp() / a * beta_fraction(x, a, b)
}

/// The continued fraction 1 / (1 + d1 / (1 + d2 / (1 + ...))) of I_x(a, b).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (mut c, mut d) = (1.0, 1.0 / guard(1.0 - (a + b) * x / (a + 1.0)));
    let mut f = d;
    for m in 1..500 {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        for coefficient in [even, odd] {
            d = 1.0 / guard(1.0 + coefficient * d);
            c = guard(1.0 + coefficient / c);
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    f
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, nine terms; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let series = C[1..].iter().enumerate().fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn the_t_tail_matches_closed_forms_and_tables() {
        // df = 1 is the Cauchy distribution: P(|T| > 1) = 1/2.
        assert!(close(student_t_two_sided(1.0, 1.0), 0.5, 1e-12));
        // df = 2: P(|T| > t) = 1 − t / sqrt(2 + t²).
        for t in [0.3, 2.0, 9.0] {
            assert!(close(student_t_two_sided(t, 2.0), 1.0 - t / (2.0 + t * t).sqrt(), 1e-12), "{t}");
        }
        // The familiar 5% critical values.
        assert!(close(student_t_two_sided(2.228_138_85, 10.0), 0.05, 1e-7));
        assert!(close(student_t_two_sided(1.983_971_5, 100.0), 0.05, 1e-6));
        assert_eq!(student_t_two_sided(0.0, 5.0), 1.0);
        assert!(
            close(ln_gamma(5.0), 24f64.ln(), 1e-12) && close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12)
        );
    }

    #[test]
    fn pearson_and_spearman_on_known_data() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let perfect = pearson(&xs, &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!((perfect.r, perfect.p, perfect.n), (1.0, 0.0, 5));
        let c = pearson(&xs, &[2.0, 1.0, 4.0, 3.0, 5.0]);
        assert!(close(c.r, 0.8, 1e-12), "{c}");
        // t = 0.8 sqrt(3 / 0.36) = 2.3094 on 3 df.
        assert!(close(c.p, 0.104_088, 1e-5), "{c}");
        // Monotone but not linear: Spearman sees a perfect rank order.
        let s = spearman(&xs, &[1.0, 8.0, 27.0, 64.0, 1000.0]);
        assert_eq!(s.r, 1.0);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert!(pearson(&[1.0, 2.0], &[1.0, 2.0]).r.is_nan());
        assert!(pearson(&xs, &[1.0; 5]).p.is_nan());
    }
}
