//! `${VAR}` / `${VAR:-default}` substitution in the raw text of a config
//! file, and the map from positions in the substituted text back to the
//! file as written, so every message points at what the operator sees.
//!
//! Substitution runs before TOML parsing so it works for any value, but it
//! knows just enough TOML to stay out of comments (a comment may mention
//! `${VAR}`) and to refuse single-quoted literal strings, where the escaping
//! below would come out wrong. A value is escaped for a double-quoted basic
//! string and never contains a line break, so line numbers stay right.

use super::error::Problem;

/// A substitution: `out_start..out_end` of the output replaced
/// `in_start..in_end` of the input.
#[derive(Debug, Clone, Copy)]
struct Splice {
    out_start: usize,
    out_end: usize,
    in_start: usize,
    in_end: usize,
}

/// The text of a file with its substitutions done, able to turn a byte
/// offset of the substituted text into a line and column of the original.
#[derive(Debug)]
pub(super) struct Source<'a> {
    original: &'a str,
    line_starts: Vec<usize>,
    splices: Vec<Splice>,
    /// The substituted text, what the TOML parser sees.
    pub text: String,
}

impl Source<'_> {
    /// Line and column (both 1-based) in the original text of `offset` in
    /// the substituted text. An offset inside a substituted value points at
    /// its `${`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        self.original_position(self.original_offset(offset))
    }

    /// A problem at `offset` of the substituted text.
    pub fn problem(&self, offset: usize, message: impl Into<String>) -> Problem {
        let (line, column) = self.position(offset);
        Problem::new(line, column, message)
    }

    fn original_offset(&self, offset: usize) -> usize {
        let mut original = offset;
        for splice in &self.splices {
            if offset < splice.out_start {
                break;
            }
            if offset < splice.out_end {
                return splice.in_start;
            }
            original = offset - splice.out_end + splice.in_end;
        }
        original
    }

    fn original_position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.original.len());
        while !self.original.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let column = self.original[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// Where the scanner is, as far as TOML lexing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Bare,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

/// Substitutes `${VAR}` and `${VAR:-default}` (the default also applies
/// when `VAR` is set but empty, as in the shell) and turns `$${` into a
/// literal `${`. Returns every unresolvable reference as a problem.
pub(super) fn interpolate<'a>(
    original: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Source<'a>, Vec<Problem>> {
    let mut source = Source {
        original,
        line_starts: std::iter::once(0)
            .chain(original.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        splices: Vec::new(),
        text: String::with_capacity(original.len()),
    };
    let mut problems = Vec::new();
    let bytes = original.as_bytes();
    let at = |i: usize, s: &str| bytes[i..].starts_with(s.as_bytes());
    let mut state = State::Bare;
    // Everything before `copied` is in `source.text` already.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'\n' {
            if matches!(state, State::Comment | State::Basic | State::Literal) {
                state = State::Bare;
            }
            i += 1;
            continue;
        }
        if state == State::Comment {
            i += 1;
            continue;
        }
        if at(i, "$${") {
            source.splice(copied, i, i + 3, "${");
            i += 3;
            copied = i;
            continue;
        }
        if at(i, "${") {
            if matches!(state, State::Literal | State::MultiLiteral) {
                problems.push(source.problem_at_original(
                    i,
                    "`${` in a single-quoted string is not substituted: use a double-quoted \
                     string, or `$${` for a literal `${`",
                ));
                i += 2;
                continue;
            }
            let line_end = original[i..].find('\n').map_or(original.len(), |n| i + n);
            let Some(close) = original[i..line_end].find('}').map(|n| i + n) else {
                problems.push(source.problem_at_original(
                    i,
                    "unterminated `${`: no `}` on this line (write `$${` for a literal `${`)",
                ));
                i += 2;
                continue;
            };
            match resolve(&original[i + 2..close], env) {
                Ok(value) => {
                    source.splice(copied, i, close + 1, &escape_basic(&value));
                    copied = close + 1;
                }
                Err(message) => problems.push(source.problem_at_original(i, message)),
            }
            i = close + 1;
            continue;
        }
        let (next, advance) = match (state, byte) {
            (State::Bare, b'#') => (State::Comment, 1),
            (State::Bare, b'"') if at(i, "\"\"\"") => (State::MultiBasic, 3),
            (State::Bare, b'"') => (State::Basic, 1),
            (State::Bare, b'\'') if at(i, "'''") => (State::MultiLiteral, 3),
            (State::Bare, b'\'') => (State::Literal, 1),
            // Skip the escaped character so `\"` does not end the string (but
            // never a line break, which must reset a single-line string).
            (State::Basic | State::MultiBasic, b'\\') if bytes.get(i + 1) != Some(&b'\n') => {
                (state, 2)
            }
            (State::Basic, b'"') | (State::Literal, b'\'') => (State::Bare, 1),
            (State::MultiBasic, b'"') if at(i, "\"\"\"") => (State::Bare, closing_len(bytes, i)),
            (State::MultiLiteral, b'\'') if at(i, "'''") => (State::Bare, closing_len(bytes, i)),
            _ => (state, 1),
        };
        state = next;
        i += advance;
    }
    source.text.push_str(&original[copied..]);
    if problems.is_empty() {
        Ok(source)
    } else {
        Err(problems)
    }
}

