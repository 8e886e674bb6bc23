//! Prints the tree back as canonical filter source.
//!
//! Rules are stored and shown as text, and clients build filters from trees, so printing must
//! give back the same tree when parsed: `parse(&e.to_string())` equals `e` up to spans.
//! Parentheses appear only where precedence or left-associativity needs them, operators are
//! surrounded by single spaces, and strings are single-quoted.
//!
//! A tree prints as valid source only if it could have come from the parser: field path
//! segments are identifiers other than `true`, `false` and `null`, request paths start with
//! `auth` or `body` and have a field after it, and floats are finite.

use std::fmt::{self, Display, Formatter, Write as _};

use super::ast::{CmpOp, Expr, Literal, Operand};

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Cmp { left, op, right } => write!(f, "{left} {op} {right}"),
            Expr::Or(left, right) => {
                write!(f, "{left} || ")?;
                // Or is left-associative, so only an Or on the right needs parentheses.
                write_grouped(f, right, matches!(**right, Expr::Or(..)))
            }
            Expr::And(left, right) => {
                write_grouped(f, left, matches!(**left, Expr::Or(..)))?;
                f.write_str(" && ")?;
                write_grouped(f, right, !matches!(**right, Expr::Cmp { .. }))
            }
        }
    }
}

fn write_grouped(f: &mut Formatter<'_>, expr: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({expr})")
    } else {
        write!(f, "{expr}")
    }
}

impl CmpOp {
    /// The operator's source text, e.g. `"!~"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Like => "~",
            CmpOp::NotLike => "!~",
        }
    }
}

