//! Tests of [`parse`](super::parse): operands, operators, precedence, and each error with its
//! exact position. Printing and the property tests are in `print.rs`.

use super::ast::{CmpOp, Expr, Literal, Operand, Span};
use super::{FilterError, MAX_COMPARISONS, MAX_DEPTH, MAX_LEN, parse};

fn p(input: &str) -> Expr {
    match parse(input) {
        Ok(expr) => expr.without_spans(),
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

fn err(input: &str) -> (usize, String) {
    let e = parse(input).expect_err(input);
    (e.position, e.message)
}

fn field(path: &str) -> Operand {
    let path = path.split('.').map(str::to_owned).collect();
    Operand::Field {
        path,
        span: Span::default(),
    }
}

fn lit(value: Literal) -> Operand {
    Operand::Literal {
        value,
        span: Span::default(),
    }
}

fn int(i: i64) -> Operand {
    lit(Literal::Int(i))
}

fn cmp(left: Operand, op: CmpOp, right: Operand) -> Expr {
    Expr::Cmp { left, op, right }
}

fn eq(name: &str, i: i64) -> Expr {
    cmp(field(name), CmpOp::Eq, int(i))
}

fn and(l: Expr, r: Expr) -> Expr {
    Expr::And(Box::new(l), Box::new(r))
}

fn or(l: Expr, r: Expr) -> Expr {
    Expr::Or(Box::new(l), Box::new(r))
}

/// The right operand of a single comparison `a = <text>`.
fn right(text: &str) -> Operand {
    match p(&format!("a = {text}")) {
        Expr::Cmp { right, .. } => right,
        other => panic!("not a comparison: {other:?}"),
    }
}

#[test]
fn parses_each_operator() {
    let ops = [
        ("=", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        ("<=", CmpOp::Le),
        ("~", CmpOp::Like),
        ("!~", CmpOp::NotLike),
    ];
    for (text, op) in ops {
        assert_eq!(
            p(&format!("views {text} 10")),
            cmp(field("views"), op, int(10))
        );
        assert_eq!(
            p(&format!("views{text}10")),
            cmp(field("views"), op, int(10))
        );
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let expected = or(eq("a", 1), and(eq("b", 2), eq("c", 3)));
    assert_eq!(p("a = 1 || b = 2 && c = 3"), expected);
    let expected = or(and(eq("a", 1), eq("b", 2)), eq("c", 3));
    assert_eq!(p("a = 1 && b = 2 || c = 3"), expected);
}

#[test]
fn chains_are_left_associative() {
    let expected = and(and(eq("a", 1), eq("b", 2)), eq("c", 3));
    assert_eq!(p("a = 1 && b = 2 && c = 3"), expected);
    let expected = or(or(eq("a", 1), eq("b", 2)), eq("c", 3));
    assert_eq!(p("a = 1 || b = 2 || c = 3"), expected);
}

#[test]
fn parentheses_group() {
    let expected = and(eq("a", 1), or(eq("b", 2), eq("c", 3)));
    assert_eq!(p("a = 1 && (b = 2 || c = 3)"), expected);
    assert_eq!(p("((a = 1))"), eq("a", 1));
    let expected = and(eq("a", 1), and(eq("b", 2), eq("c", 3)));
    assert_eq!(p("a=1&&(b=2&&c=3)"), expected);
}

#[test]
fn parses_the_api_example() {
    let expected = and(
        cmp(
            field("status"),
            CmpOp::Eq,
            lit(Literal::Str("active".into())),
        ),
        or(
            cmp(field("views"), CmpOp::Ge, int(10)),
            cmp(
                field("title"),
                CmpOp::Like,
                lit(Literal::Str("rust".into())),
            ),
        ),
    );
    assert_eq!(
        p("status = 'active' && (views >= 10 || title ~ 'rust')"),
        expected
    );
    assert_eq!(
        p("\tstatus='active'\n&&(views>=10||title~\"rust\")  "),
        expected
    );
}

#[test]
fn parses_operands() {
    assert_eq!(right("author.name"), field("author.name"));
    assert_eq!(right("_a1.B_2.c"), field("_a1.B_2.c"));
    assert_eq!(right("'x'"), lit(Literal::Str("x".into())));
    assert_eq!(right("\"\""), lit(Literal::Str(String::new())));
    assert_eq!(right("0"), int(0));
    assert_eq!(right("-42"), int(-42));
    assert_eq!(right("9223372036854775807"), int(i64::MAX));
    assert_eq!(right("-9223372036854775808"), int(i64::MIN));
    assert_eq!(right("1.5"), lit(Literal::Float(1.5)));
    assert_eq!(right("-0.25"), lit(Literal::Float(-0.25)));
    assert_eq!(right("1e3"), lit(Literal::Float(1000.0)));
    assert_eq!(right("2.5E-2"), lit(Literal::Float(0.025)));
    assert_eq!(right("1e+2"), lit(Literal::Float(100.0)));
    assert_eq!(right("true"), lit(Literal::Bool(true)));
    assert_eq!(right("false"), lit(Literal::Bool(false)));
    assert_eq!(right("null"), lit(Literal::Null));
    assert_eq!(right("True"), field("True"));
    assert_eq!(right("nullable"), field("nullable"));
    assert_eq!(
        right("@now"),
        Operand::Now {
            span: Span::default()
        }
    );
    for path in ["auth.id", "auth.roles", "body.title", "body.a.b"] {
        let segments = path.split('.').map(str::to_owned).collect();
        let expected = Operand::Request {
            path: segments,
            span: Span::default(),
        };
        assert_eq!(right(&format!("@request.{path}")), expected);
    }
}

#[test]
fn unescapes_strings() {
    let s = |text: &str| right(text);
    assert_eq!(s(r"'it\'s'"), lit(Literal::Str("it's".into())));
    assert_eq!(s(r#""say \"hi\"""#), lit(Literal::Str("say \"hi\"".into())));
    assert_eq!(s(r#"'"' "#), lit(Literal::Str("\"".into())));
    assert_eq!(s(r#""'""#), lit(Literal::Str("'".into())));
    assert_eq!(s(r"'a\\b\nc\td'"), lit(Literal::Str("a\\b\nc\td".into())));
    assert_eq!(
        s("'line\nbreak ünï 😀'"),
        lit(Literal::Str("line\nbreak ünï 😀".into()))
    );
}

#[test]
fn spans_are_byte_offsets() {
    let input = "'é😀' = author.name";
    let Ok(Expr::Cmp { left, right, .. }) = parse(input) else {
        panic!("{input} did not parse to a comparison");
    };
    assert_eq!(left.span(), Span { start: 0, end: 8 });
    assert_eq!(right.span(), Span { start: 11, end: 22 });
    assert_eq!(&input[11..22], "author.name");
}

#[test]
fn lists_operands_in_order() {
    let expr = p("a = 1 && (@request.auth.id = b || c != @now)");
    let printed: Vec<String> = expr.operands().iter().map(ToString::to_string).collect();
    assert_eq!(printed, ["a", "1", "@request.auth.id", "b", "c", "@now"]);
}

#[test]
fn reports_errors_with_positions() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty filter"),
        (" \t\n ", 0, "empty filter"),
        (
            "a = 1 && title foo",
            15,
            "expected a comparison operator (=, !=, >, >=, <, <=, ~, !~), found 'foo'",
        ),
        (
            "a",
            1,
            "expected a comparison operator (=, !=, >, >=, <, <=, ~, !~), found the end of the filter",
        ),
        ("a = 'abc", 8, "unterminated string starting at position 4"),
        ("a = 'ab\\", 8, "unterminated string starting at position 4"),
        ("a = 'é", 6, "unterminated string starting at position 4"),
        ("a = 1)", 5, "unexpected ')' without a matching '('"),
        (
            "(a = 1",
            6,
            "expected ')' to close '(' at position 0, found the end of the filter",
        ),
        (
            "x = 1 && (a = 1 b",
            16,
            "expected ')' to close '(' at position 9, found 'b'",
        ),
        (
            "a = 1 x",
            6,
            "unexpected 'x' after the end of the expression",
        ),
        (
            "a = 1 'x'",
            6,
            "unexpected string 'x' after the end of the expression",
        ),
        (
            "a = 1 and b = 2",
            6,
            "unexpected 'and' after the end of the expression; use '&&' to combine comparisons",
        ),
        (
            "a = 1 OR b = 2",
            6,
            "unexpected 'OR' after the end of the expression; use '||' to combine comparisons",
        ),
        (
            "a =",
            3,
            "expected a field name or a value after '=', found the end of the filter",
        ),
        (
            "a !~ )",
            5,
            "expected a field name or a value after '!~', found ')'",
        ),
        (
            "a = 1 &&",
            8,
            "expected a field name, a value or '(', found the end of the filter",
        ),
        ("()", 1, "expected a field name, a value or '(', found ')'"),
        ("= 1", 0, "expected a field name, a value or '(', found '='"),
        ("a = 1 & b = 2", 6, "unexpected '&'; did you mean '&&'?"),
        ("a = 1 | b = 2", 6, "unexpected '|'; did you mean '||'?"),
        (
            "a == 1",
            2,
            "'==' is not an operator; use '=' to test equality",
        ),
        ("a ! 1", 2, "expected '!=' or '!~', found '!' and ' '"),
        ("a = 1 # x", 6, "unexpected character '#'"),
        ("é = 1", 0, "unexpected character 'é'"),
        ("'é' = ü", 6, "unexpected character 'ü'"),
        (
            "a = '\\x'",
            5,
            "unknown escape '\\x' in string; expected one of \\\\ \\' \\\" \\n \\t",
        ),
        (
            "a = 9223372036854775808",
            4,
            "integer '9223372036854775808' is out of range (-9223372036854775808 to 9223372036854775807)",
        ),
        (
            "a = -9223372036854775809",
            4,
            "integer '-9223372036854775809' is out of range (-9223372036854775808 to 9223372036854775807)",
        ),
        ("a = 1e999", 4, "number '1e999' is too large"),
        ("a = -1e400", 4, "number '-1e400' is too large"),
        (
            "a = 1.",
            6,
            "expected a digit after '.' in a number, found the end of the filter",
        ),
        (
            "a = 1e",
            6,
            "expected a digit in the exponent of a number, found the end of the filter",
        ),
        ("a = - 1", 5, "expected a digit after '-', found ' '"),
        ("a = 12x", 6, "unexpected 'x' in a number"),
        ("a = 1.2.3", 7, "unexpected '.' in a number"),
        ("a = .5", 4, "unexpected character '.'"),
        (
            "author. = 1",
            7,
            "expected a field name after '.', found ' '",
        ),
        ("a.1 = 1", 2, "expected a field name after '.', found '1'"),
        (
            "@ = 1",
            0,
            "expected '@now' or '@request', found '@' and ' '",
        ),
        (
            "@foo = 1",
            0,
            "unknown '@foo'; expected '@now' or '@request'",
        ),
        (
            "@nowx = 1",
            0,
            "unknown '@nowx'; expected '@now' or '@request'",
        ),
        (
            "@request = 1",
            8,
            "expected '@request.auth.<field>' or '@request.body.<field>', found ' '",
        ),
        (
            "@request.cookie.x = 1",
            9,
            "unknown '@request.cookie'; expected '@request.auth.<field>' or '@request.body.<field>'",
        ),
        (
            "@request.auth = 1",
            13,
            "expected '.' and a field name after '@request.auth', found ' '",
        ),
        (
            "@request.body. = 1",
            14,
            "expected a field name after '.', found ' '",
        ),
    ];
    for &(input, position, message) in cases {
        assert_eq!(
            err(input),
            (position, message.to_owned()),
            "input: {input:?}"
        );
    }
}

#[test]
fn error_displays_its_position() {
    let e = FilterError {
        position: 9,
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "at position 9: m");
}

#[test]
fn limits_length() {
    let fits = format!("a = '{}'", "x".repeat(MAX_LEN - 6));
    assert_eq!(fits.chars().count(), MAX_LEN);
    assert!(parse(&fits).is_ok());
    // Chars, not bytes: 4096 two-byte chars fit.
    let wide = format!("a = '{}'", "é".repeat(MAX_LEN - 6));
    assert!(parse(&wide).is_ok());

    let long = format!("a = '{}'", "x".repeat(MAX_LEN - 5));
    let message = format!("filter is longer than {MAX_LEN} characters");
    assert_eq!(err(&long), (MAX_LEN, message.clone()));
    assert_eq!(err(&"(".repeat(1_000_000)), (MAX_LEN, message));
}

#[test]
fn limits_nesting() {
    let nested = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&nested(MAX_DEPTH)), eq("a", 1));
    let message = format!("parentheses are nested deeper than {MAX_DEPTH} levels");
    assert_eq!(err(&nested(MAX_DEPTH + 1)), (MAX_DEPTH, message.clone()));
    assert_eq!(err(&"(".repeat(MAX_LEN)), (MAX_DEPTH, message));
    // Depth is the number of parentheses open at once, not in total.
    let siblings = vec![nested(MAX_DEPTH); 3].join(" && ");
    assert!(parse(&siblings).is_ok());
}

#[test]
fn limits_comparisons() {
    let chain = |n: usize| vec!["a=1"; n].join("||");
    assert!(parse(&chain(MAX_COMPARISONS)).is_ok());
    let message = format!("filter has more than {MAX_COMPARISONS} comparisons");
    assert_eq!(
        err(&chain(MAX_COMPARISONS + 1)),
        (MAX_COMPARISONS * 5, message)
    );
}
