//! Reading an envsubst template into text and expansions. The whole template is read even after
//! an error, so that every malformed expression is reported at once, each at its own place.

use std::collections::BTreeSet;

use crate::text::shell_name;

/// Which `$` forms a template's expansions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every `${...}` form, and `$$` for a literal `$`; with `bare`, `$NAME` too.
    All { bare: bool },
    /// Only these names, as `$NAME` or in any `${NAME...}` form. Every other `$` is text, `$$`
    /// included: the template means what it means to GNU envsubst given the same list.
    Only(BTreeSet<String>),
}

#[derive(Debug)]
pub enum Piece<'a> {
    Text(&'a str),
    Expansion(Expansion<'a>),
}

#[derive(Debug)]
pub struct Expansion<'a> {
    /// Byte offset of the `$`, for messages.
    pub offset: usize,
    pub name: &'a str,
    pub op: Op,
    /// With `:` (`:-`, `:=`, `:?`, `:+`), an empty value counts as unset.
    pub colon: bool,
    pub word: Vec<Piece<'a>>,
    /// The word as written, for the `?` message: it is shown, never expanded, so that an
    /// error can only ever print the template's own text.
    pub word_source: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `${VAR}`, or `$VAR` where bare names are expanded.
    Plain,
    /// `-`: the word when unset.
    Default,
    /// `=`: the word when unset, and VAR is set to it for the rest of the template.
    Assign,
    /// `?`: an error when unset.
    Required,
    /// `+`: the word when set.
    Alternative,
}

/// Something found at a byte offset: a syntax error, or a warning.
pub type Finding = (usize, String);

#[derive(Debug)]
pub struct Parsed<'a> {
    pub pieces: Vec<Piece<'a>>,
    /// Every malformed expression, in the order they appear.
    pub errors: Vec<Finding>,
    /// Valid, but probably not what was meant.
    pub warnings: Vec<Finding>,
}

pub const SUPPORTED: &str = "${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:=default}, \
                             ${VAR=default}, ${VAR:?message}, ${VAR?message}, \
                             ${VAR:+alternative}, ${VAR+alternative}";

const UNTERMINATED: &str = "unterminated ${: no closing }";

pub fn parse<'a>(source: &'a str, selection: &Selection) -> Parsed<'a> {
    let mut parser = Parser {
        source,
        pos: 0,
        selection,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let (pieces, _) = parser.pieces(false);
    let Parser {
        mut errors,
        warnings,
        ..
    } = parser;
    // An error inside a default is found before the unterminated `${` around it.
    errors.sort_by_key(|(offset, _)| *offset);
    Parsed {
        pieces,
        errors,
        warnings,
    }
}

/// What a `$` starts.
enum Dollar<'a> {
    /// Text: a `$` that starts no expansion here.
    Text,
    /// `$$` where it means one literal `$`.
    Escape,
    /// `${` of a name that `--only` does not list: text, but its `}` is its own, not the end
    /// of an enclosing default.
    Foreign,
    Expansion(Expansion<'a>),
    /// A syntax error, recorded; the parser has moved past it.
    Malformed,
}

