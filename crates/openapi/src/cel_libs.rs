//! The parts of Kubernetes' CEL libraries that CRD rules in the wild use and cel-interpreter
//! lacks: the strings extension (`lowerAscii`, `upperAscii`, `trim`, `replace`, `split`,
//! `indexOf`, `lastIndexOf`, `substring`, `join`), the lists library (`isSorted`, `sum`), the
//! regex library (`find`) and the validation helpers (`isURL`, `isIP`, `isCIDR`,
//! `isQuantity`). A rule calling a function neither has fails its evaluation, which refuses
//! every write of the kind — so the ones CRDs use matter more than completeness.

use std::sync::{Arc, LazyLock};

use cel_interpreter::extractors::{Arguments, This};
use cel_interpreter::{Context, ExecutionError, Value as Cel};

type Str = Arc<String>;

/// Registers the functions on `ctx`.
pub(crate) fn register(ctx: &mut Context) {
    ctx.add_function("isSorted", |This(list): This<Arc<Vec<Cel>>>| {
        list.windows(2).all(|w| w[0] <= w[1])
    });
    ctx.add_function("sum", sum);
    ctx.add_function("lowerAscii", |This(s): This<Str>| s.to_ascii_lowercase());
    ctx.add_function("upperAscii", |This(s): This<Str>| s.to_ascii_uppercase());
    ctx.add_function("trim", |This(s): This<Str>| s.trim().to_string());
    ctx.add_function("replace", |This(s): This<Str>, from: Str, to: Str| {
        s.replace(from.as_str(), to.as_str())
    });
    ctx.add_function("split", split);
    ctx.add_function("indexOf", |This(s): This<Str>, sub: Str| {
        index(&s, s.find(sub.as_str()))
    });
    ctx.add_function("lastIndexOf", |This(s): This<Str>, sub: Str| {
        index(&s, s.rfind(sub.as_str()))
    });
    ctx.add_function("substring", substring);
    ctx.add_function("join", join);
    ctx.add_function("find", find);
    ctx.add_function("isURL", |This(s): This<Str>| is_url(&s));
    ctx.add_function("isIP", |This(s): This<Str>| {
        s.parse::<std::net::IpAddr>().is_ok()
    });
    ctx.add_function("isCIDR", |This(s): This<Str>| {
        crate::formats::valid_string("cidr", &s)
    });
    ctx.add_function("isQuantity", |This(s): This<Str>| is_quantity(&s));
}

fn split(This(s): This<Str>, sep: Str) -> Result<Cel, ExecutionError> {
    let parts = s
        .split(sep.as_str())
        .map(|p| Cel::String(Arc::new(p.into())));
    Ok(Cel::List(Arc::new(parts.collect())))
}

/// The first match of `pattern` (RE2 syntax), or the empty string.
fn find(This(s): This<Str>, pattern: Str) -> Result<Cel, ExecutionError> {
    let re = regex::Regex::new(&pattern).map_err(|e| ExecutionError::function_error("find", e))?;
    let found = re
        .find(&s)
        .map_or(String::new(), |m| m.as_str().to_string());
    Ok(Cel::String(Arc::new(found)))
}

/// A byte offset as CEL's code-point index, -1 when absent.
fn index(s: &str, at: Option<usize>) -> i64 {
    at.map_or(-1, |b| s[..b].chars().count() as i64)
}

fn sum(This(list): This<Arc<Vec<Cel>>>) -> Result<Cel, ExecutionError> {
    let mut total = Cel::Int(0);
    for (i, v) in list.iter().enumerate() {
        total = match (i, total, v) {
            (0, _, v) => v.clone(),
            (_, Cel::Int(a), Cel::Int(b)) => Cel::Int(a + b),
            (_, Cel::UInt(a), Cel::UInt(b)) => Cel::UInt(a + b),
            (_, Cel::Float(a), Cel::Float(b)) => Cel::Float(a + b),
            _ => {
                return Err(ExecutionError::function_error(
                    "sum",
                    "mixed or non-numeric items",
                ));
            }
        };
    }
    Ok(total)
}

