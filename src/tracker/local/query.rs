//! The filter-query language of the local tracker.
//!
//! A `filter` synchronizer over the local tracker selects issues with a small,
//! JQL-like query, parsed once and then matched against every issue in the file:
//!
//! ```text
//! project = PLAT and status != Done
//! type in (Story, Bug) and (priority = High or summary ~ urgent)
//! status = "In Progress" and updated >= 2026-11-01
//! parent is empty and not statusCategory = Done
//! ```
//!
//! # Conditions
//!
//! | Condition                     | Holds when                                     |
//! |-------------------------------|------------------------------------------------|
//! | `FIELD = VALUE`               | the field equals the value, ignoring case      |
//! | `FIELD != VALUE`              | it does not                                    |
//! | `FIELD ~ VALUE`               | the field contains the value, ignoring case    |
//! | `FIELD !~ VALUE`              | it does not                                    |
//! | `FIELD in (V1, V2, ...)`      | the field equals any of the values             |
//! | `FIELD not in (V1, V2, ...)`  | it equals none of them                         |
//! | `FIELD is empty`              | the field has no value                         |
//! | `FIELD is not empty`          | it has one                                     |
//! | `updated < TIME`              | the issue was last updated before TIME; also `<=`, `>`, `>=`, `=`, `!=` |
//!
//! A field without a value (no parent, an absent custom field, an empty string)
//! equals and contains nothing: `=`, `~`, `in` and time comparisons are false
//! for it, and `!=`, `!~` and `not in` are true.
//!
//! # Fields
//!
//! | Field            | Value                                                        |
//! |------------------|--------------------------------------------------------------|
//! | `key`            | the issue key, `PLAT-12`                                     |
//! | `project`        | the key's prefix, `PLAT`                                     |
//! | `summary`        | the summary                                                  |
//! | `type`           | the issue type, `Story`                                      |
//! | `status`         | the status, `In Progress`                                    |
//! | `statusCategory` | `To Do`, `In Progress` or `Done`, derived from the status    |
//! | `parent`, `epic` | the key of the parent or epic                                |
//! | `rank`           | the rank                                                     |
//! | `updated`        | the last update time; only this field takes `<`, `<=`, `>`, `>=` |
//! | `link`           | the targets of the issue's links; true if any one matches    |
//! | `linkType`       | the types of the issue's links (`blocks`); likewise          |
//!
//! Any other name is a custom field from the issue's `fields`: `component = Api`;
//! the tracker refuses a bare name that no issue has among its fields (a
//! misspelt `projekt` would match nothing), suggesting the nearest name.
//! Write `fields.NAME` to reach a custom field that shares a built-in name
//! (`fields.rank`), and quote a name with spaces: `"Story Points" = 5`.
//!
//! # Values
//!
//! A value is a bare word of letters, digits and `- _ . : / +`, or a string in
//! double quotes, where `\"` and `\\` stand for a quote and a backslash:
//! `status = "In Progress"`. Quote a value that is also a keyword: `status = "empty"`.
//! A time is an RFC 3339 timestamp (`2026-11-01T09:30:00Z`, `2026-11-01T09:30:00+02:00`)
//! or a date (`2026-11-01`), meaning midnight UTC.
//!
//! # Combining
//!
//! `and` binds tighter than `or`, so `a or b and c` means `a or (b and c)`;
//! parentheses group otherwise. `not` negates the condition or group after it.
//! Keywords (`and`, `or`, `not`, `in`, `is`, `empty`) and field names ignore case.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use jiff::{Timestamp, civil::Date, tz::TimeZone};

use crate::model::Issue;

type Result<T> = std::result::Result<T, QueryError>;

/// A parsed filter query.
#[derive(Clone, Debug)]
pub struct Query {
    expr: Expr,
    /// Names that are no built-in field, written without `fields.`, and
    /// where: a misspelt `projekt` would otherwise silently match nothing.
    bare_custom: Vec<(String, usize)>,
}

/// Two queries are equal when they mean the same, however spaced.
impl PartialEq for Query {
    fn eq(&self, other: &Query) -> bool {
        self.expr == other.expr
    }
}

