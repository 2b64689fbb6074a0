//! Evaluating a parsed envsubst template, left to right as a shell does, so that a variable
//! given a value by `${VAR:=default}` has it in every later expansion of the same template.

use std::collections::HashMap;

use super::parse::{Op, Piece};

/// An expansion that cannot be evaluated: (offset, name, the `?` message as written).
pub type Undefined = (usize, String, Option<String>);

/// `'t` is the template's lifetime.
pub struct Evaluator<'t, L> {
    lookup: L,
    /// An unset variable in `${VAR}` or `$VAR` expands to nothing instead of failing.
    allow_unset: bool,
    /// Values set by `=` and `:=` in this template; they hide the looked-up ones.
    assigned: HashMap<&'t str, String>,
    /// Every expansion that failed, in order; evaluation goes on to find them all.
    pub undefined: Vec<Undefined>,
}

impl<'t, 'v, L: Fn(&str) -> Option<&'v str>> Evaluator<'t, L> {
    pub fn new(lookup: L, allow_unset: bool) -> Self {
        Evaluator {
            lookup,
            allow_unset,
            assigned: HashMap::new(),
            undefined: Vec::new(),
        }
    }

    fn get<'s>(&'s self, name: &str) -> Option<&'s str>
    where
        'v: 's,
    {
        match self.assigned.get(name) {
            Some(value) => Some(value),
            None => (self.lookup)(name),
        }
    }

    /// Appends the value of `pieces` to `out`.
    pub fn pieces(&mut self, pieces: &[Piece<'t>], out: &mut String) {
        for piece in pieces {
            let expansion = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Expansion(expansion) => expansion,
            };
            let value = self.get(expansion.name);
            // With a colon, set-but-empty is treated as unset.
            let usable = value.is_some_and(|value| !(expansion.colon && value.is_empty()));
            match (expansion.op, usable) {
                (Op::Plain, _) => match value {
                    Some(value) => out.push_str(value),
                    None if self.allow_unset => {}
                    None => self
                        .undefined
                        .push((expansion.offset, expansion.name.into(), None)),
                },
                (Op::Default | Op::Assign | Op::Required, true) => {
                    out.push_str(value.unwrap_or_default())
                }
                (Op::Default, false) => self.pieces(&expansion.word, out),
                (Op::Assign, false) => {
                    let mut word = String::new();
                    self.pieces(&expansion.word, &mut word);
                    out.push_str(&word);
                    self.assigned.insert(expansion.name, word);
                }
                // Not even --allow-unset lets these through: the template asks for the value.
                (Op::Required, false) => {
                    let message = expansion.word_source.trim();
                    self.undefined.push((
                        expansion.offset,
                        expansion.name.into(),
                        (!message.is_empty()).then(|| message.to_string()),
                    ));
                }
                (Op::Alternative, true) => self.pieces(&expansion.word, out),
                (Op::Alternative, false) => {}
            }
        }
    }
}