/// Length of the closing delimiter of a multi-line string at `i`: TOML lets
/// up to two quotes of the content stand right before the closing three.
fn closing_len(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    bytes[i..]
        .iter()
        .take_while(|&&b| b == quote)
        .count()
        .min(5)
}

impl Source<'_> {
    /// Copies `original[copied..start]`, then writes `value` for
    /// `original[start..end]`.
    fn splice(&mut self, copied: usize, start: usize, end: usize, value: &str) {
        self.text.push_str(&self.original[copied..start]);
        let out_start = self.text.len();
        self.text.push_str(value);
        self.splices.push(Splice {
            out_start,
            out_end: self.text.len(),
            in_start: start,
            in_end: end,
        });
    }

    fn problem_at_original(&self, offset: usize, message: impl Into<String>) -> Problem {
        let (line, column) = self.original_position(offset);
        Problem::new(line, column, message)
    }
}

/// The value of the reference `inner` (what is between `${` and `}`).
fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "`${{{inner}}}`: `{name}` is not a variable name (letters, digits and `_`, \
             not starting with a digit); write `$${{` for a literal `${{`"
        ));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(format!(
            "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a \
             default)"
        )),
    }
}

/// `value` as the content of a TOML basic string: backslashes, quotes and
/// control characters escaped, so it can neither end the string nor break
/// the line.
fn escape_basic(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            "QUOTED" => Some(r#"a "b" \c"#.into()),
            "MULTI" => Some("one\ntwo".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<Problem>> {
        interpolate(text, &env).map(|s| s.text)
    }

    #[test]
    fn substitutes_set_default_and_empty() {
        assert_eq!(run("a = \"${HOST}\"\n").unwrap(), "a = \"kafka:9092\"\n");
        assert_eq!(run("a = \"${NOPE:-x:y}\"").unwrap(), "a = \"x:y\"");
        assert_eq!(run("a = \"${HOST:-x}\"").unwrap(), "a = \"kafka:9092\"");
        assert_eq!(run("a = \"${EMPTY:-d}\"").unwrap(), "a = \"d\"");
        assert_eq!(run("a = \"${EMPTY}\"").unwrap(), "a = \"\"");
        assert_eq!(run("a = ${NOPE:-42}").unwrap(), "a = 42");
    }

    #[test]
    fn escapes_values_for_basic_strings() {
        assert_eq!(run("a = \"${QUOTED}\"").unwrap(), r#"a = "a \"b\" \\c""#);
        assert_eq!(run("a = \"${MULTI}\"").unwrap(), r#"a = "one\ntwo""#);
        let parsed: toml::Table = toml::from_str(&run("a = \"${QUOTED}\"").unwrap()).unwrap();
        assert_eq!(parsed["a"].as_str(), Some(r#"a "b" \c"#));
    }

    #[test]
    fn dollar_dollar_is_a_literal() {
        assert_eq!(run("a = \"$${HOST}\"").unwrap(), "a = \"${HOST}\"");
        assert_eq!(run("a = 'x$${y}'").unwrap(), "a = 'x${y}'");
        assert_eq!(run("a = \"$5 $HOST\"").unwrap(), "a = \"$5 $HOST\"");
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "# set ${UNSET} to change\na = \"x\" # or ${ALSO_UNSET}\nb = \"#${HOST}\"\n";
        assert_eq!(
            run(text).unwrap(),
            "# set ${UNSET} to change\na = \"x\" # or ${ALSO_UNSET}\nb = \"#kafka:9092\"\n"
        );
    }

    #[test]
    fn strings_are_tracked_across_escapes_and_lines() {
        // `\"` does not end the string, so `#` is not a comment.
        assert_eq!(
            run(r#"a = "\" # ${HOST}""#).unwrap(),
            r#"a = "\" # kafka:9092""#
        );
        // A `#` inside a multi-line string is content, on any line.
        let text = "a = \"\"\"\n# ${HOST}\n\"\"\"\n# ${UNSET}\n";
        assert_eq!(
            run(text).unwrap(),
            "a = \"\"\"\n# kafka:9092\n\"\"\"\n# ${UNSET}\n"
        );
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let text = "a = \"${UNSET}\"\nb = \"x ${ÜBER}\"\nc = '${HOST}'\nd = \"${HOST\"\n";
        let problems = run(text).unwrap_err();
        let at: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(1, 6), (2, 8), (3, 6), (4, 6)]);
        assert!(
            problems[0].message.contains("`UNSET` is not set"),
            "{problems:?}"
        );
        assert!(
            problems[1].message.contains("not a variable name"),
            "{problems:?}"
        );
        assert!(
            problems[2].message.contains("single-quoted"),
            "{problems:?}"
        );
        assert!(problems[3].message.contains("unterminated"), "{problems:?}");
    }

    #[test]
    fn maps_positions_back_to_the_original() {
        let text = "a = \"${HOST}\" x\nb = 1";
        let source = interpolate(text, &env).unwrap();
        // `x` is at column 15 as written, column 19 after substitution.
        let x = source.text.find('x').unwrap();
        assert_eq!(source.position(x), (1, 15));
        // Inside the substituted value: the `${`.
        assert_eq!(source.position(7), (1, 6));
        let b = source.text.find('b').unwrap();
        assert_eq!(source.position(b), (2, 1));
        assert_eq!(source.position(source.text.len()), (2, 6));
    }
}