struct Parser<'a, 's> {
    source: &'a str,
    pos: usize,
    selection: &'s Selection,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl<'a> Parser<'a, '_> {
    /// Reads text up to the end or, inside a word (`in_word`), up to the `}` that closes it,
    /// which is consumed. Returns the pieces and whether that `}` was found.
    fn pieces(&mut self, in_word: bool) -> (Vec<Piece<'a>>, bool) {
        let bytes = self.source.as_bytes();
        let mut pieces = Vec::new();
        let mut start = self.pos;
        // Open `${` of names that are not expanded: the next `}`s close them, not the word.
        let mut foreign_open = 0usize;
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b'$' => {
                    let at = self.pos;
                    match self.dollar() {
                        Dollar::Text => self.pos = at + 1,
                        Dollar::Foreign => {
                            self.pos = at + 2;
                            foreign_open += 1;
                        }
                        Dollar::Escape => {
                            // Keep the first `$` as text, drop the second.
                            pieces.push(Piece::Text(&self.source[start..at + 1]));
                            self.pos = at + 2;
                            start = self.pos;
                        }
                        Dollar::Expansion(expansion) => {
                            pieces.push(Piece::Text(&self.source[start..at]));
                            pieces.push(Piece::Expansion(expansion));
                            start = self.pos;
                        }
                        Dollar::Malformed => {
                            pieces.push(Piece::Text(&self.source[start..at]));
                            start = self.pos;
                        }
                    }
                }
                b'}' if in_word && foreign_open > 0 => {
                    foreign_open -= 1;
                    self.pos += 1;
                }
                b'}' if in_word => {
                    pieces.push(Piece::Text(&self.source[start..self.pos]));
                    self.pos += 1;
                    return (pieces, true);
                }
                _ => self.pos += 1,
            }
        }
        pieces.push(Piece::Text(&self.source[start..]));
        (pieces, !in_word)
    }

    /// Decides what the `$` at `pos` starts; moves `pos` past an expansion or a malformed one.
    fn dollar(&mut self) -> Dollar<'a> {
        let bytes = self.source.as_bytes();
        let at = self.pos;
        match (self.selection, bytes.get(at + 1)) {
            (Selection::All { .. }, Some(b'$')) => Dollar::Escape,
            (_, Some(b'{')) => self.braced(),
            (selection, Some(first)) if first.is_ascii_alphabetic() || *first == b'_' => {
                let name = name_at(self.source, at + 1);
                let expanded = match selection {
                    Selection::All { bare } => *bare,
                    Selection::Only(names) => names.contains(name),
                };
                if !expanded {
                    return Dollar::Text;
                }
                self.pos = at + 1 + name.len();
                Dollar::Expansion(Expansion {
                    offset: at,
                    name,
                    op: Op::Plain,
                    colon: false,
                    word: Vec::new(),
                    word_source: "",
                })
            }
            _ => Dollar::Text,
        }
    }

    /// Reads `${...}` with `pos` at the `$`.
    fn braced(&mut self) -> Dollar<'a> {
        let bytes = self.source.as_bytes();
        let offset = self.pos;
        let name_start = offset + 2;
        let name = name_at(self.source, name_start);
        if let Selection::Only(names) = self.selection {
            if !names.contains(name) {
                return Dollar::Foreign;
            }
        }
        let after = name_start + name.len();
        let (op, colon, op_len) = match (bytes.get(after), bytes.get(after + 1)) {
            (Some(b'}'), _) => (Op::Plain, false, 0),
            (Some(b':'), Some(b'-')) => (Op::Default, true, 2),
            (Some(b':'), Some(b'=')) => (Op::Assign, true, 2),
            (Some(b':'), Some(b'?')) => (Op::Required, true, 2),
            (Some(b':'), Some(b'+')) => (Op::Alternative, true, 2),
            (Some(b'-'), _) => (Op::Default, false, 1),
            (Some(b'='), _) => (Op::Assign, false, 1),
            (Some(b'?'), _) => (Op::Required, false, 1),
            (Some(b'+'), _) => (Op::Alternative, false, 1),
            _ => {
                let (message, resume) = self.bad_expansion(name_start, after);
                self.errors.push((offset, message));
                self.pos = resume;
                return Dollar::Malformed;
            }
        };
        let name_error = if name.is_empty() {
            Some("empty variable name in ${}".to_string())
        } else if !shell_name::is_valid(name) {
            Some(invalid_name(name))
        } else {
            None
        };
        if op == Op::Plain {
            self.pos = after + 1;
            if let Some(message) = name_error {
                self.errors.push((offset, message));
                return Dollar::Malformed;
            }
            return Dollar::Expansion(Expansion {
                offset,
                name,
                op,
                colon,
                word: Vec::new(),
                word_source: "",
            });
        }
        self.pos = after + op_len;
        let word_start = self.pos;
        // The word is read even after a bad name, so that its own errors are found and the
        // expression ends at its own `}`.
        let (word, closed) = self.pieces(true);
        if let Some(message) = name_error {
            self.errors.push((offset, message));
            return Dollar::Malformed;
        }
        if !closed {
            // Reported at this `${`, which is where the reader must look.
            self.errors.push((offset, UNTERMINATED.to_string()));
            return Dollar::Malformed;
        }
        let word_source = &self.source[word_start..self.pos - 1];
        if unmatched_open_braces(&word) {
            self.warnings.push((
                offset,
                format!(
                    "${{{name}{operator}...}} holds a '{{' but ends at the first '}}', as in a \
                     POSIX shell, so the '}}' after it is text: put such a word in a variable \
                     of its own",
                    operator = &self.source[after..after + op_len],
                ),
            ));
        }
        Dollar::Expansion(Expansion {
            offset,
            name,
            op,
            colon,
            word,
            word_source,
        })
    }

    /// The message for `${` followed by something that is neither a name nor a supported
    /// operator (a name with other characters in it, an unsupported form such as `${VAR#x}`, or
    /// no closing `}` on the line), and where to go on reading: after that `}`, or after the
    /// `${` when there is none.
    fn bad_expansion(&self, name_start: usize, after: usize) -> (String, usize) {
        let line_end = self.source[name_start..]
            .find('\n')
            .map_or(self.source.len(), |end| name_start + end);
        let Some(close) = self.source[name_start..line_end].find('}') else {
            return (UNTERMINATED.to_string(), name_start);
        };
        let resume = name_start + close + 1;
        let inside = &self.source[name_start..name_start + close];
        let next = self.source[after..].chars().next().unwrap_or(' ');
        let named = after > name_start && shell_name::is_valid(&self.source[name_start..after]);
        // `${VAR#x}`, `${VAR:1}`, `${VAR[0]}`, `${#VAR}`, `${!VAR}`: shell forms, not typos.
        if (named && "#%/:^,@[".contains(next)) || (after == name_start && "#!".contains(next)) {
            return (
                format!("unsupported expansion ${{{inside}}}: supported are {SUPPORTED}"),
                resume,
            );
        }
        (invalid_name(inside), resume)
    }
}

/// The longest run of name characters (letters, digits, `_`) at `start`.
fn name_at(source: &str, start: usize) -> &str {
    let len = source.as_bytes()[start..]
        .iter()
        .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
        .count();
    &source[start..start + len]
}

/// Whether a word's text holds more `{` than `}`: in `${A:-{"k":1}}` the word is `{"k":1` and
/// the last `}` is text after the expansion, as a POSIX shell reads it (docker compose matches
/// the braces instead). Nested expansions took their own braces and are not text.
fn unmatched_open_braces(word: &[Piece<'_>]) -> bool {
    let (open, close) = word
        .iter()
        .fold((0, 0), |(open, close), piece| match piece {
            Piece::Text(text) => (
                open + text.matches('{').count(),
                close + text.matches('}').count(),
            ),
            Piece::Expansion(_) => (open, close),
        });
    open > close
}

fn invalid_name(name: &str) -> String {
    format!(
        "invalid variable name '{name}' in ${{...}}: a name is letters, digits and _, \
         not starting with a digit"
    )
}