impl Query {
    /// Parses `source`; an error names the column of the first problem.
    pub fn parse(source: &str) -> Result<Query> {
        let tokens = lex(source)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            bare_custom: Vec::new(),
        };
        if parser.peek().kind == Kind::End {
            return Err(QueryError::new(
                1,
                "the query is empty; write e.g. `project = PLAT`",
            ));
        }
        let expr = parser.or_expr()?;
        parser.finish()?;
        Ok(Query {
            expr,
            bare_custom: parser.bare_custom,
        })
    }

    /// Refuses a bare field name that is neither built in nor a custom
    /// field of some issue (`known`), suggesting the nearest of those.
    pub fn check_fields<'a>(&self, known: impl Iterator<Item = &'a str> + Clone) -> Result<()> {
        for (name, column) in &self.bare_custom {
            if known.clone().any(|k| k.eq_ignore_ascii_case(name)) {
                continue;
            }
            let hint = match crate::tracker::nearest(
                name,
                BUILT_IN.iter().copied().chain(known.clone()),
            ) {
                Some(near) => format!("did you mean `{near}`? "),
                None => String::new(),
            };
            return Err(QueryError::new(
                *column,
                format!(
                    "`{name}` is not a field: it is not built in and no issue has it in its fields; {hint}(write `fields.{name}` for a custom field no issue has yet)"
                ),
            ));
        }
        Ok(())
    }

    /// Whether `issue` satisfies the query.
    pub fn matches(&self, issue: &Issue) -> bool {
        self.expr.eval(issue)
    }
}

/// A syntax error with the 1-based character column where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}

impl QueryError {
    fn new(column: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            column,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- evaluation

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Text(TextField, TextTest),
    /// Holds when `updated` compares to the time in one of the orderings.
    Updated(&'static [Ordering], Timestamp),
    UpdatedEmpty,
}

impl Expr {
    fn eval(&self, issue: &Issue) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|term| term.eval(issue)),
            Expr::And(terms) => terms.iter().all(|term| term.eval(issue)),
            Expr::Not(inner) => !inner.eval(issue),
            Expr::Text(field, test) => test.eval(&field.values(issue)),
            Expr::Updated(orderings, at) => issue
                .updated
                .is_some_and(|updated| orderings.contains(&updated.cmp(at))),
            Expr::UpdatedEmpty => issue.updated.is_none(),
        }
    }

    /// Negative operators (`!=`, `not in`, ...) are `not` over the positive
    /// ones, which makes a missing value satisfy `!=` as it should.
    fn negate_if(self, negated: bool) -> Expr {
        if negated {
            Expr::Not(Box::new(self))
        } else {
            self
        }
    }
}

/// A field that reads as text; `updated` alone is a time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TextField {
    Key,
    Project,
    Summary,
    Type,
    Status,
    StatusCategory,
    Parent,
    Epic,
    Rank,
    Link,
    LinkType,
    Custom(String),
}

impl TextField {
    /// The field's non-empty values on `issue`; only links have several.
    fn values<'a>(&self, issue: &'a Issue) -> Vec<&'a str> {
        let mut values: Vec<&str> = match self {
            TextField::Key => vec![&issue.key],
            TextField::Project => vec![issue.project()],
            TextField::Summary => vec![&issue.summary],
            TextField::Type => vec![&issue.issue_type],
            TextField::Status => vec![&issue.status],
            TextField::StatusCategory => vec![issue.status_category().as_str()],
            TextField::Parent => issue.parent.as_deref().into_iter().collect(),
            TextField::Epic => issue.epic.as_deref().into_iter().collect(),
            TextField::Rank => issue.rank.as_deref().into_iter().collect(),
            TextField::Link => issue.links.iter().map(|link| &*link.target).collect(),
            TextField::LinkType => issue.links.iter().map(|link| &*link.link_type).collect(),
            TextField::Custom(name) => custom_field(issue, name).into_iter().collect(),
        };
        // `component: ""` in the file means "no component", not a component named "".
        values.retain(|value| !value.is_empty());
        values
    }
}

/// Custom field names ignore case, as the built-in ones do.
fn custom_field<'a>(issue: &'a Issue, name: &str) -> Option<&'a str> {
    let mut fields = issue.fields.iter();
    let (_, value) = fields.find(|(key, _)| key.eq_ignore_ascii_case(name))?;
    Some(value)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TextTest {
    /// Equals one of these values, kept lowercased.
    Equals(Vec<String>),
    /// Contains this text, kept lowercased.
    Contains(String),
    Empty,
}

