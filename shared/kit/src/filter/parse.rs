//! Lexer and recursive-descent parser for the AIP-160 subset.

use crate::error::Error;

/// Longest filter accepted, in characters.
pub const MAX_FILTER_LEN: usize = 2000;
/// Deepest nesting of parentheses and NOT.
pub const MAX_DEPTH: usize = 8;
/// Most comparisons in one filter.
pub const MAX_TERMS: usize = 50;
/// Longest literal, in characters.
pub const MAX_LITERAL_LEN: usize = 256;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `:` (has)
    Has,
}

impl Comparator {
    /// The operator as written in a filter.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Has => ":",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// Must not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Compare {
        /// Dotted field path, e.g. `birthday.month`.
        field: String,
        /// Operator.
        op: Comparator,
        /// The literal as written (quotes removed, escapes resolved).
        value: String,
        /// Whether it was quoted (a quoted `*` is literal, not a wildcard).
        quoted: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LParen,
    RParen,
    Op(Comparator),
    Minus,
    And,
    Or,
    Not,
    Word(String),
    Quoted(String),
}

fn invalid(description: impl Into<String>) -> Error {
    Error::invalid("filter", "INVALID_FILTER", description)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | '@' | '*' | '/')
}

fn lex(input: &str) -> Result<Vec<Token>, Error> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(if c == '(' { Token::LParen } else { Token::RParen });
            }
            '=' | ':' => {
                chars.next();
                tokens.push(Token::Op(if c == '=' { Comparator::Eq } else { Comparator::Has }));
            }
            '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    chars.next();
                }
                tokens.push(Token::Op(match (c, eq) {
                    ('!', true) => Comparator::Ne,
                    ('<', false) => Comparator::Lt,
                    ('<', true) => Comparator::Le,
                    ('>', false) => Comparator::Gt,
                    ('>', true) => Comparator::Ge,
                    _ => return Err(invalid("`!` must be followed by `=`")),
                }));
            }
            '"' | '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(invalid("unterminated string literal")),
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => text.push(escaped),
                            None => return Err(invalid("unterminated string literal")),
                        },
                        Some(other) => text.push(other),
                    }
                    if text.chars().count() > MAX_LITERAL_LEN {
                        return Err(literal_too_long());
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            '-' if matches!(
                tokens.last(),
                None | Some(Token::LParen | Token::And | Token::Or | Token::Not | Token::Word(_) | Token::Quoted(_) | Token::RParen)
            ) =>
            {
                // A minus at the start of a term negates it; after an operator it begins a literal such as -5.
                chars.next();
                tokens.push(Token::Minus);
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                    if word.chars().count() > MAX_LITERAL_LEN {
                        return Err(literal_too_long());
                    }
                }
                tokens.push(match word.as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Word(word),
                });
            }
            other => return Err(invalid(format!("unexpected character {other:?}"))),
        }
    }
    Ok(tokens)
}

fn literal_too_long() -> Error {
    Error::invalid("filter", "FILTER_TOO_COMPLEX", format!("literals are limited to {MAX_LITERAL_LEN} characters"))
}

/// Parses a filter; an empty filter yields `None` (match everything).
pub(super) fn parse(input: &str) -> Result<Option<Expr>, Error> {
    if input.chars().count() > MAX_FILTER_LEN {
        return Err(Error::invalid("filter", "FILTER_TOO_COMPLEX", format!("filters are limited to {MAX_FILTER_LEN} characters")));
    }
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser { tokens, pos: 0, terms: 0 };
    let expr = parser.expression(0)?;
    if let Some(extra) = parser.tokens.get(parser.pos) {
        return Err(invalid(format!("unexpected {} after the end of the expression", describe(extra))));
    }
    Ok(Some(expr))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    terms: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::Op(op) => format!("`{}`", op.symbol()),
        Token::Minus => "`-`".into(),
        Token::And => "AND".into(),
        Token::Or => "OR".into(),
        Token::Not => "NOT".into(),
        Token::Word(w) => format!("{w:?}"),
        Token::Quoted(q) => format!("string {q:?}"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    /// expression := sequence { AND sequence }
    fn expression(&mut self, depth: usize) -> Result<Expr, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid("filter", "FILTER_TOO_COMPLEX", format!("filters may nest at most {MAX_DEPTH} levels")));
        }
        let mut items = vec![self.sequence(depth)?];
        while self.peek() == Some(&Token::And) {
            self.next();
            items.push(self.sequence(depth)?);
        }
        Ok(flatten(items, Expr::And))
    }

    /// sequence := factor { factor } — juxtaposed factors are ANDed.
    fn sequence(&mut self, depth: usize) -> Result<Expr, Error> {
        let mut items = vec![self.factor(depth)?];
        while matches!(self.peek(), Some(Token::LParen | Token::Not | Token::Minus | Token::Word(_))) {
            items.push(self.factor(depth)?);
        }
        Ok(flatten(items, Expr::And))
    }

    /// factor := term { OR term }
    fn factor(&mut self, depth: usize) -> Result<Expr, Error> {
        let mut items = vec![self.term(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.next();
            items.push(self.term(depth)?);
        }
        Ok(flatten(items, Expr::Or))
    }

    /// term := [NOT | -] simple
    fn term(&mut self, depth: usize) -> Result<Expr, Error> {
        if matches!(self.peek(), Some(Token::Not | Token::Minus)) {
            self.next();
            return Ok(Expr::Not(Box::new(self.simple(depth + 1)?)));
        }
        self.simple(depth)
    }

    /// simple := '(' expression ')' | field comparator value
    fn simple(&mut self, depth: usize) -> Result<Expr, Error> {
        match self.next() {
            Some(Token::LParen) => {
                let inner = self.expression(depth + 1)?;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => Err(invalid("missing `)`")),
                }
            }
            Some(Token::Word(field)) => {
                let op = match self.next() {
                    Some(Token::Op(op)) => op,
                    _ => {
                        return Err(invalid(format!(
                            "expected an operator after {field:?}; bare values are not supported, write `field = value`"
                        )));
                    }
                };
                let negative = if self.peek() == Some(&Token::Minus) {
                    self.next();
                    true
                } else {
                    false
                };
                let (value, quoted) = match self.next() {
                    Some(Token::Word(w)) => (w, false),
                    Some(Token::Quoted(q)) if !negative => (q, true),
                    Some(Token::And | Token::Or | Token::Not) => {
                        return Err(invalid(format!("expected a value after `{field} {}`", op.symbol())));
                    }
                    _ => return Err(invalid(format!("expected a value after `{field} {}`", op.symbol()))),
                };
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    return Err(Error::invalid(
                        "filter",
                        "FILTER_TOO_COMPLEX",
                        format!("filters may have at most {MAX_TERMS} comparisons"),
                    ));
                }
                let value = if negative { format!("-{value}") } else { value };
                let value = if quoted { value } else { self.relative_time(value) };
                Ok(Expr::Compare { field, op, value, quoted })
            }
            Some(other) => Err(invalid(format!("unexpected {}", describe(&other)))),
            None => Err(invalid("the filter ends too early")),
        }
    }
}

