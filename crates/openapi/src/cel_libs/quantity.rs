//! Kubernetes' CEL quantity library (k8s.io/apiserver/pkg/cel/library/quantity.go):
//! `quantity()`, `isQuantity()`, and on a quantity `sign`, `isInteger`, `asInteger`,
//! `asApproximateFloat`, `add`/`sub` (a quantity or an int), `compareTo`, `isGreaterThan`,
//! `isLessThan`. Values are exact in nano-units (i128), which covers every quantity up to
//! about 10^29; beyond, `quantity()` fails as out of range.

use std::sync::Arc;

use cel_interpreter::extractors::This;
use cel_interpreter::{Context, ExecutionError, Value as Cel};

use super::typed::{receiver, tagged};

type Str = Arc<String>;
type Res = Result<Cel, ExecutionError>;

const NANO: i128 = 1_000_000_000;

pub(super) fn register(ctx: &mut Context) {
    ctx.add_function("quantity", |This(s): This<Str>| -> Res {
        let q = parse(&s).map_err(|e| ExecutionError::function_error("quantity", e))?;
        Ok(value(q))
    });
    ctx.add_function("isQuantity", |This(s): This<Str>| parse(&s).is_ok());
    ctx.add_function("sign", |This(q): This<Cel>| -> Res {
        Ok(Cel::Int(nanos("sign", &q)?.signum() as i64))
    });
    ctx.add_function("isInteger", |This(q): This<Cel>| -> Res {
        Ok(Cel::Bool(as_integer(nanos("isInteger", &q)?).is_some()))
    });
    ctx.add_function("asInteger", |This(q): This<Cel>| -> Res {
        as_integer(nanos("asInteger", &q)?)
            .map(Cel::Int)
            .ok_or_else(|| {
                ExecutionError::function_error("asInteger", "cannot convert value to integer")
            })
    });
    ctx.add_function("asApproximateFloat", |This(q): This<Cel>| -> Res {
        Ok(Cel::Float(
            nanos("asApproximateFloat", &q)? as f64 / NANO as f64,
        ))
    });
    ctx.add_function("add", |This(q): This<Cel>, other: Cel| -> Res {
        let sum = nanos("add", &q)?.checked_add(operand("add", &other)?);
        sum.map(value).ok_or_else(|| overflow("add"))
    });
    ctx.add_function("sub", |This(q): This<Cel>, other: Cel| -> Res {
        let diff = nanos("sub", &q)?.checked_sub(operand("sub", &other)?);
        diff.map(value).ok_or_else(|| overflow("sub"))
    });
    ctx.add_function("compareTo", |This(q): This<Cel>, other: Cel| -> Res {
        let order = nanos("compareTo", &q)?.cmp(&nanos("compareTo", &other)?);
        Ok(Cel::Int(order as i64))
    });
    ctx.add_function("isGreaterThan", |This(q): This<Cel>, other: Cel| -> Res {
        Ok(Cel::Bool(
            nanos("isGreaterThan", &q)? > nanos("isGreaterThan", &other)?,
        ))
    });
    ctx.add_function("isLessThan", |This(q): This<Cel>, other: Cel| -> Res {
        Ok(Cel::Bool(
            nanos("isLessThan", &q)? < nanos("isLessThan", &other)?,
        ))
    });
}

fn value(nanos: i128) -> Cel {
    tagged("Quantity", nanos.to_string())
}

fn overflow(function: &str) -> ExecutionError {
    ExecutionError::function_error(function, "quantity out of range")
}

fn nanos(function: &str, v: &Cel) -> Result<i128, ExecutionError> {
    receiver(function, v, "Quantity")?
        .parse()
        .map_err(|_| ExecutionError::function_error(function, "not a quantity"))
}

/// The right operand of `add`/`sub`: a quantity or an int.
fn operand(function: &str, v: &Cel) -> Result<i128, ExecutionError> {
    match v {
        Cel::Int(n) => Ok(i128::from(*n) * NANO),
        other => nanos(function, other),
    }
}

/// The value as an int64 when it is a whole number that fits.
fn as_integer(nanos: i128) -> Option<i64> {
    (nanos % NANO == 0)
        .then(|| i64::try_from(nanos / NANO).ok())
        .flatten()
}

/// A quantity (`1`, `-1.5Gi`, `500m`, `2e3`, `.5`) in nano-units; below a nano rounds away
/// from zero, as upstream rounds up.
pub(super) fn parse(s: &str) -> Result<i128, String> {
    let fail = || {
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_string()
    };
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(fail());
    }
    let digits: i128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| "quantity out of range".to_string())?;
    let (base, exp): (i128, i32) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let k = "KMGTPE".find(&suffix[..1]).unwrap_or(0) as i32 + 1;
            (1024, k)
        }
        e if e.starts_with(['e', 'E']) => (10, e[1..].parse().map_err(|_| fail())?),
        _ => return Err(fail()),
    };
    let scaled = scale(digits, base, exp, fraction.len() as i32).ok_or("quantity out of range")?;
    Ok(if negative { -scaled } else { scaled })
}

/// `digits / 10^fraction_digits * base^exp` in nano-units, rounded away from zero.
fn scale(digits: i128, base: i128, exp: i32, fraction_digits: i32) -> Option<i128> {
    let mut n = digits.checked_mul(NANO)?;
    if base == 1024 {
        n = n.checked_mul(1024i128.checked_pow(exp as u32)?)?;
    }
    let tens = if base == 10 { exp } else { 0 } - fraction_digits;
    if tens >= 0 {
        n.checked_mul(10i128.checked_pow(tens as u32)?)
    } else {
        let d = 10i128.checked_pow((-tens) as u32).unwrap_or(i128::MAX);
        Some((n + d - 1) / d)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_parse_exactly() {
        for (text, nanos) in [
            ("1", 1_000_000_000),
            ("500m", 500_000_000),
            ("1.5Gi", 1_610_612_736_000_000_000),
            ("2e3", 2_000_000_000_000),
            ("-1k", -1_000_000_000_000),
            (".5", 500_000_000),
            ("1u", 1_000),
            ("0.1n", 1),
        ] {
            assert_eq!(parse(text), Ok(nanos), "{text}");
        }
        for bad in ["", "1 Gi", "1Gb", "abc", "1.2.3", "-", "1e"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