impl Display for CmpOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Operand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field { path, .. } => f.write_str(&path.join(".")),
            Operand::Literal { value, .. } => write!(f, "{value}"),
            Operand::Now { .. } => f.write_str("@now"),
            Operand::Request { path, .. } if path.first().is_some_and(|p| p == "channel") => {
                write!(f, "@{}", path.join("."))
            }
            Operand::Request { path, .. } => write!(f, "@request.{}", path.join(".")),
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => {
                f.write_char('\'')?;
                for c in s.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '\'' => f.write_str("\\'")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('\'')
            }
            Literal::Int(i) => write!(f, "{i}"),
            // Debug is the shortest text that reads back to the same f64, and always has a
            // '.' or an exponent, so it lexes as a float, never as an integer.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::ast::{CmpOp, Expr, Literal, Operand, Span};
    use super::super::parse;

    /// Parses and prints.
    fn canonical(input: &str) -> String {
        match parse(input) {
            Ok(expr) => expr.to_string(),
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    #[test]
    fn prints_parentheses_only_where_needed() {
        let cases = [
            ("a=1||b=2&&c=3", "a = 1 || b = 2 && c = 3"),
            ("(a=1||b=2)&&c=3", "(a = 1 || b = 2) && c = 3"),
            ("a=1&&(b=2||c=3)", "a = 1 && (b = 2 || c = 3)"),
            ("(a=1&&b=2)&&c=3", "a = 1 && b = 2 && c = 3"),
            ("a=1&&(b=2&&c=3)", "a = 1 && (b = 2 && c = 3)"),
            ("(a=1||b=2)||c=3", "a = 1 || b = 2 || c = 3"),
            ("a=1||(b=2||c=3)", "a = 1 || (b = 2 || c = 3)"),
            ("(a=1&&b=2)||(c=3&&d=4)", "a = 1 && b = 2 || c = 3 && d = 4"),
            ("(((a=1)))", "a = 1"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn prints_operands() {
        let cases = [
            ("a.b != @now", "a.b != @now"),
            ("@request.auth.id = owner", "@request.auth.id = owner"),
            ("@request.body.x !~ \"it's\"", "@request.body.x !~ 'it\\'s'"),
            ("a ~ 'tab\\there\\n\\\\'", "a ~ 'tab\\there\\n\\\\'"),
            ("a ~ \"\\\"q\\\"\"", "a ~ '\"q\"'"),
            ("a >= -7", "a >= -7"),
            ("a < 1.0", "a < 1.0"),
            ("a <= 1e3", "a <= 1000.0"),
            ("a > -0.0", "a > -0.0"),
            ("a = 1e300", "a = 1e300"),
            ("a = 1.5e-7", "a = 1.5e-7"),
            (
                "a = true && b = false || c = null",
                "a = true && b = false || c = null",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn prints_extreme_floats_as_floats() {
        for x in [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            0.1,
            1e16,
            123456789.0,
        ] {
            let value = Literal::Float(x);
            let span = Span::default();
            let expr = Expr::Cmp {
                left: Operand::Field {
                    path: vec!["a".into()],
                    span,
                },
                op: CmpOp::Eq,
                right: Operand::Literal { value, span },
            };
            assert_eq!(
                parse(&expr.to_string()).map(|e| e.without_spans()),
                Ok(expr)
            );
        }
    }

    fn ident() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,6}".prop_filter("keywords are not fields", |s| {
            !matches!(s.as_str(), "true" | "false" | "null")
        })
    }

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z '\"\\\\\n\t]{0,8}",
            proptest::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        ]
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            string().prop_map(Literal::Str),
            any::<i64>().prop_map(Literal::Int),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Literal::Float),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn operand() -> impl Strategy<Value = Operand> {
        let span = Span::default();
        let path = || proptest::collection::vec(ident(), 1..4);
        prop_oneof![
            path().prop_map(move |path| Operand::Field { path, span }),
            literal().prop_map(move |value| Operand::Literal { value, span }),
            Just(Operand::Now { span }),
            (prop_oneof![Just("auth"), Just("body")], path()).prop_map(move |(section, rest)| {
                let path = std::iter::once(section.to_owned()).chain(rest).collect();
                Operand::Request { path, span }
            }),
        ]
    }

    fn cmp_op() -> impl Strategy<Value = CmpOp> {
        use CmpOp::*;
        proptest::sample::select(vec![Eq, Ne, Gt, Ge, Lt, Le, Like, NotLike])
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = (operand(), cmp_op(), operand()).prop_map(|(left, op, right)| Expr::Cmp {
            left,
            op,
            right,
        });
        leaf.prop_recursive(6, 48, 2, |inner| {
            (inner.clone(), inner, any::<bool>()).prop_map(|(l, r, is_and)| {
                if is_and {
                    Expr::And(Box::new(l), Box::new(r))
                } else {
                    Expr::Or(Box::new(l), Box::new(r))
                }
            })
        })
    }

    /// Text that is close to a filter, with the odd stray token or unbalanced parenthesis, so
    /// that the parser gets past the lexer and succeeds about half the time.
    fn filter_like() -> impl Strategy<Value = String> {
        let pick = |valid: Vec<&'static str>, invalid: &'static str| prop_oneof![20 => proptest::sample::select(valid), 1 => Just(invalid)];
        let atoms = vec![
            "a",
            "b.c",
            "'x\\''",
            "-1.5",
            "7",
            "@now",
            "@request.auth.id",
            "null",
        ];
        let atom = || pick(atoms.clone(), "");
        let op = pick(vec!["=", "!=", "~", ">=", "<", "!~"], "==");
        let parens = pick(vec!["", "", "", "(", "(("], ")");
        let clause = (parens, atom(), op, atom()).prop_map(|(open, l, op, r)| {
            // A lone ")" is the stray parenthesis; otherwise close what was opened.
            let close = ")".repeat(if open == ")" { 0 } else { open.len() });
            format!("{open}{l} {op} {r}{close}")
        });
        let join = pick(vec![" && ", "||", " || ", "&&"], " ");
        proptest::collection::vec((clause, join), 1..8).prop_map(|parts| {
            let mut out = String::new();
            for (n, (clause, join)) in parts.into_iter().enumerate() {
                if n > 0 {
                    out.push_str(join);
                }
                out.push_str(&clause);
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn printed_trees_parse_back(expr in expr()) {
            let printed = expr.to_string();
            let parsed = parse(&printed).map(|e| e.without_spans());
            prop_assert_eq!(parsed, Ok(expr.without_spans()), "printed: {}", printed);
        }

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            if let Err(e) = parse(&input) {
                prop_assert!(e.position <= input.chars().count());
            }
        }

        #[test]
        fn parse_never_panics_on_nesting(open in 0usize..5000, close in 0usize..5000, body in filter_like()) {
            let input = format!("{}{body}{}", "(".repeat(open), ")".repeat(close));
            if let Err(e) = parse(&input) {
                prop_assert!(e.position <= input.chars().count());
            }
        }

        #[test]
        fn printing_is_canonical(input in filter_like()) {
            if let Ok(expr) = parse(&input) {
                let printed = expr.to_string();
                let reparsed = parse(&printed).map(|e| e.without_spans());
                prop_assert_eq!(reparsed, Ok(expr.without_spans()), "printed: {}", printed);
                let spans_ok = expr.operands().iter().all(|o| input.get(o.span().start..o.span().end).is_some());
                prop_assert!(spans_ok);
            }
        }
    }
}