impl Parser {
    /// `now - 90d` and `now + 7d` written with spaces, as one value
    /// (`now-90d`): a minus followed by a duration right after `now` is part
    /// of the value, not the negation of the next term.
    fn relative_time(&mut self, value: String) -> String {
        if value != "now" {
            return value;
        }
        let sign = match self.peek() {
            Some(Token::Minus) => "-",
            Some(Token::Word(w)) if w == "+" => "+",
            _ => return value,
        };
        match self.tokens.get(self.pos + 1) {
            Some(Token::Word(duration)) if is_duration(duration) => {
                let duration = duration.clone();
                self.pos += 2;
                format!("now{sign}{duration}")
            }
            _ => value,
        }
    }
}

/// Whether `word` is a duration such as `90d`, `12h`, `30m`, `2w`.
pub(super) fn is_duration(word: &str) -> bool {
    let Some(unit) = word.chars().last() else { return false };
    let digits = &word[..word.len() - unit.len_utf8()];
    matches!(unit, 's' | 'm' | 'h' | 'd' | 'w') && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn flatten(mut items: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 { items.pop().expect("one item") } else { combine(items) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: Comparator, value: &str) -> Expr {
        Expr::Compare { field: field.into(), op, value: value.into(), quoted: false }
    }

    #[test]
    fn or_binds_tighter_than_and() {
        let e = parse("a = 1 AND b = 2 OR c = 3").unwrap().unwrap();
        assert_eq!(
            e,
            Expr::And(vec![cmp("a", Comparator::Eq, "1"), Expr::Or(vec![cmp("b", Comparator::Eq, "2"), cmp("c", Comparator::Eq, "3")])])
        );
    }

    #[test]
    fn negation_quotes_and_operators() {
        let e = parse(r#"NOT (tags:"a b") -x>=-5 name != 'it\'s'"#).unwrap().unwrap();
        let Expr::And(items) = e else { panic!("and") };
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            Expr::Not(Box::new(Expr::Compare { field: "tags".into(), op: Comparator::Has, value: "a b".into(), quoted: true }))
        );
        assert_eq!(items[1], Expr::Not(Box::new(cmp("x", Comparator::Ge, "-5"))));
        assert_eq!(items[2], Expr::Compare { field: "name".into(), op: Comparator::Ne, value: "it's".into(), quoted: true });
    }

    #[test]
    fn double_negation_needs_parentheses() {
        assert_eq!(parse("NOT NOT a = 1").unwrap_err().reason(), "INVALID_FILTER");
        assert!(parse("NOT (NOT a = 1)").is_ok());
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert_eq!(parse("   ").unwrap(), None);
    }

    #[test]
    fn malformed_filters_are_invalid_argument() {
        for bad in ["a =", "a", "(a = 1", "a = 1)", "a ! 1", "a = \"x", "= 1", "a = 1 AND", "a = 1 OR OR b = 2", "a = ;", "a = NOT"] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn hostile_sizes_are_rejected_cheaply() {
        let deep = format!("{}a = 1{}", "(".repeat(50), ")".repeat(50));
        assert_eq!(parse(&deep).unwrap_err().reason(), "FILTER_TOO_COMPLEX");
        let nots = format!("{}a = 1{}", "NOT (".repeat(50), ")".repeat(50));
        assert_eq!(parse(&nots).unwrap_err().reason(), "FILTER_TOO_COMPLEX");
        let many = vec!["a = 1"; 60].join(" AND ");
        assert_eq!(parse(&many).unwrap_err().reason(), "FILTER_TOO_COMPLEX");
        let huge = format!("a = \"{}\"", "x".repeat(300));
        assert_eq!(parse(&huge).unwrap_err().reason(), "FILTER_TOO_COMPLEX");
        assert_eq!(parse(&"a".repeat(5000)).unwrap_err().reason(), "FILTER_TOO_COMPLEX");
    }

    #[test]
    fn random_input_never_panics() {
        // A tiny xorshift generator keeps the test deterministic without extra crates.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet: Vec<char> = "ab =!<>:()\"'\\-*.NOTANDOR19é\u{0}".chars().collect();
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse(&text);
        }
    }
}