impl TextTest {
    fn eval(&self, values: &[&str]) -> bool {
        let mut lowered = values.iter().map(|value| value.to_lowercase());
        match self {
            TextTest::Equals(wanted) => lowered.any(|value| wanted.contains(&value)),
            TextTest::Contains(needle) => lowered.any(|value| value.contains(needle.as_str())),
            TextTest::Empty => values.is_empty(),
        }
    }
}

// ------------------------------------------------------------------- lexing

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Word(String),
    Quoted(String),
    /// One of `OPERATORS`, as the token's text.
    Op,
    Open,
    Close,
    Comma,
    End,
}

const OPERATORS: [&str; 8] = ["=", "!=", "~", "!~", "<", "<=", ">", ">="];
const KEYWORDS: [&str; 6] = ["and", "or", "not", "in", "is", "empty"];
const TEXT_OPERATORS: &str = "=, !=, ~, !~, in, not in, is empty or is not empty";
const TIME_OPERATORS: &str = "<, <=, >, >=, =, != or is empty";

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    column: usize,
    /// The source text, for error messages.
    raw: String,
}

impl Token {
    /// Keywords are only ever bare words, so `"and"` stays a plain value.
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, Kind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn is_any_keyword(&self) -> bool {
        KEYWORDS.iter().any(|keyword| self.is_keyword(keyword))
    }

    fn error(&self, message: impl Into<String>) -> QueryError {
        QueryError::new(self.column, message)
    }

    /// The error for finding this token where `what` should be.
    fn expected(&self, what: &str) -> QueryError {
        let found = match self.kind {
            Kind::End => "the end of the query".to_string(),
            _ => format!("`{}`", self.raw),
        };
        self.error(format!("expected {what}, found {found}"))
    }
}

/// Splits `source` into tokens, always ending with `Kind::End`.
fn lex(source: &str) -> Result<Vec<Token>> {
    // Columns count characters, so work on chars rather than bytes.
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        if chars[start].is_whitespace() {
            start += 1;
            continue;
        }
        let (kind, end) = token_at(&chars, start)?;
        let (column, raw) = (start + 1, chars[start..end].iter().collect());
        tokens.push(Token { kind, column, raw });
        start = end;
    }
    tokens.push(Token {
        kind: Kind::End,
        column: chars.len() + 1,
        raw: String::new(),
    });
    Ok(tokens)
}

/// Reads the token at `start`, returning it with the index just past it.
fn token_at(chars: &[char], start: usize) -> Result<(Kind, usize)> {
    let column = start + 1;
    match chars[start] {
        '(' => Ok((Kind::Open, start + 1)),
        ')' => Ok((Kind::Close, start + 1)),
        ',' => Ok((Kind::Comma, start + 1)),
        '"' => quoted(chars, start),
        c if is_operator_char(c) => {
            let end = run_end(chars, start, is_operator_char);
            Ok((operator(&chars[start..end], column)?, end))
        }
        c if is_word_char(c) => {
            let end = run_end(chars, start, is_word_char);
            Ok((Kind::Word(chars[start..end].iter().collect()), end))
        }
        c => Err(unexpected_char(c, column)),
    }
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '~' | '<' | '>')
}

/// `+` joins the characters of keys and names so that a timestamp with an
/// offset (`2026-11-01T09:00:00+02:00`) needs no quotes.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '+')
}

fn run_end(chars: &[char], start: usize, belongs: fn(char) -> bool) -> usize {
    chars[start..]
        .iter()
        .position(|&c| !belongs(c))
        .map_or(chars.len(), |len| start + len)
}

/// Takes a whole run of operator characters, so that `==` is reported as an
/// unknown operator rather than as `=` followed by a missing value.
fn operator(symbol: &[char], column: usize) -> Result<Kind> {
    let symbol: String = symbol.iter().collect();
    if OPERATORS.contains(&symbol.as_str()) {
        return Ok(Kind::Op);
    }
    let message = format!(
        "unknown operator `{symbol}`; use one of {}",
        OPERATORS.join(", ")
    );
    Err(QueryError::new(column, message))
}

