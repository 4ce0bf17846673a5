//! Kubernetes resource quantities (`16Gi`, `200G`, `512Mi`, `1.5Ti`) as used for memory and
//! disk sizes in a plan.

use std::fmt;

/// A parsed quantity: the text as written (sent to Kubernetes unchanged) and its value in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub text: String,
    pub bytes: u64,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("`{0}` is not a number followed by a unit (Ki, Mi, Gi, Ti, Pi, k, M, G, T, P)")]
    Malformed(String),
    #[error("unknown unit `{unit}` in `{text}`")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is too large")]
    Overflow(String),
}

const UNITS: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
    ("", 1),
];

impl Quantity {
    /// The usual form, whole digits and a unit (`40Gi`), read without the general path's
    /// searches; `None` for anything else (the general path then decides).
    fn parse_whole(t: &str) -> Option<Quantity> {
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 {
            return None; // 18 digits cannot overflow a u64
        }
        let mult = UNITS.iter().find(|(u, _)| *u == &t[digits..])?.1;
        let n = t.as_bytes()[..digits]
            .iter()
            .fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
        Some(Quantity {
            text: t.to_string(),
            bytes: n.checked_mul(mult)?,
        })
    }

    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        match Self::parse_whole(text.trim()) {
            Some(q) => Ok(q),
            None => Self::parse_general(text),
        }
    }

    fn parse_general(text: &str) -> Result<Quantity, QuantityError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(QuantityError::Empty);
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty()
            || num.starts_with('.')
            || num.ends_with('.')
            || num.matches('.').count() > 1
        {
            return Err(QuantityError::Malformed(text.to_string()));
        }
        let mult = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                if unit.chars().all(|c| c.is_ascii_alphabetic()) {
                    QuantityError::UnknownUnit {
                        text: text.to_string(),
                        unit: unit.to_string(),
                    }
                } else {
                    QuantityError::Malformed(text.to_string())
                }
            })?;
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: u64 = int_part
            .parse()
            .map_err(|_| QuantityError::Overflow(text.to_string()))?;
        let mut bytes = int
            .checked_mul(mult)
            .ok_or_else(|| QuantityError::Overflow(text.to_string()))?;
        if !frac_part.is_empty() {
            // Fractions are exact enough for sizes: digits beyond 9 are ignored.
            let digits = &frac_part[..frac_part.len().min(9)];
            let frac: u64 = digits
                .parse()
                .map_err(|_| QuantityError::Malformed(text.to_string()))?;
            let scale = 10u64.pow(digits.len() as u32);
            let extra = (frac as u128 * mult as u128 / scale as u128) as u64;
            bytes = bytes
                .checked_add(extra)
                .ok_or_else(|| QuantityError::Overflow(text.to_string()))?;
        }
        Ok(Quantity {
            text: t.to_string(),
            bytes,
        })
    }
}

/// Human-readable binary size (`1.5 TiB`).
pub fn human_bytes(bytes: u64) -> String {
    const NAMES: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < NAMES.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", NAMES[i])
    } else {
        format!("{v:.1} {}", NAMES[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(Quantity::parse("16Gi").unwrap().bytes, 16 << 30);
        assert_eq!(Quantity::parse("200G").unwrap().bytes, 200_000_000_000);
        assert_eq!(Quantity::parse("1.5Ti").unwrap().bytes, 3 << 39);
        assert_eq!(Quantity::parse("1024").unwrap().bytes, 1024);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Quantity::parse("16GB"),
            Err(QuantityError::UnknownUnit { .. })
        ));
        assert!(matches!(
            Quantity::parse("Gi"),
            Err(QuantityError::Malformed(_))
        ));
        assert!(matches!(
            Quantity::parse("1..2Gi"),
            Err(QuantityError::Malformed(_))
        ));
        assert!(matches!(
            Quantity::parse("-1Gi"),
            Err(QuantityError::Malformed(_))
        ));
        assert!(matches!(
            Quantity::parse("99999999999Ei"),
            Err(QuantityError::Overflow(_))
        ));
        assert_eq!(Quantity::parse(" "), Err(QuantityError::Empty));
    }

    /// The fast path for whole numbers gives what the general path gives, or steps aside.
    #[test]
    fn whole_numbers_read_as_the_general_path_reads_them() {
        for t in [
            "40Gi",
            "020Gi",
            "8",
            "1Ki",
            "7E",
            "200G",
            "16GB",
            "1.5Ti",
            "1.",
            ".5Gi",
            "+1Gi",
            "99999999999Ei",
            "18446744073709551615",
            "999999999999999999",
            "16Gi ",
            "1 Gi",
            "1Gi/s",
            "0",
            "0Mi",
            "Gi",
            "12x",
        ] {
            let general = Quantity::parse_general(t);
            if let Some(q) = Quantity::parse_whole(t.trim()) {
                assert_eq!(Ok(q), general, "{t:?}");
            }
            assert_eq!(Quantity::parse(t), general, "{t:?}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(3 << 39), "1.5 TiB");
        assert_eq!(human_bytes(200 << 30), "200 GiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
