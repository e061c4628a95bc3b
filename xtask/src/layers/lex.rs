//! Just enough of Rust's lexer to never mistake a comment, a string or a
//! char literal for code: identifiers, `::`, string literals (for
//! `#[path = "…"]`) and single punctuation characters, each with its line.

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// An identifier or keyword (`r#type` as `type`).
    Ident(String),
    /// A string literal's contents, escapes left as written.
    Str(String),
    /// `::`
    PathSep,
    /// Any other single character that is not whitespace.
    Punct(char),
}

/// A token and the line it starts on (1-based).
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

/// Splits `src` into identifiers, string literals and punctuation; drops
/// comments, numbers, char literals and lifetimes.
pub(super) fn tokenize(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        out: Vec::new(),
    };
    while lexer.i < lexer.chars.len() {
        lexer.next_token();
    }
    lexer.out
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer {
    fn at(&self, i: usize) -> char {
        self.chars.get(i).copied().unwrap_or('\0')
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.out.push(Token { tok, line });
    }

    /// Steps over one character, counting lines.
    fn bump(&mut self) {
        self.line += usize::from(self.at(self.i) == '\n');
        self.i += 1;
    }

    fn next_token(&mut self) {
        let (c, next) = (self.at(self.i), self.at(self.i + 1));
        let line = self.line;
        if c.is_whitespace() {
            self.bump();
        } else if c == '/' && next == '/' {
            while self.i < self.chars.len() && self.at(self.i) != '\n' {
                self.i += 1;
            }
        } else if c == '/' && next == '*' {
            self.block_comment();
        } else if let Some((open, hashes)) = self.raw_string_start() {
            self.i += open;
            self.raw_string(hashes, line);
        } else if c == '"' || ((c == 'b' || c == 'c') && next == '"') {
            self.i += if c == '"' { 1 } else { 2 };
            self.string(line);
        } else if c == '\'' || (c == 'b' && next == '\'') {
            self.char_or_lifetime(if c == 'b' { self.i + 1 } else { self.i });
        } else if c == 'r' && next == '#' && is_ident_start(self.at(self.i + 2)) {
            // A raw identifier: r#type.
            self.i += 2;
            self.ident(line);
        } else if is_ident_start(c) {
            self.ident(line);
        } else if c.is_ascii_digit() {
            while is_ident_char(self.at(self.i)) {
                self.i += 1;
            }
        } else if c == ':' && next == ':' {
            self.push(Tok::PathSep, line);
            self.i += 2;
        } else {
            self.push(Tok::Punct(c), line);
            self.i += 1;
        }
    }

    fn ident(&mut self, line: usize) {
        let begin = self.i;
        while is_ident_char(self.at(self.i)) {
            self.i += 1;
        }
        let name = self.chars[begin..self.i].iter().collect();
        self.push(Tok::Ident(name), line);
    }

    /// `/* … */`, nested ones included.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while self.i < self.chars.len() {
            let (c, next) = (self.at(self.i), self.at(self.i + 1));
            if c == '/' && next == '*' {
                depth += 1;
                self.i += 2;
            } else if c == '*' && next == '/' {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// If a raw string starts here (`r"`, `r#"`, `br##"`, `cr"`): the
    /// length of its opening and its number of `#`.
    fn raw_string_start(&self) -> Option<(usize, usize)> {
        if self.i > 0 && is_ident_char(self.at(self.i - 1)) {
            return None;
        }
        let mut j = self.i;
        if matches!(self.at(j), 'b' | 'c') {
            j += 1;
        }
        if self.at(j) != 'r' {
            return None;
        }
        j += 1;
        let hashes = self.chars[j..].iter().take_while(|c| **c == '#').count();
        j += hashes;
        (self.at(j) == '"').then_some((j + 1 - self.i, hashes))
    }

    /// The rest of a raw string after its opening.
    fn raw_string(&mut self, hashes: usize, line: usize) {
        let begin = self.i;
        while self.i < self.chars.len()
            && !(self.at(self.i) == '"' && (1..=hashes).all(|k| self.at(self.i + k) == '#'))
        {
            self.bump();
        }
        let text = self.chars[begin..self.i.min(self.chars.len())]
            .iter()
            .collect();
        self.i += 1 + hashes;
        self.push(Tok::Str(text), line);
    }

    /// The rest of a `"…"` string after its opening quote.
    fn string(&mut self, line: usize) {
        let mut text = String::new();
        while self.i < self.chars.len() && self.at(self.i) != '"' {
            if self.at(self.i) == '\\' {
                text.push('\\');
                self.i += 1;
            }
            if self.i < self.chars.len() {
                text.push(self.at(self.i));
                self.bump();
            }
        }
        self.i += 1;
        self.push(Tok::Str(text), line);
    }

    /// At the quote `q`: a char literal ('x', '\n', b'x') or a lifetime
    /// ('a), neither of which is kept.
    fn char_or_lifetime(&mut self, q: usize) {
        if self.at(q + 1) == '\\' {
            self.i = q + 3;
            while self.i < self.chars.len() && self.at(self.i) != '\'' {
                self.i += 1;
            }
            self.i += 1;
        } else if self.at(q + 2) == '\'' {
            self.i = q + 3;
        } else {
            self.i = q + 1;
            while is_ident_char(self.at(self.i)) {
                self.i += 1;
            }
        }
    }
}