fn quoted(chars: &[char], start: usize) -> Result<(Kind, usize)> {
    let mut text = String::new();
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        match (c, chars.get(i + 1)) {
            ('"', _) => return Ok((Kind::Quoted(text), i + 1)),
            ('\\', Some(&escaped @ ('"' | '\\'))) => {
                text.push(escaped);
                i += 1;
            }
            ('\\', Some(other)) => {
                let message = format!("unknown escape `\\{other}`; write `\\\"` or `\\\\`");
                return Err(QueryError::new(i + 1, message));
            }
            ('\\', None) => break,
            _ => text.push(c),
        }
        i += 1;
    }
    Err(QueryError::new(
        start + 1,
        "unterminated string; close it with `\"`",
    ))
}

fn unexpected_char(c: char, column: usize) -> QueryError {
    // Point users of other query languages at this one's spelling.
    let hint = match c {
        '&' | '|' => "; join conditions with `and` / `or`",
        '\'' => "; quote values with double quotes",
        _ => "",
    };
    QueryError::new(column, format!("unexpected character `{c}`{hint}"))
}

// ------------------------------------------------------------------ parsing

/// The built-in field names, as the documentation writes them.
const BUILT_IN: &[&str] = &[
    "key",
    "project",
    "summary",
    "type",
    "status",
    "statusCategory",
    "parent",
    "epic",
    "rank",
    "updated",
    "link",
    "linkType",
];

/// A field as resolved from its name; `updated` compares as a time.
enum Field {
    Text(TextField),
    Updated,
}

fn resolve_field(name: &str, column: usize) -> Result<Field> {
    if let Some((prefix, custom)) = name.split_at_checked(7)
        && prefix.eq_ignore_ascii_case("fields.")
    {
        if custom.is_empty() {
            return Err(QueryError::new(
                column,
                "expected a field name after `fields.`",
            ));
        }
        return Ok(Field::Text(TextField::Custom(custom.to_string())));
    }
    let field = match name.to_ascii_lowercase().as_str() {
        "updated" => return Ok(Field::Updated),
        "key" => TextField::Key,
        "project" => TextField::Project,
        "summary" => TextField::Summary,
        "type" => TextField::Type,
        "status" => TextField::Status,
        "statuscategory" => TextField::StatusCategory,
        "parent" => TextField::Parent,
        "epic" => TextField::Epic,
        "rank" => TextField::Rank,
        "link" => TextField::Link,
        "linktype" => TextField::LinkType,
        _ => TextField::Custom(name.to_string()),
    };
    Ok(Field::Text(field))
}

/// A recursive-descent parser over the tokens, one method per grammar rule.
struct Parser {
    /// Always ends with `Kind::End`, which `advance` never moves past.
    tokens: Vec<Token>,
    pos: usize,
    bare_custom: Vec<(String, usize)>,
}

