//! The parts of Kubernetes' CEL libraries that CRD rules in the wild use and cel-interpreter
//! lacks: the strings extension (`lowerAscii`, `upperAscii`, `trim`, `replace`, `split`,
//! `indexOf`, `lastIndexOf`, `substring`, `join`), the lists library (`isSorted`, `sum`), the
//! regex library (`find`), and the URL, IP, CIDR (`net.rs`) and quantity (`quantity.rs`)
//! libraries with their types (`typed.rs`). A rule calling a function neither has fails its
//! evaluation, which refuses every write of the kind — so the ones CRDs use matter more than
//! completeness.

use std::sync::Arc;

use cel_interpreter::extractors::{Arguments, This};
use cel_interpreter::{Context, ExecutionError, FunctionContext, Value as Cel};

mod net;
mod quantity;
mod typed;

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
    ctx.add_function("string", string);
    net::register(ctx);
    quantity::register(ctx);
}

/// `string(x)`: the text of a URL, IP or CIDR, else the interpreter's own conversion.
fn string(ftx: &FunctionContext, This(v): This<Cel>) -> Result<Cel, ExecutionError> {
    match typed::to_string(&v) {
        Some(text) => Ok(Cel::String(Arc::new(text))),
        None => cel_interpreter::functions::string(ftx, This(v)),
    }
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
            "string(1) == '1' && 2.string() == '2'",
        ] {
            assert_eq!(eval(rule), "Bool(true)", "{rule}");
        }
        assert!(eval("'abc'.substring(5)").starts_with("error"));
    }

    #[test]
    fn urls_parse_as_go_parse_request_uri() {
        for rule in [
            "isURL('/just/a/path') && isURL('mailto:x@example.com') && !isURL('example.com')",
            "!isURL('') && !isURL('1http://x') && !isURL('http://x:port') && !isURL('/%zz')",
            "url('HTTPS://user@example.com:8443/a%20b?x=1&x=2&y=a+b').getScheme() == 'https'",
            "url('https://example.com:8443/p').getHost() == 'example.com:8443'",
            "url('https://example.com:8443/p').getHostname() == 'example.com'",
            "url('https://example.com:8443/p').getPort() == '8443'",
            "url('https://[::1]:80/').getHostname() == '::1' && url('https://[::1]/').getPort() == ''",
            "url('https://example.com/a%20b').getEscapedPath() == '/a%20b'",
            "url('https://e.com/?x=1&x=2&y=a+b').getQuery() == {'x': ['1', '2'], 'y': ['a b']}",
            "url('https://e.com/').getQuery() == {}",
            "string(url('https://e.com/x')) == 'https://e.com/x'",
        ] {
            assert_eq!(eval(rule), "Bool(true)", "{rule}");
        }
        assert!(eval("url('example.com')").starts_with("error"));
    }

    #[test]
    fn ips_and_cidrs_as_netip() {
        for rule in [
            "ip('10.0.0.1').family() == 4 && ip('fd00::1').family() == 6",
            "!isIP('::ffff:10.0.0.1') && !isIP('fe80::1%eth0') && !isIP('010.0.0.1')",
            "ip('127.0.0.1').isLoopback() && ip('::1').isLoopback() && !ip('10.0.0.1').isLoopback()",
            "ip('0.0.0.0').isUnspecified() && ip('::').isUnspecified()",
            "ip('169.254.1.1').isLinkLocalUnicast() && ip('fe80::1').isLinkLocalUnicast()",
            "ip('224.0.0.5').isLinkLocalMulticast() && ip('ff02::1').isLinkLocalMulticast()",
            "ip('10.0.0.1').isGlobalUnicast() && !ip('255.255.255.255').isGlobalUnicast()",
            "ip('10.0.0.1') == ip('10.0.0.1') && string(ip('2001:db8::0:1')) == '2001:db8::1'",
            "cidr('10.1.2.3/8').ip() == ip('10.1.2.3') && cidr('10.1.2.3/8').prefixLength() == 8",
            "string(cidr('10.1.2.3/8').masked()) == '10.0.0.0/8'",
            "cidr('10.0.0.0/8').containsIP('10.2.3.4') && !cidr('10.0.0.0/8').containsIP(ip('11.0.0.1'))",
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.1.0.0/16').containsCIDR('10.0.0.0/8')",
            "!cidr('10.0.0.0/8').containsIP('fd00::1') && isCIDR('fd00::/64') && !isCIDR('10.0.0.0/33')",
        ] {
            assert_eq!(eval(rule), "Bool(true)", "{rule}");
        }
        assert!(eval("ip('::ffff:1.2.3.4')").starts_with("error"));
    }

    #[test]
    fn quantities_compare_and_add_as_upstream() {
        for rule in [
            "quantity('1') == quantity('1000m') && quantity('1Ki') == quantity('1024')",
            "quantity('1.5Gi').isGreaterThan(quantity('1G')) && quantity('500m').isLessThan(quantity('1'))",
            "quantity('2').compareTo(quantity('1')) == 1 && quantity('1').compareTo(quantity('1000m')) == 0",
            "quantity('1').add(quantity('500m')) == quantity('1.5') && quantity('2').sub(1) == quantity('1')",
            "quantity('5k').asInteger() == 5000 && !quantity('500m').isInteger() && quantity('3').isInteger()",
            "quantity('-2').sign() == -1 && quantity('0').sign() == 0",
            "quantity('250m').asApproximateFloat() == 0.25",
            "isQuantity('1u') && isQuantity('1E') && isQuantity('1e3') && !isQuantity('1Gb')",
        ] {
            assert_eq!(eval(rule), "Bool(true)", "{rule}");
        }
        assert!(eval("quantity('500m').asInteger()").starts_with("error"));
        assert!(eval("quantity('1 Gi')").starts_with("error"));
    }
}