/// `s.substring(start)` and `s.substring(start, end)`, by code points.
fn substring(This(s): This<Str>, Arguments(args): Arguments) -> Result<Cel, ExecutionError> {
    let chars: Vec<char> = s.chars().collect();
    let bound = |i: usize| match args.get(i) {
        Some(Cel::Int(n)) if *n >= 0 && (*n as usize) <= chars.len() => Ok(Some(*n as usize)),
        Some(_) => Err(ExecutionError::function_error(
            "substring",
            "index out of range",
        )),
        None => Ok(None),
    };
    let start = bound(0)?.unwrap_or(0);
    let end = bound(1)?.unwrap_or(chars.len());
    if start > end {
        return Err(ExecutionError::function_error(
            "substring",
            "start after end",
        ));
    }
    Ok(Cel::String(Arc::new(chars[start..end].iter().collect())))
}

/// `list.join()` and `list.join(separator)` of strings.
fn join(
    This(list): This<Arc<Vec<Cel>>>,
    Arguments(args): Arguments,
) -> Result<Cel, ExecutionError> {
    let sep = match args.first() {
        Some(Cel::String(s)) => s.as_str().to_string(),
        _ => String::new(),
    };
    let parts: Result<Vec<&str>, _> = list
        .iter()
        .map(|v| match v {
            Cel::String(s) => Ok(s.as_str()),
            _ => Err(ExecutionError::function_error("join", "a list of strings")),
        })
        .collect();
    Ok(Cel::String(Arc::new(parts?.join(&sep))))
}

/// An absolute URL as Go's `url.Parse` with a scheme and a host (or an opaque part).
fn is_url(s: &str) -> bool {
    static URL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:(//[^/?#\s]*)?[^\s]*$").expect("URL pattern")
    });
    URL.is_match(s)
}

/// A Kubernetes resource quantity: `1`, `500m`, `1.5Gi`, `2e3`.
fn is_quantity(s: &str) -> bool {
    static QUANTITY: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
            .expect("quantity pattern")
    });
    QUANTITY.is_match(s)
}

#[cfg(test)]
mod tests {
    use cel_interpreter::Program;

    fn eval(rule: &str) -> String {
        let mut ctx = cel_interpreter::Context::default();
        super::register(&mut ctx);
        match Program::compile(rule).expect("compiles").execute(&ctx) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn the_libraries_crds_use_evaluate_as_upstream() {
        for rule in [
            "'Hello'.lowerAscii() == 'hello' && 'Hello'.upperAscii() == 'HELLO'",
            "'  x '.trim() == 'x'",
            "'a-b-c'.replace('-', '.') == 'a.b.c'",
            "'a,b'.split(',') == ['a', 'b']",
            "'héllo'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3 && 'x'.indexOf('y') == -1",
            "'kubernetes'.substring(4) == 'rnetes' && 'kubernetes'.substring(0, 4) == 'kube'",
            "['a', 'b'].join() == 'ab' && ['a', 'b'].join('/') == 'a/b'",
            "[1, 2, 3].sum() == 6 && [1, 2, 2].isSorted() && ![2, 1].isSorted()",
            "'abc123'.find('[0-9]+') == '123' && 'abc'.find('[0-9]+') == ''",
            "isURL('https://example.com/a?b') && !isURL('not a url')",
            "isIP('10.0.0.1') && isIP('::1') && !isIP('10.0.0')",
            "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0')",
            "isQuantity('500m') && isQuantity('1.5Gi') && isQuantity('2e3') && !isQuantity('1 Gi')",
        ] {
            assert_eq!(eval(rule), "Bool(true)", "{rule}");
        }
        assert!(eval("'abc'.substring(5)").starts_with("error"));
    }
}