/// A grammar rule, and the node that joins a run of its results.
type Rule = fn(&mut Parser) -> Result<Expr>;
type Join = fn(Vec<Expr>) -> Expr;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != Kind::End {
            self.pos += 1;
        }
        token
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_keyword(keyword);
        if found {
            self.pos += 1;
        }
        found
    }

    fn or_expr(&mut self) -> Result<Expr> {
        self.joined("or", Parser::and_expr, Expr::Or)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        self.joined("and", Parser::unary, Expr::And)
    }

    /// Reads `term (keyword term)*`; a single term stands for itself.
    fn joined(&mut self, keyword: &str, term: Rule, join: Join) -> Result<Expr> {
        let mut terms = vec![term(self)?];
        while self.eat_keyword(keyword) {
            terms.push(term(self)?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            join(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.eat_keyword("not") {
            return Ok(self.unary()?.negate_if(true));
        }
        if self.peek().kind != Kind::Open {
            return self.comparison();
        }
        let open = self.advance();
        let inner = self.or_expr()?;
        let close = self.advance();
        if close.kind != Kind::Close {
            return Err(close.expected(&format!("`)` to close the `(` at column {}", open.column)));
        }
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Expr> {
        let (field, name) = self.field()?;
        let op = self.advance();
        match op.kind {
            Kind::Op => self.compare(field, &op),
            _ if op.is_keyword("in") => self.membership(field, &op),
            _ if op.is_keyword("not") => {
                let keyword = self.advance();
                if !keyword.is_keyword("in") {
                    return Err(keyword.expected("`in` after `not`"));
                }
                Ok(self.membership(field, &keyword)?.negate_if(true))
            }
            _ if op.is_keyword("is") => self.emptiness(field),
            _ => {
                let mut error = op.expected(&format!("an operator after `{name}`"));
                let operators = match field {
                    Field::Text(_) => TEXT_OPERATORS,
                    Field::Updated => TIME_OPERATORS,
                };
                error.message += &format!("; use {operators}");
                Err(error)
            }
        }
    }

    /// Reads a field name, returning the field and the name as written.
    fn field(&mut self) -> Result<(Field, String)> {
        let token = self.advance();
        match &token.kind {
            Kind::Word(name) | Kind::Quoted(name) if !token.is_any_keyword() => {
                let field = resolve_field(name, token.column)?;
                let explicit = name
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("fields."));
                if matches!(field, Field::Text(TextField::Custom(_))) && !explicit {
                    self.bare_custom.push((name.clone(), token.column));
                }
                Ok((field, token.raw.clone()))
            }
            _ => Err(token.expected("a field name")),
        }
    }

    /// Reads the value after `after` (an operator, `(` or `,`).
    fn value(&mut self, after: &Token) -> Result<(String, usize)> {
        let token = self.advance();
        match token.kind {
            Kind::Word(text) | Kind::Quoted(text) if !token.is_any_keyword() => {
                Ok((text, token.column))
            }
            _ => {
                let mut error = token.expected(&format!("a value after `{}`", after.raw));
                // A keyword here is most likely a forgotten value, yet may be meant literally.
                if token.is_any_keyword() {
                    error.message +=
                        &format!("; quote it (\"{}\") to match the word itself", token.raw);
                }
                Err(error)
            }
        }
    }

    fn compare(&mut self, field: Field, op: &Token) -> Result<Expr> {
        let (value, column) = self.value(op)?;
        let expr = match (field, op.raw.as_str()) {
            (Field::Updated, "~" | "!~") => return Err(not_for_updated(op)),
            (Field::Updated, symbol) => {
                Expr::Updated(orderings(symbol), parse_time(&value, column)?)
            }
            (Field::Text(field), "=" | "!=") => {
                Expr::Text(field, TextTest::Equals(vec![value.to_lowercase()]))
            }
            (Field::Text(field), "~" | "!~") => {
                Expr::Text(field, TextTest::Contains(value.to_lowercase()))
            }
            (Field::Text(_), symbol) => {
                let message = format!("`{symbol}` only compares `updated`; use {TEXT_OPERATORS}");
                return Err(op.error(message));
            }
        };
        Ok(expr.negate_if(op.raw.starts_with('!')))
    }

    /// Reads `(V1, V2, ...)` after `in`.
    fn membership(&mut self, field: Field, keyword: &Token) -> Result<Expr> {
        let Field::Text(field) = field else {
            return Err(not_for_updated(keyword));
        };
        let open = self.advance();
        if open.kind != Kind::Open {
            return Err(open.expected("`(` after `in`"));
        }
        let mut values = vec![self.value(&open)?.0.to_lowercase()];
        loop {
            let next = self.advance();
            match next.kind {
                Kind::Comma => values.push(self.value(&next)?.0.to_lowercase()),
                Kind::Close => return Ok(Expr::Text(field, TextTest::Equals(values))),
                _ => {
                    let what = format!("`,` or `)` in the list opened at column {}", open.column);
                    return Err(next.expected(&what));
                }
            }
        }
    }

    /// Reads `empty` or `not empty` after `is`.
    fn emptiness(&mut self, field: Field) -> Result<Expr> {
        let negated = self.eat_keyword("not");
        let token = self.advance();
        if !token.is_keyword("empty") {
            let is = if negated { "is not" } else { "is" };
            return Err(token.expected(&format!("`empty` after `{is}`")));
        }
        let test = match field {
            Field::Text(field) => Expr::Text(field, TextTest::Empty),
            Field::Updated => Expr::UpdatedEmpty,
        };
        Ok(test.negate_if(negated))
    }

    /// Rejects whatever follows a complete query.
    fn finish(&self) -> Result<()> {
        let token = self.peek();
        match token.kind {
            Kind::End => Ok(()),
            Kind::Close => Err(token.error("unmatched `)`; no `(` opens it")),
            _ => Err(token.error(format!(
                "unexpected `{}` after a complete condition; join conditions with `and` / `or`",
                token.raw
            ))),
        }
    }
}

/// The orderings of `updated` against a time that satisfy the operator;
/// `!=` is `not` over `=`, like the other negative operators.
fn orderings(symbol: &str) -> &'static [Ordering] {
    match symbol {
        "<" => &[Less],
        "<=" => &[Less, Equal],
        ">=" => &[Greater, Equal],
        ">" => &[Greater],
        _ => &[Equal],
    }
}

fn not_for_updated(op_token: &Token) -> QueryError {
    op_token.error(format!(
        "`{}` does not apply to `updated`; compare it with {TIME_OPERATORS}",
        op_token.raw
    ))
}

/// Reads an RFC 3339 timestamp, or a lone date as midnight UTC.
fn parse_time(text: &str, column: usize) -> Result<Timestamp> {
    // jiff reads a date out of a date-time too, dropping the time; only a
    // text without a time part may stand for midnight.
    let is_date = !text.contains(['T', 't', ' ']);
    let as_date = || {
        let date = text.parse::<Date>().ok().filter(|_| is_date)?;
        Some(date.to_zoned(TimeZone::UTC).ok()?.timestamp())
    };
    text.parse::<Timestamp>().ok().or_else(as_date).ok_or_else(|| {
        let message = format!(
            "`{text}` is not a time; write a timestamp like `2026-11-01T09:30:00Z` or a date like `2026-11-01`"
        );
        QueryError::new(column, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_must_be_built_in_or_some_issues_custom_field() {
        let known = ["component", "Story Points"];
        let check = |q: &str| Query::parse(q).unwrap().check_fields(known.iter().copied());
        assert!(check("Component = Api and \"story points\" = 5").is_ok());
        assert!(
            check("fields.team = Core").is_ok(),
            "fields. names any custom field"
        );
        let error = check("status = Open and componnt = Api").unwrap_err();
        assert_eq!(error.column, 19);
        assert!(
            error.message.contains("did you mean `component`?"),
            "{error}"
        );
        let error = check("linktyp = blocks").unwrap_err();
        assert!(
            error.message.contains("did you mean `linkType`?"),
            "{error}"
        );
        let error = check("zzzzzzzz = 1").unwrap_err();
        assert!(!error.message.contains("did you mean"), "{error}");
    }
    use crate::model::Link;

    /// PLAT-12, an in-progress story under PLAT-1 that blocks PLAT-3.
    fn story() -> Issue {
        let fields = [
            ("Component", "Api"),
            ("Story Points", "5"),
            ("team", ""),
            ("rank", "x"),
        ];
        Issue {
            key: "PLAT-12".into(),
            summary: "Add the Login page".into(),
            issue_type: "Story".into(),
            status: "In Progress".into(),
            parent: Some("PLAT-1".into()),
            epic: None,
            links: vec![link("blocks", "PLAT-3")],
            rank: Some("0|b".into()),
            updated: Some("2026-11-02T10:00:00Z".parse().expect("a valid timestamp")),
            fields: fields
                .map(|(name, value)| (name.into(), value.into()))
                .into(),
        }
    }

    fn link(link_type: &str, target: &str) -> Link {
        let (link_type, target) = (link_type.into(), target.into());
        Link { link_type, target }
    }

    fn parse(query: &str) -> Query {
        Query::parse(query).unwrap_or_else(|error| panic!("`{query}`: {error}"))
    }

    /// The non-blank lines of a table that are not `#` comments, split at ` | `.
    fn rows(table: &str) -> impl Iterator<Item = Vec<&str>> {
        let lines = table.lines().map(str::trim);
        let lines = lines.filter(|line| !line.is_empty() && !line.starts_with('#'));
        lines.map(|line| line.split(" | ").map(str::trim).collect())
    }

    /// Checks a table of rows `yes | QUERY` or `no | QUERY` against `issue`.
    fn check(issue: &Issue, table: &str) {
        for row in rows(table) {
            let (holds, query) = match row[..] {
                ["yes", query] => (true, query),
                ["no", query] => (false, query),
                _ => panic!("bad row {row:?}"),
            };
            assert_eq!(parse(query).matches(issue), holds, "`{query}`");
        }
    }

    #[test]
    fn matches_the_story() {
        check(
            &story(),
            r#"
            # Equality ignores case; negative operators hold for missing values.
            yes | project = plat
            yes | KEY = plat-12
            yes | Type = STORY
            yes | status = "in progress"
            yes | status != Done
            no  | status = Done
            no  | epic = PLAT-1
            yes | epic != PLAT-1
            yes | parent = PLAT-1 and parent != PLAT-2

            # `and` binds tighter than `or`; parentheses and `not` group.
            yes | type = Story or project = X and status = Done
            no  | (type = Story or project = X) and status = Done
            yes | ((project = PLAT))
            yes | key = X or (type = Bug or (key = PLAT-12 and epic is empty))
            yes | not status = Done
            yes | not not project = PLAT
            no  | not (project = PLAT and type = Story)
            no  | not project = PLAT and type = Story

            # Keywords and field names ignore case.
            yes | PROJECT = PLAT AND NOT Status = Done OR Type IN (Bug)
            yes | Epic IS EMPTY and Parent Is Not Empty and type NOT IN (Bug)

            # Lists, substrings and emptiness.
            yes | status in (Done, "In Progress")
            yes | type in(Bug,story)
            yes | status not in (Done, Closed)
            no  | type in (Bug, Epic)
            no  | project not in (ops, plat)
            yes | summary ~ LOGIN
            yes | summary !~ logout
            yes | key ~ -12
            no  | summary ~ "login  page"
            no  | epic ~ PLAT
            yes | epic !~ PLAT
            yes | epic not in (PLAT-1)
            yes | epic is empty
            no  | epic is not empty
            yes | team is empty
            yes | fields.missing is empty and missing != x

            # Status categories, custom fields and links.
            yes | statusCategory = "in progress"
            yes | STATUSCATEGORY in ("To Do", "In Progress")
            no  | statuscategory = done
            yes | component = api
            yes | COMPONENT = API and fields.component ~ ap
            yes | "Story Points" = 5
            yes | fields.rank = x and rank = "0|b"
            no  | priority = High
            no  | fields.key = PLAT-12
            yes | link = plat-3 and linkType = Blocks and link != PLAT-9

            # Times: a date is midnight UTC; offsets count.
            yes | updated > 2026-11-01
            yes | updated >= 2026-11-02
            no  | updated < 2026-11-02
            yes | updated <= 2026-11-02T10:00:00Z
            yes | updated = "2026-11-02T10:00:00Z"
            yes | updated = 2026-11-02T12:00:00+02:00
            no  | updated != 2026-11-02T10:00:00Z
            yes | updated is not empty
            "#,
        );
    }

    #[test]
    fn missing_update_time_compares_false() {
        let mut issue = story();
        issue.updated = None;
        check(
            &issue,
            "no  | updated < 2030-01-01
             no  | updated >= 2000-01-01
             yes | updated is empty and updated != 2026-11-02",
        );
    }

    #[test]
    fn quoted_values_take_escapes_and_keywords() {
        let mut issue = story();
        issue.summary = r#"say "hi" \ now"#.into();
        issue.status = "Empty".into();
        check(
            &issue,
            r#"yes | summary = "say \"hi\" \\ now"
               yes | summary ~ "hi\" \\"
               yes | status = "empty" and status is not empty"#,
        );
    }

    #[test]
    fn link_conditions_hold_if_any_link_does() {
        let mut issue = story();
        issue.links.push(link("relates", "OPS-1"));
        check(
            &issue,
            "yes | link = PLAT-3 and link = OPS-1 and linkType in (relates)",
        );
        issue.links.clear();
        check(&issue, "yes | link is empty and linkType != blocks");
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let query = parse("a = 1 or b = 2 and c = 3");
        assert_eq!(query, parse("a = 1 or (b = 2 and c = 3)"));
        assert_ne!(query, parse("(a = 1 or b = 2) and c = 3"));
        assert_eq!(parse("not a = 1 and b = 2"), parse("(not a = 1) and b = 2"));
    }

    #[test]
    fn negative_operators_negate_positive_ones() {
        assert_eq!(parse("status != Done"), parse("not status = Done"));
        assert_eq!(parse("summary !~ x"), parse("not summary ~ x"));
        assert_eq!(parse("type not in (Bug)"), parse("not type in (Bug)"));
        assert_eq!(parse("epic is not empty"), parse("not epic is empty"));
        assert_eq!(
            parse("updated != 2026-11-02"),
            parse("not updated = 2026-11-02")
        );
    }

    #[test]
    fn empty_query_is_an_error() {
        let error = QueryError::new(1, "the query is empty; write e.g. `project = PLAT`");
        assert_eq!(Query::parse(""), Err(error.clone()));
        assert_eq!(Query::parse(" \t "), Err(error));
    }

    #[test]
    fn errors_display_column_and_message() {
        let error = Query::parse("status = Done foo").expect_err("trailing input");
        let message = "unexpected `foo` after a complete condition; join conditions with";
        assert_eq!(
            error.to_string(),
            format!("column 15: {message} `and` / `or`")
        );
    }

    #[test]
    fn errors_name_their_column() {
        let table = r#"
            # QUERY                 | COLUMN | PART OF THE MESSAGE
            # Operators.
            status == Done          | 8  | unknown operator `==`; use one of =, !=
            status ! Done           | 8  | unknown operator `!`
            status like Done        | 8  | expected an operator after `status`, found `like`; use =
            status                  | 7  | expected an operator after `status`, found the end
            status not = Done       | 12 | expected `in` after `not`, found `=`
            status is Done          | 11 | expected `empty` after `is`, found `Done`
            status is not x         | 15 | expected `empty` after `is not`
            status in Done          | 11 | expected `(` after `in`, found `Done`

            # Strings and stray characters.
            status = "Done          | 10 | unterminated string; close it with `"`
            status = "Done\         | 10 | unterminated string
            status = "a\nb"         | 12 | unknown escape `\n`
            status = 'Done'         | 10 | unexpected character `'`; quote values with double
            status = Done && x = y  | 15 | unexpected character `&`; join conditions with
            summary = "déjà vu" x   | 21 | unexpected `x`

            # Missing values and fields.
            status =                | 9  | expected a value after `=`, found the end of the query
            status = and type = Bug | 10 | found `and`; quote it ("and") to match the word itself
            status in ()            | 12 | expected a value after `(`, found `)`
            status in (Done,)       | 17 | expected a value after `,`, found `)`
            status = Done and       | 18 | expected a field name, found the end of the query
            or status = Done        | 1  | expected a field name, found `or`
            fields. = x             | 1  | expected a field name after `fields.`

            # Parentheses.
            (status = Done          | 15 | expected `)` to close the `(` at column 1, found the end
            (status = Done foo      | 16 | expected `)` to close the `(` at column 1, found `foo`
            status = Done)          | 14 | unmatched `)`; no `(` opens it
            status in (Done, Closed | 24 | expected `,` or `)` in the list opened at column 11
            ()                      | 2  | expected a field name, found `)`

            # Trailing input.
            status = Done foo       | 15 | unexpected `foo` after a complete condition; join
            status = Done not x = y | 15 | unexpected `not` after a complete condition
            status = "In" Progress  | 15 | unexpected `Progress` after a complete condition

            # Times, and ordering on other fields.
            updated > yesterday     | 11 | `yesterday` is not a time; write a timestamp like
            updated > 2026-11-01T10 | 11 | `2026-11-01T10` is not a time
            updated > 2026-13-01    | 11 | `2026-13-01` is not a time
            updated ~ 2026          | 9  | `~` does not apply to `updated`; compare it with <
            updated not in (x)      | 13 | `in` does not apply to `updated`
            updated before x        | 9  | found `before`; use <, <=, >, >=, =, != or is empty
            status < Done           | 8  | `<` only compares `updated`; use =, !=, ~, !~, in
            rank >= "0|a"           | 6  | `>=` only compares `updated`
        "#;
        for row in rows(table) {
            let [query, column, part] = row[..] else {
                panic!("bad row {row:?}")
            };
            let error = Query::parse(query).expect_err(query);
            assert_eq!(error.column.to_string(), column, "`{query}`: {error}");
            assert!(error.message.contains(part), "`{query}`: {error}");
        }
    }
}
