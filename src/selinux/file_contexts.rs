//! A pure-Rust `file_contexts` matcher that follows libselinux's rules (the `selabel_file(5)`
//! backend as shipped in libselinux 3.x before the 3.8 rewrite, e.g. Debian 12's 3.4), so that
//! snapguard can say which label the policy expects for a path (`matchpathcon`, `restorecon`)
//! without linking libselinux.
//!
//! What is mirrored, and from where (SelinuxProject/selinux, `libselinux/src/`):
//!
//! * **Line format** (`label_support.c` `read_spec_entries`, `label_file.h` `process_line`):
//!   `regex [file_type] context`, fields split on C `isspace`; a line whose first non-blank
//!   character is `#` is a comment, blank lines are skipped; a `#` later in a line is *not* a
//!   comment. Only the first three fields are read (more are ignored). One field is an error
//!   ("missing fields"); two fields mean "no file type"; a non-ASCII byte inside a field is an
//!   error ("Non-ASCII characters found").
//! * **File type** (`label_file.h` `string_to_mode`): `--` regular, `-d`, `-c`, `-b`, `-p`,
//!   `-s`, `-l`; anything else is an error. A lookup with an unknown type (mode 0) matches specs
//!   of every type.
//! * **Load order** (`label_file.c` `init`): `file_contexts`, then `file_contexts.homedirs`,
//!   then `file_contexts.local`.
//! * **Precedence** (`label_file.h` `spec_hasMetaChars` and `sort_specs`, `label_file.c`
//!   `lookup_common`): specs without regex meta characters (`.^$?*+|[({`, a backslash escapes
//!   the next character) are "exact" and are moved behind all regex specs, each group keeping
//!   load order; the lookup scans from the back, so the last matching exact spec wins, else the
//!   last matching regex spec wins (load order, not specificity).
//! * **Stems** (`label_file.h` `get_stem_from_spec`, `compile_regex`; `label_file.c`
//!   `find_stem_from_file`): a spec whose first path component has no meta characters has a
//!   *stem* (e.g. `/usr` for `/usr/lib(/.*)?`). Such a spec is only tried when the path's first
//!   component is byte-for-byte the same stem, and its regex (the part after the stem) is
//!   matched against the path after the stem. This is a literal comparison, so a backslash
//!   escape inside the first component (`/a\-b/x`) never matches: libselinux behaves the same.
//! * **Regex dialect** (`label_file.h` `compile_regex`, `regex.c`): PCRE2 with `PCRE2_DOTALL`,
//!   no UTF mode, the pattern wrapped as `^pattern$` (no group: a top-level `|` anchors only
//!   its outer branches) and searched unanchored. PCRE's `$` also matches before a final
//!   newline; that is reproduced. Here the `regex` crate (`regex::bytes`, flags `(?s-u)`) is
//!   used, with `\<`/`\>` read as PCRE does (literal `<`/`>`). All 5,621 specs of Debian
//!   12's policy (file_contexts + homedirs) compile with it unchanged; PCRE-only syntax
//!   (`\Q…\E`, `\h`, `\K`, possessive quantifiers, lookaround, back-references) does not and
//!   is reported as [`FcError::InvalidRegex`].
//! * **Lazy compilation** (`label_file.h` `compile_regex`): a regex is compiled the first time
//!   a lookup reaches it. A lookup first compares the spec's literal prefix (the text before
//!   its first meta character, like libselinux's `prefix_len`), so most specs are never
//!   compiled or run.
//! * **`<<none>>`** (`label_file.c` `lookup_common`): if the winning spec's context is
//!   `<<none>>`, the lookup fails with `ENOENT` ("do not relabel"); it does not fall through to
//!   an earlier spec. [`FileContexts::lookup`] returns that spec, with `context: None`.
//! * **Path clean-up and substitution** (`label_file.c` `lookup_common`, `selabel_sub_key`,
//!   `selabel_sub`, `selabel_subs_init`): runs of `/` are collapsed, then the `.subs` aliases
//!   (local, from `semanage fcontext -a -e`) are applied, then the `.subs_dist` aliases to the
//!   result. Within one file the *last* line is tried first, at most one alias applies, and an
//!   alias `SRC DST` applies when the path is `SRC` or starts with `SRC/`.
//!
//! Differences, all on the strict side: a pattern with a syntax error fails
//! [`FileContexts::from_texts`] with its line (libselinux's `selabel_open` accepts it unless
//! validating, as `setfiles` does, and then fails every lookup that reaches it); a pattern
//! that parses but cannot be compiled (size limit) fails the lookups that reach it
//! ([`FileContexts::try_lookup`]) unless its literal prefix already rules it out. Not
//! mirrored: context validation and duplicate detection (only when validating), mcstrans
//! translation, PCRE2's own compiled-size limit, and the `fgets` 1023-byte line limit of the
//! `.subs` readers.
//!
//! `matchpathcon(8)` itself also strips one trailing `/` from its argument and, without `-m`,
//! passes the `lstat` mode of an existing path; [`FileContexts::lookup`] is `selabel_lookup`,
//! so callers do that themselves. (Debian 12's `matchpathcon` does not resolve symlinks.)

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use regex::bytes::{Regex, RegexBuilder};

/// `S_IFMT` and the file-type bits of `st_mode` (`<sys/stat.h>`).
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// Regex meta characters as `spec_hasMetaChars` and `get_stem_from_spec` see them.
const META: &[u8] = b".^$?*+|[({";

/// The optional second field of a `file_contexts` line, and the file type of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Unknown type (lookup mode 0): matches specs of every type. Never a spec's own field.
    Any,
    /// `--` (`S_IFREG`).
    Regular,
    /// `-d` (`S_IFDIR`).
    Directory,
    /// `-c` (`S_IFCHR`).
    CharDevice,
    /// `-b` (`S_IFBLK`).
    BlockDevice,
    /// `-p` (`S_IFIFO`).
    Fifo,
    /// `-s` (`S_IFSOCK`).
    Socket,
    /// `-l` (`S_IFLNK`).
    Symlink,
}

impl FileType {
    /// The type encoded in `st_mode` (`st_mode & S_IFMT`); [`FileType::Any`] when unknown.
    pub fn from_mode(st_mode: u32) -> FileType {
        match st_mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFCHR => FileType::CharDevice,
            S_IFBLK => FileType::BlockDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            S_IFLNK => FileType::Symlink,
            _ => FileType::Any,
        }
    }

    /// Parses the file-type field (`--`, `-d`, …) like libselinux's `string_to_mode`.
    pub fn from_field(field: &str) -> Option<FileType> {
        match field {
            "--" => Some(FileType::Regular),
            "-d" => Some(FileType::Directory),
            "-c" => Some(FileType::CharDevice),
            "-b" => Some(FileType::BlockDevice),
            "-p" => Some(FileType::Fifo),
            "-s" => Some(FileType::Socket),
            "-l" => Some(FileType::Symlink),
            _ => None,
        }
    }

    /// The `file_contexts` field for this type (`""` for [`FileType::Any`]).
    pub fn field(self) -> &'static str {
        match self {
            FileType::Any => "",
            FileType::Regular => "--",
            FileType::Directory => "-d",
            FileType::CharDevice => "-c",
            FileType::BlockDevice => "-b",
            FileType::Fifo => "-p",
            FileType::Socket => "-s",
            FileType::Symlink => "-l",
        }
    }

    /// The argument `matchpathcon -m` takes for this type (`None` for [`FileType::Any`]).
    pub fn matchpathcon_arg(self) -> Option<&'static str> {
        match self {
            FileType::Any => None,
            FileType::Regular => Some("file"),
            FileType::Directory => Some("dir"),
            FileType::CharDevice => Some("chr_file"),
            FileType::BlockDevice => Some("blk_file"),
            FileType::Fifo => Some("pipe"),
            FileType::Socket => Some("sock_file"),
            FileType::Symlink => Some("lnk_file"),
        }
    }

    /// The `S_IFMT` bits (0 for [`FileType::Any`]).
    fn mode_bits(self) -> u32 {
        match self {
            FileType::Any => 0,
            FileType::Regular => S_IFREG,
            FileType::Directory => S_IFDIR,
            FileType::CharDevice => S_IFCHR,
            FileType::BlockDevice => S_IFBLK,
            FileType::Fifo => S_IFIFO,
            FileType::Socket => S_IFSOCK,
            FileType::Symlink => S_IFLNK,
        }
    }
}

/// Which file a spec came from (libselinux loads them in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `file_contexts`.
    Base,
    /// `file_contexts.homedirs` (generated by genhomedircon / libsemanage).
    Homedirs,
    /// `file_contexts.local` (`semanage fcontext -a`).
    Local,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Base => "file_contexts",
            Source::Homedirs => "file_contexts.homedirs",
            Source::Local => "file_contexts.local",
        })
    }
}

/// One `file_contexts` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The path regex as written (unanchored).
    pub pattern: String,
    /// The file-type field; `None` when absent (all file types).
    pub file_type: Option<FileType>,
    /// The context; `None` for `<<none>>` ("do not relabel").
    pub context: Option<String>,
    /// The file the line is in.
    pub source: Source,
    /// 1-based line number in that file.
    pub line: usize,
}

impl Spec {
    /// True when the pattern has no regex meta characters (libselinux `spec_hasMetaChars`):
    /// such "exact" specs beat every regex spec.
    pub fn is_exact(&self) -> bool {
        !has_meta_chars(self.pattern.as_bytes())
    }

    /// The type field of the context (`None` for `<<none>>` or a malformed context).
    pub fn context_type(&self) -> Option<&str> {
        self.context.as_deref().and_then(context_type)
    }
}

/// The type part of a context `user:role:type[:level]` (the level may itself contain `:`).
pub fn context_type(context: &str) -> Option<&str> {
    let mut parts = context.splitn(4, ':');
    let (_user, _role, ty) = (parts.next()?, parts.next()?, parts.next()?);
    (!ty.is_empty()).then_some(ty)
}

/// A `file_contexts` line libselinux would refuse (the whole load fails, as in
/// `selabel_open`), or a pattern this matcher cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FcError {
    /// Only one field on the line (`process_line`: "is missing fields").
    #[error("{file}: line {line} is missing fields")]
    MissingFields {
        /// The file.
        file: Source,
        /// 1-based line number.
        line: usize,
    },
    /// The middle field is not one of `-- -d -c -b -p -s -l` (`string_to_mode`).
    #[error("{file}: line {line} has invalid file type '{}'", .field.escape_debug())]
    InvalidFileType {
        /// The file.
        file: Source,
        /// 1-based line number.
        line: usize,
        /// The offending field.
        field: String,
    },
    /// A field holds a non-ASCII byte (`read_spec_entry`: "Non-ASCII characters found").
    #[error("{file}: line {line} error due to: Non-ASCII characters found")]
    NonAscii {
        /// The file.
        file: Source,
        /// 1-based line number.
        line: usize,
    },
    /// The pattern does not compile (libselinux fails every lookup that reaches it).
    #[error("{file}: line {line} has invalid regex '{}': {message}", .pattern.escape_debug())]
    InvalidRegex {
        /// The file.
        file: Source,
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// The compiler's message.
        message: String,
    },
}

/// How a spec is matched against the (post-stem) rest of a path.
#[derive(Debug)]
enum Matcher {
    /// An exact spec with nothing regex-special left: byte comparison (`^lit$`).
    Literal(Vec<u8>),
    /// A regex, compiled on first use (libselinux compiles lazily too).
    Regex(OnceLock<Result<Regex, String>>),
}

/// A spec plus what the lookup needs.
#[derive(Debug)]
struct Entry {
    spec: Spec,
    /// Length of the stem (`get_stem_from_spec`), if any.
    stem_len: Option<usize>,
    /// The `S_IFMT` bits of the file-type field (0 = any).
    mode: u32,
    /// Bytes every match of the post-stem regex starts with: a cheap pre-filter (the same
    /// idea as libselinux's `prefix_len`), so most regexes are never compiled or run.
    prefix: Vec<u8>,
    matcher: Matcher,
}

impl Entry {
    fn new(spec: Spec) -> Entry {
        let bytes = spec.pattern.as_bytes();
        let stem_len = stem_len_of_spec(bytes);
        let rest = &bytes[stem_len.unwrap_or(0)..];
        let literal = !has_meta_chars(bytes) && !rest.iter().any(|b| b"\\)]}".contains(b));
        let matcher = if literal {
            Matcher::Literal(rest.to_vec())
        } else {
            Matcher::Regex(OnceLock::new())
        };
        let mode = spec.file_type.map_or(0, FileType::mode_bits);
        let prefix = literal_prefix(rest);
        Entry {
            spec,
            stem_len,
            mode,
            prefix,
            matcher,
        }
    }

    /// The pattern's syntax error, if any (without compiling it).
    fn check_syntax(&self) -> Result<(), FcError> {
        if let Matcher::Literal(_) = self.matcher {
            return Ok(());
        }
        let rest = &self.spec.pattern[self.stem_len.unwrap_or(0)..];
        check_syntax(rest).map_err(|message| self.regex_error(message))
    }

    fn regex_error(&self, message: String) -> FcError {
        FcError::InvalidRegex {
            file: self.spec.source,
            line: self.spec.line,
            pattern: self.spec.pattern.clone(),
            message,
        }
    }

    /// The compiled regex (compiling it on first use), or the compile error.
    fn regex(&self) -> Result<Option<&Regex>, FcError> {
        let Matcher::Regex(cell) = &self.matcher else {
            return Ok(None);
        };
        let rest = &self.spec.pattern[self.stem_len.unwrap_or(0)..];
        cell.get_or_init(|| compile_anchored(rest))
            .as_ref()
            .map(Some)
            .map_err(|message| self.regex_error(message.clone()))
    }

    /// Does the spec match `subject` (the path, or its rest after the stem)?
    ///
    /// PCRE's `$` (no `DOLLAR_ENDONLY`) also matches just before a final newline, which the
    /// `regex` crate's `$` does not, so a subject ending in `\n` is also tried without it.
    fn matches(&self, subject: &[u8]) -> Result<bool, FcError> {
        if !subject.starts_with(&self.prefix) {
            return Ok(false);
        }
        let stripped = subject.strip_suffix(b"\n");
        match &self.matcher {
            Matcher::Literal(lit) => Ok(subject == lit.as_slice() || stripped == Some(lit)),
            Matcher::Regex(_) => {
                let Some(re) = self.regex()? else {
                    return Ok(false);
                };
                Ok(re.is_match(subject) || stripped.is_some_and(|s| re.is_match(s)))
            }
        }
    }
}

/// The pattern libselinux's `compile_regex` builds, `^rest$`, in the `regex` crate's syntax.
///
/// PCRE reads a backslash before any ASCII punctuation as that literal character, and so does
/// the `regex` crate, except `\<` and `\>` (word boundaries there): those two are unescaped.
fn anchored(rest: &str) -> String {
    let mut out = String::with_capacity(rest.len() + 2);
    out.push('^');
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(n @ ('<' | '>')) => out.push(n),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out.push('$');
    out
}

/// Compiles `^rest$` the way libselinux's `compile_regex` + `regex_prepare_data` do
/// (`PCRE2_DOTALL`, no UTF: byte semantics).
fn compile_anchored(rest: &str) -> Result<Regex, String> {
    RegexBuilder::new(&anchored(rest))
        .dot_matches_new_line(true)
        .unicode(false)
        .build()
        .map_err(|e| e.to_string())
}

/// Parses (without compiling) `^rest$` with the same flags: a cheap syntax check at load.
fn check_syntax(rest: &str) -> Result<(), String> {
    regex_syntax::ParserBuilder::new()
        .dot_matches_new_line(true)
        .unicode(false)
        .utf8(false)
        .build()
        .parse(&anchored(rest))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The literal bytes every match of `^rest` must start with (possibly none): stops at the
/// first meta character, class, group, non-punctuation escape or quantified atom, and is empty
/// when `rest` has a top-level `|` (then `^` binds only the first branch).
fn literal_prefix(rest: &[u8]) -> Vec<u8> {
    if has_top_level_alternation(rest) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let (byte, next) = match rest[i] {
            b'\\' => match rest.get(i + 1) {
                Some(&c) if c.is_ascii_punctuation() => (c, i + 2),
                _ => break,
            },
            c if META.contains(&c) || b")]}".contains(&c) => break,
            c => (c, i + 1),
        };
        if matches!(rest.get(next), Some(b'?' | b'*' | b'+' | b'{')) {
            break;
        }
        out.push(byte);
        i = next;
    }
    out
}

/// Is there a `|` outside every group and class?
fn has_top_level_alternation(p: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'|' if depth == 0 => return true,
            b'[' => {
                // Skip the class: an optional '^', then a leading ']' is literal.
                i += 1;
                if p.get(i) == Some(&b'^') {
                    i += 1;
                }
                if p.get(i) == Some(&b']') {
                    i += 1;
                }
                while i < p.len() && p[i] != b']' {
                    if p[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if p[i..].starts_with(b"[:") {
                        // A POSIX class "[:name:]" may hold no ']' of its own.
                        if let Some(k) = p[i + 2..].windows(2).position(|w| w == b":]") {
                            i += 2 + k + 2;
                            continue;
                        }
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// libselinux `spec_hasMetaChars`: any of `.^$?*+|[({` outside a backslash escape.
fn has_meta_chars(pattern: &[u8]) -> bool {
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => i += 2,
            c if META.contains(&c) => return true,
            _ => i += 1,
        }
    }
    false
}

/// libselinux `get_stem_from_spec`: the text before the second `/` (searched from index 1),
/// provided it holds no meta character.
fn stem_len_of_spec(pattern: &[u8]) -> Option<usize> {
    let end = 1 + pattern.get(1..)?.iter().position(|&b| b == b'/')?;
    (!pattern[..end].iter().any(|b| META.contains(b))).then_some(end)
}

/// libselinux `get_stem_from_file_name`: the text before the second `/` (from index 1).
fn stem_len_of_path(path: &[u8]) -> Option<usize> {
    Some(1 + path.get(1..)?.iter().position(|&b| b == b'/')?)
}

/// C `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// One alias of a `.subs` / `.subs_dist` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    src: Vec<u8>,
    dst: Vec<u8>,
}

/// libselinux `selabel_subs_init`: `SRC DST` per line, `#` comments, later lines first.
fn parse_subs(text: &str) -> Vec<Sub> {
    let mut list = Vec::new();
    for raw in text.split('\n') {
        let line = c_string(raw.as_bytes());
        let mut fields = line.split(|&b| is_c_space(b)).filter(|f| !f.is_empty());
        let Some(src) = fields.next() else { continue };
        if src.starts_with(b"#") {
            continue;
        }
        let Some(dst) = fields.next() else { continue };
        list.push(Sub {
            src: src.to_vec(),
            dst: dst.to_vec(),
        });
    }
    list.reverse();
    list
}

/// libselinux `selabel_sub`: the first alias (in list order) whose `src` is the path or a
/// `/`-bounded prefix of it; `dst` replaces it (a `dst` of `/` swallows the following `/`).
fn apply_sub(subs: &[Sub], path: &[u8]) -> Option<Vec<u8>> {
    subs.iter().find_map(|sub| {
        let tail = path.strip_prefix(sub.src.as_slice())?;
        if !(tail.is_empty() || tail.starts_with(b"/")) {
            return None;
        }
        let tail = if sub.dst == b"/" && !tail.is_empty() {
            &tail[1..]
        } else {
            tail
        };
        let mut out = sub.dst.clone();
        out.extend_from_slice(tail);
        Some(out)
    })
}

/// The bytes before the first NUL (what a C string function sees).
fn c_string(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |n| &bytes[..n])
}

/// libselinux `read_spec_entries` + `process_line` for one line: `Ok(None)` for a comment or
/// a blank line.
fn parse_line(raw: &str, file: Source, line: usize) -> Result<Option<Spec>, FcError> {
    let bytes = c_string(raw.as_bytes());
    let mut fields: Vec<&[u8]> = Vec::with_capacity(3);
    let mut rest = bytes;
    while fields.len() < 3 {
        let start = rest
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(rest.len());
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        if fields.is_empty() && rest[0] == b'#' {
            return Ok(None);
        }
        let end = rest
            .iter()
            .position(|&b| is_c_space(b))
            .unwrap_or(rest.len());
        let field = &rest[..end];
        if !field.is_ascii() {
            return Err(FcError::NonAscii { file, line });
        }
        fields.push(field);
        rest = &rest[end..];
    }
    // Fields are ASCII, hence UTF-8.
    let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
    let (pattern, type_field, context) = match fields.as_slice() {
        [] => return Ok(None),
        [_] => return Err(FcError::MissingFields { file, line }),
        [p, c] => (text(p), None, text(c)),
        [p, t, c, ..] => (text(p), Some(text(t)), text(c)),
    };
    let file_type = match type_field {
        None => None,
        Some(field) => match FileType::from_field(&field) {
            Some(t) => Some(t),
            None => return Err(FcError::InvalidFileType { file, line, field }),
        },
    };
    let context = (context != "<<none>>").then_some(context);
    Ok(Some(Spec {
        pattern,
        file_type,
        context,
        source: file,
        line,
    }))
}

/// A loaded `file_contexts` set (base + homedirs + local, with `.subs_dist` and `.subs`).
#[derive(Debug)]
pub struct FileContexts {
    /// In libselinux's sorted order: regex specs in load order, then exact specs in load order.
    entries: Vec<Entry>,
    /// Indices into `entries` of specs without a stem, ascending.
    unstemmed: Vec<usize>,
    /// Indices into `entries` per stem, ascending.
    by_stem: HashMap<Vec<u8>, Vec<usize>>,
    /// `.subs` aliases, in lookup order.
    subs: Vec<Sub>,
    /// `.subs_dist` aliases, in lookup order.
    subs_dist: Vec<Sub>,
}

impl FileContexts {
    /// Parses the texts of `file_contexts`, `file_contexts.homedirs` and `file_contexts.local`
    /// (`None` = file missing) and of `file_contexts.subs_dist` and `file_contexts.subs`.
    ///
    /// Fails on the first line libselinux's `selabel_open` would refuse (missing fields, bad
    /// file type, non-ASCII field) and on the first pattern with a syntax error. Patterns are
    /// compiled later, when a lookup reaches them, or all at once by
    /// [`FileContexts::validate`].
    pub fn from_texts(
        base: &str,
        homedirs: Option<&str>,
        local: Option<&str>,
        subs_dist: Option<&str>,
        subs: Option<&str>,
    ) -> Result<Self, FcError> {
        let mut regexes = Vec::new();
        let mut exacts = Vec::new();
        let files = [
            (Source::Base, Some(base)),
            (Source::Homedirs, homedirs),
            (Source::Local, local),
        ];
        for (source, text) in files {
            let Some(text) = text else { continue };
            for (n, raw) in text.split('\n').enumerate() {
                let Some(spec) = parse_line(raw, source, n + 1)? else {
                    continue;
                };
                let entry = Entry::new(spec);
                entry.check_syntax()?;
                // label_file.h sort_specs: exact specs go behind the regex specs.
                if entry.spec.is_exact() {
                    exacts.push(entry);
                } else {
                    regexes.push(entry);
                }
            }
        }
        regexes.append(&mut exacts);
        let entries = regexes;
        let mut unstemmed = Vec::new();
        let mut by_stem: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            match e.stem_len {
                Some(n) => by_stem
                    .entry(e.spec.pattern.as_bytes()[..n].to_vec())
                    .or_default()
                    .push(i),
                None => unstemmed.push(i),
            }
        }
        Ok(FileContexts {
            entries,
            unstemmed,
            by_stem,
            subs: subs.map(parse_subs).unwrap_or_default(),
            subs_dist: subs_dist.map(parse_subs).unwrap_or_default(),
        })
    }

    /// Compiles every pattern (what `setfiles`/`sefcontext_compile` do when validating);
    /// the first pattern that does not compile is the error.
    pub fn validate(&self) -> Result<(), FcError> {
        let mut first: Option<FcError> = None;
        for e in &self.entries {
            if let Err(err) = e.regex() {
                let earlier = first
                    .as_ref()
                    .is_some_and(|f| error_pos(f) <= error_pos(&err));
                if !earlier {
                    first = Some(err);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// All specs, in libselinux's sorted order (regex specs, then exact specs; each in load
    /// order). The winner of a lookup is the last matching one.
    pub fn specs(&self) -> impl Iterator<Item = &Spec> {
        self.entries.iter().map(|e| &e.spec)
    }

    /// Number of specs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no spec was loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `matchpathcon`/`selabel_lookup` semantics: clean and substitute `path`, then the
    /// winning spec for `path` and `file_type` ([`FileType::Any`] when unknown). A winner
    /// with `context: None` is `<<none>>` (libselinux: `ENOENT`, "do not relabel").
    ///
    /// `None` when nothing matches, and also when the lookup reaches a pattern that does
    /// not compile (libselinux fails the lookup then); [`FileContexts::try_lookup`] tells the
    /// two apart.
    pub fn lookup(&self, path: &str, file_type: FileType) -> Option<&Spec> {
        self.try_lookup(path, file_type).ok().flatten()
    }

    /// [`FileContexts::lookup`], reporting a pattern that does not compile.
    pub fn try_lookup(&self, path: &str, file_type: FileType) -> Result<Option<&Spec>, FcError> {
        self.try_lookup_bytes(path.as_bytes(), file_type)
    }

    /// [`FileContexts::lookup`] for a path that need not be UTF-8.
    pub fn lookup_bytes(&self, path: &[u8], file_type: FileType) -> Option<&Spec> {
        self.try_lookup_bytes(path, file_type).ok().flatten()
    }

    /// libselinux `lookup_common` (with `partial == false`).
    pub fn try_lookup_bytes(
        &self,
        path: &[u8],
        file_type: FileType,
    ) -> Result<Option<&Spec>, FcError> {
        let Some(key) = self.key(path) else {
            return Ok(None);
        };
        let mode = file_type.mode_bits();
        for i in self.candidates(&key).rev() {
            let e = &self.entries[i];
            if mode != 0 && e.mode != 0 && mode != e.mode {
                continue;
            }
            if e.matches(subject(&key, e.stem_len))? {
                return Ok(Some(&e.spec));
            }
        }
        Ok(None)
    }

    /// The `file_contexts.local` specs that match `path` (any file type), in file order:
    /// "a local fcontext rule exists for this path". Uses the same clean-up, substitution
    /// and stem rules as [`FileContexts::lookup`]; a pattern that does not compile is skipped.
    pub fn local_rules_for(&self, path: &str) -> Vec<&Spec> {
        let Some(key) = self.key(path.as_bytes()) else {
            return Vec::new();
        };
        let mut found: Vec<&Spec> = self
            .candidates(&key)
            .map(|i| &self.entries[i])
            .filter(|e| e.spec.source == Source::Local)
            .filter(|e| e.matches(subject(&key, e.stem_len)).unwrap_or(false))
            .map(|e| &e.spec)
            .collect();
        found.sort_by_key(|s| s.line);
        found
    }

    /// The key `lookup_common` matches: the path up to a NUL, runs of `/` collapsed, then
    /// `selabel_sub_key` (`.subs`, then `.subs_dist` on the result). `None` for an empty path.
    fn key(&self, path: &[u8]) -> Option<Vec<u8>> {
        let path = c_string(path);
        if path.is_empty() {
            return None;
        }
        let mut clean = Vec::with_capacity(path.len());
        for &b in path {
            if !(b == b'/' && clean.last() == Some(&b'/')) {
                clean.push(b);
            }
        }
        let key = match apply_sub(&self.subs, &clean) {
            Some(s) => apply_sub(&self.subs_dist, &s).unwrap_or(s),
            None => apply_sub(&self.subs_dist, &clean).unwrap_or(clean),
        };
        Some(key)
    }

    /// Indices of the specs a key can match (no stem, or the key's stem), ascending.
    fn candidates<'a>(&'a self, key: &[u8]) -> impl DoubleEndedIterator<Item = usize> + 'a {
        let stemmed: &'a [usize] = stem_len_of_path(key)
            .and_then(|n| self.by_stem.get(&key[..n]))
            .map_or(&[], Vec::as_slice);
        Merge {
            a: &self.unstemmed,
            b: stemmed,
        }
    }
}

/// What a spec's regex is matched against: the whole key, or the key after the stem (the
/// stem itself was compared for equality when choosing candidates).
fn subject(key: &[u8], stem_len: Option<usize>) -> &[u8] {
    &key[stem_len.unwrap_or(0)..]
}

/// (file, line) of an error, for picking the first one.
fn error_pos(e: &FcError) -> (Source, usize) {
    match e {
        FcError::MissingFields { file, line }
        | FcError::InvalidFileType { file, line, .. }
        | FcError::NonAscii { file, line }
        | FcError::InvalidRegex { file, line, .. } => (*file, *line),
    }
}

/// Merges two ascending index lists, iterable from both ends.
struct Merge<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl Iterator for Merge<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x < y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let side = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = side.split_first()?;
        *side = rest;
        Some(*first)
    }
}

impl DoubleEndedIterator for Merge<'_> {
    fn next_back(&mut self) -> Option<usize> {
        let take_a = match (self.a.last(), self.b.last()) {
            (Some(x), Some(y)) => x > y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let side = if take_a { &mut self.a } else { &mut self.b };
        let (last, rest) = side.split_last()?;
        *side = rest;
        Some(*last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: &str = "system_u:object_r";

    fn fc(base: &str) -> FileContexts {
        FileContexts::from_texts(base, None, None, None, None).expect("parse")
    }

    fn ty<'a>(f: &'a FileContexts, path: &str, t: FileType) -> Option<&'a str> {
        f.lookup(path, t).and_then(Spec::context_type)
    }

    #[test]
    fn exact_beats_regex_regardless_of_order_and_file() {
        let base =
            format!("/var/lib/waagent\t{CTX}:etc_t:s0\n/var/lib(/.*)?\t{CTX}:var_lib_t:s0\n");
        let local = format!("/var/lib/waagent(/.*)?    {CTX}:bin_t:s0\n");
        let f = FileContexts::from_texts(&base, None, Some(&local), None, None).unwrap();
        assert_eq!(ty(&f, "/var/lib/waagent", FileType::Any), Some("etc_t"));
        assert_eq!(ty(&f, "/var/lib/waagent/x", FileType::Any), Some("bin_t"));
        assert_eq!(ty(&f, "/var/lib/other", FileType::Any), Some("var_lib_t"));
        let s = f.lookup("/var/lib/waagent", FileType::Any).unwrap();
        assert!(s.is_exact());
        assert_eq!((s.source, s.line), (Source::Base, 1));
    }

    #[test]
    fn last_matching_regex_wins_not_the_most_specific() {
        let f = fc(&format!(
            "/var/lib/waagent(/.*)?\t{CTX}:bin_t:s0\n/var/lib(/.*)?\t{CTX}:var_lib_t:s0\n"
        ));
        assert_eq!(ty(&f, "/var/lib/waagent", FileType::Any), Some("var_lib_t"));
        let f = fc(&format!(
            "/var/lib(/.*)?\t{CTX}:var_lib_t:s0\n/var/lib/waagent(/.*)?\t{CTX}:bin_t:s0\n"
        ));
        assert_eq!(ty(&f, "/var/lib/waagent/a/b", FileType::Any), Some("bin_t"));
        // Two exact specs for the same path: the later one wins too.
        let f = fc(&format!("/foo\t{CTX}:a_t:s0\n/foo\t{CTX}:b_t:s0\n"));
        assert_eq!(ty(&f, "/foo", FileType::Any), Some("b_t"));
    }

    #[test]
    fn load_order_is_base_then_homedirs_then_local() {
        let base = format!("/home(/.*)?\t{CTX}:home_root_t:s0\n");
        let homedirs = "/home/[^/]+/.+\tunconfined_u:object_r:user_home_t:s0\n".to_string();
        let local = format!("/home/x/\\.ssh(/.*)?\t{CTX}:ssh_home_t:s0\n");
        let f = FileContexts::from_texts(&base, Some(&homedirs), Some(&local), None, None).unwrap();
        assert_eq!(ty(&f, "/home", FileType::Any), Some("home_root_t"));
        assert_eq!(ty(&f, "/home/x/doc", FileType::Any), Some("user_home_t"));
        assert_eq!(ty(&f, "/home/x/.ssh/id", FileType::Any), Some("ssh_home_t"));
        assert_eq!(
            f.lookup("/home/x/doc", FileType::Any).unwrap().source,
            Source::Homedirs
        );
        // The same rule in homedirs vs base: homedirs is later, so it wins.
        let f = FileContexts::from_texts(
            &format!("/srv/.*\t{CTX}:a_t:s0\n"),
            Some(&format!("/srv/.*\t{CTX}:b_t:s0\n")),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(ty(&f, "/srv/q", FileType::Any), Some("b_t"));
    }

    #[test]
    fn file_type_field_filters_and_any_matches_all() {
        let f = fc(&format!(
            "/.*\t{CTX}:default_t:s0\n\
             /mnt(/[^/]*)?\t-d\t{CTX}:mnt_t:s0\n\
             /mnt(/[^/]*)\t-l\t{CTX}:mnt_t:s0\n\
             /dev/sd.*\t-b\t{CTX}:fixed_disk_device_t:s0\n\
             /dev/tty.*\t-c\t{CTX}:tty_device_t:s0\n\
             /run/x\\.sock\t-s\t{CTX}:x_sock_t:s0\n\
             /run/x\\.fifo\t-p\t{CTX}:x_fifo_t:s0\n\
             /etc/passwd\t--\t{CTX}:passwd_t:s0\n"
        ));
        use FileType::*;
        assert_eq!(ty(&f, "/mnt/a", Directory), Some("mnt_t"));
        assert_eq!(ty(&f, "/mnt/a", Symlink), Some("mnt_t"));
        assert_eq!(ty(&f, "/mnt/a", Regular), Some("default_t"));
        assert_eq!(ty(&f, "/mnt/a", Any), Some("mnt_t"));
        assert_eq!(ty(&f, "/dev/sda", BlockDevice), Some("fixed_disk_device_t"));
        assert_eq!(ty(&f, "/dev/sda", CharDevice), Some("default_t"));
        assert_eq!(ty(&f, "/dev/tty1", CharDevice), Some("tty_device_t"));
        assert_eq!(ty(&f, "/run/x.sock", Socket), Some("x_sock_t"));
        assert_eq!(ty(&f, "/run/x.fifo", Fifo), Some("x_fifo_t"));
        assert_eq!(ty(&f, "/etc/passwd", Regular), Some("passwd_t"));
        assert_eq!(ty(&f, "/etc/passwd", Directory), Some("default_t"));
        assert_eq!(ty(&f, "/etc/passwd", Any), Some("passwd_t"));
    }

    #[test]
    fn file_type_from_mode_and_fields_round_trip() {
        let all = [
            (0o100_644, FileType::Regular, "--", "file"),
            (0o040_755, FileType::Directory, "-d", "dir"),
            (0o020_620, FileType::CharDevice, "-c", "chr_file"),
            (0o060_660, FileType::BlockDevice, "-b", "blk_file"),
            (0o010_600, FileType::Fifo, "-p", "pipe"),
            (0o140_777, FileType::Socket, "-s", "sock_file"),
            (0o120_777, FileType::Symlink, "-l", "lnk_file"),
        ];
        for (mode, t, field, arg) in all {
            assert_eq!(FileType::from_mode(mode), t);
            assert_eq!(FileType::from_field(field), Some(t));
            assert_eq!(t.field(), field);
            assert_eq!(t.matchpathcon_arg(), Some(arg));
        }
        assert_eq!(FileType::from_mode(0), FileType::Any);
        assert_eq!(FileType::from_mode(0o644), FileType::Any);
        assert_eq!(FileType::from_field("-x"), None);
        assert_eq!(FileType::Any.matchpathcon_arg(), None);
    }

    #[test]
    fn none_context_wins_and_does_not_fall_through() {
        let f = fc(&format!(
            "/.*\t{CTX}:default_t:s0\n/tmp/.*\t<<none>>\n/foo\t-d\t<<none>>\n"
        ));
        let s = f.lookup("/tmp/x", FileType::Any).unwrap();
        assert_eq!(s.context, None);
        assert_eq!(s.context_type(), None);
        assert_eq!(f.lookup("/foo", FileType::Directory).unwrap().context, None);
        assert_eq!(ty(&f, "/foo", FileType::Regular), Some("default_t"));
        assert_eq!(ty(&f, "/tmp", FileType::Any), Some("default_t"));
    }

    #[test]
    fn subs_dist_and_subs_alias_prefixes() {
        let base = format!(
            "/.*\t{CTX}:default_t:s0\n\
             /usr/lib(/.*)?\t{CTX}:lib_t:s0\n\
             /run(/.*)?\t{CTX}:var_run_t:s0\n\
             /var/lib(/.*)?\t{CTX}:var_lib_t:s0\n\
             /srv/www(/.*)?\t{CTX}:httpd_sys_content_t:s0\n\
             /x\t{CTX}:x_t:s0\n"
        );
        let dist = "# comment\n\n/lib /usr/lib\n  /var/run /run  trailing ignored\n/solo\n";
        let subs = "/web /srv/www\n/data/www /web\n/y /x\n";
        let f = FileContexts::from_texts(&base, None, None, Some(dist), Some(subs)).unwrap();
        use FileType::Any;
        assert_eq!(ty(&f, "/lib/x.so", Any), Some("lib_t"));
        assert_eq!(ty(&f, "/lib", Any), Some("lib_t"));
        assert_eq!(ty(&f, "/library", Any), Some("default_t"));
        assert_eq!(ty(&f, "/var/run/foo", Any), Some("var_run_t"));
        assert_eq!(ty(&f, "/web/index.html", Any), Some("httpd_sys_content_t"));
        assert_eq!(ty(&f, "/y", Any), Some("x_t"));
        // One alias per file: /data/www -> /web is not followed by /web -> /srv/www.
        assert_eq!(ty(&f, "/data/www/a", Any), Some("default_t"));
        // .subs first, then .subs_dist on the result.
        let f = FileContexts::from_texts(&base, None, None, Some("/a /var/lib\n"), Some("/b /a"))
            .unwrap();
        assert_eq!(ty(&f, "/b/c", Any), Some("var_lib_t"));
        // The last line of a file is tried first.
        let f = FileContexts::from_texts(&base, None, None, Some("/q /run\n/q /var/lib\n"), None)
            .unwrap();
        assert_eq!(ty(&f, "/q/z", Any), Some("var_lib_t"));
        // A destination of "/" swallows the following slash.
        let f = FileContexts::from_texts(&base, None, None, Some("/chroot /\n"), None).unwrap();
        assert_eq!(ty(&f, "/chroot/run/x", Any), Some("var_run_t"));
    }

    #[test]
    fn duplicate_slashes_are_collapsed_but_trailing_slash_is_kept() {
        let f = fc(&format!(
            "/.*\t{CTX}:default_t:s0\n/foo/bar\t{CTX}:b_t:s0\n"
        ));
        assert_eq!(ty(&f, "//foo///bar", FileType::Any), Some("b_t"));
        assert_eq!(ty(&f, "/foo/bar/", FileType::Any), Some("default_t"));
    }

    #[test]
    fn comments_blank_lines_whitespace_and_extra_fields() {
        let text = format!(
            "# header\n\n   \t\n  # indented comment\n\
             /a\t{CTX}:a_t:s0\r\n\
             /b    --    {CTX}:b_t:s0   \n\
             /c\x0b{CTX}:c_t:s0\n\
             /d -- {CTX}:d_t:s0 extra fields ignored\n\
             /e\t{CTX}:e_t:s0" // no final newline
        );
        let f = fc(&text);
        assert_eq!(f.len(), 5);
        for (p, t) in [
            ("/a", "a_t"),
            ("/b", "b_t"),
            ("/c", "c_t"),
            ("/d", "d_t"),
            ("/e", "e_t"),
        ] {
            assert_eq!(ty(&f, p, FileType::Regular), Some(t), "{p}");
        }
        let b = f.lookup("/b", FileType::Any).unwrap();
        assert_eq!((b.line, b.file_type), (6, Some(FileType::Regular)));
        assert_eq!(f.lookup("/zzz", FileType::Any), None);
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let err = |base: &str, local: Option<&str>| {
            FileContexts::from_texts(base, None, local, None, None).unwrap_err()
        };
        assert_eq!(
            err("/a a:b:c:d\n\n/lonely\n", None),
            FcError::MissingFields {
                file: Source::Base,
                line: 3
            }
        );
        assert_eq!(
            err("/a a:b:c:d\n", Some("# x\n/b -x a:b:c:d\n")),
            FcError::InvalidFileType {
                file: Source::Local,
                line: 2,
                field: "-x".into()
            }
        );
        // A '#' after the first field is not a comment: it lands in the type field.
        assert!(matches!(
            err("/a # a:b:c:d\n", None),
            FcError::InvalidFileType { line: 1, .. }
        ));
        assert_eq!(
            err("/a a:b:c:d\n/caf\u{e9} a:b:c:d\n", None),
            FcError::NonAscii {
                file: Source::Base,
                line: 2
            }
        );
        let e = err("/x\n", None);
        assert_eq!(e.to_string(), "file_contexts: line 1 is missing fields");
        // Non-ASCII in a comment or past the third field is fine.
        assert!(
            FileContexts::from_texts(
                "# caf\u{e9}\n/a -- a:b:c:d \u{e9}\n",
                None,
                None,
                None,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_regex_is_a_load_error_with_its_line() {
        let text = format!("/.*\t{CTX}:default_t:s0\n\n/foo(\t{CTX}:b_t:s0\n");
        let e = FileContexts::from_texts(&text, None, None, None, None).unwrap_err();
        assert!(matches!(e, FcError::InvalidRegex { line: 3, .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("file_contexts: line 3 has invalid regex")
        );
    }

    #[test]
    fn uncompilable_regex_fails_the_lookups_that_reach_it() {
        // Valid syntax, but beyond the regex crate's compiled-size limit.
        let f = fc(&format!(
            "/.*\t{CTX}:default_t:s0\n/x(a{{1000}}){{1000}}\t{CTX}:b_t:s0\n/x/y\t{CTX}:c_t:s0\n"
        ));
        let e = f.validate().unwrap_err();
        assert!(matches!(e, FcError::InvalidRegex { line: 2, .. }), "{e}");
        // Exact specs are tried first, so /x/y never reaches the broken regex.
        assert_eq!(ty(&f, "/x/y", FileType::Any), Some("c_t"));
        assert!(f.try_lookup("/xa", FileType::Any).is_err());
        assert_eq!(f.lookup("/xa", FileType::Any), None);
        // Its literal prefix "/x" rules it out for /q without compiling it.
        assert_eq!(ty(&f, "/q", FileType::Any), Some("default_t"));
        assert!(fc(&format!("/.*\t{CTX}:default_t:s0\n")).validate().is_ok());
    }

    #[test]
    fn stems_compare_literally_like_libselinux() {
        let f = fc(&format!(
            "/.*\t{CTX}:default_t:s0\n/a\\-b/x\t{CTX}:b_t:s0\n/c\\-d\t{CTX}:c_t:s0\n\
             /usr/a|/usr/b\t{CTX}:alt_t:s0\n"
        ));
        // Stem "/a\-b" is never equal to a path's "/a-b": libselinux gives default_t too.
        assert_eq!(ty(&f, "/a-b/x", FileType::Any), Some("default_t"));
        assert_eq!(ty(&f, "/c-d", FileType::Any), Some("c_t"));
        // ^/a|/usr/b$ on the rest after stem /usr: the first branch is a prefix match.
        assert_eq!(ty(&f, "/usr/azzz", FileType::Any), Some("alt_t"));
        assert_eq!(ty(&f, "/usr/xx/usr/b", FileType::Any), Some("alt_t"));
        assert_eq!(ty(&f, "/usr/c", FileType::Any), Some("default_t"));
    }

    #[test]
    fn pcre_dollar_and_dotall_with_trailing_newline() {
        let f = fc(&format!(
            "/.*\t{CTX}:a_t:s0\n/foo\t{CTX}:b_t:s0\n/ba.\t{CTX}:c_t:s0\n/q.*\t{CTX}:d_t:s0\n"
        ));
        assert_eq!(ty(&f, "/foo\n", FileType::Any), Some("b_t"));
        assert_eq!(ty(&f, "/ba\n", FileType::Any), Some("c_t"));
        assert_eq!(ty(&f, "/bar\n", FileType::Any), Some("c_t"));
        assert_eq!(ty(&f, "/q\n", FileType::Any), Some("d_t"));
        assert_eq!(ty(&f, "/foo\n\n", FileType::Any), Some("a_t"));
        assert_eq!(
            f.lookup_bytes(b"/q\xff\xfe", FileType::Any)
                .and_then(Spec::context_type),
            Some("d_t")
        );
    }

    #[test]
    fn local_rules_for_reports_matching_local_specs() {
        let base = format!("/var/lib(/.*)?\t{CTX}:var_lib_t:s0\n");
        let local = format!(
            "# This file is auto-generated by libsemanage\n# Do not edit directly.\n\n\
             /var/lib/waagent(/.*)?    {CTX}:bin_t:s0\n\
             /var/lib/waagent/testdir -d {CTX}:var_lib_t:s0\n\
             /srv(/.*)?    {CTX}:var_t:s0\n"
        );
        let f = FileContexts::from_texts(&base, None, Some(&local), None, None).unwrap();
        let lines = |p: &str| {
            f.local_rules_for(p)
                .iter()
                .map(|s| s.line)
                .collect::<Vec<_>>()
        };
        assert_eq!(lines("/var/lib/waagent"), vec![4]);
        assert_eq!(lines("/var/lib/waagent/testdir"), vec![4, 5]);
        assert_eq!(lines("/var/lib/other"), Vec::<usize>::new());
        assert_eq!(
            ty(&f, "/var/lib/waagent/testdir", FileType::Directory),
            Some("var_lib_t")
        );
        assert_eq!(
            ty(&f, "/var/lib/waagent/testdir", FileType::Regular),
            Some("bin_t")
        );
        let base_only = FileContexts::from_texts(&base, None, None, None, None).unwrap();
        assert!(base_only.local_rules_for("/var/lib/waagent").is_empty());
    }

    #[test]
    fn context_type_takes_the_third_field() {
        assert_eq!(
            context_type("system_u:object_r:var_lib_t:s0"),
            Some("var_lib_t")
        );
        assert_eq!(
            context_type("system_u:system_r:waagent_t:s0-s0:c0.c1023"),
            Some("waagent_t")
        );
        assert_eq!(context_type("u:r:t"), Some("t"));
        assert_eq!(context_type("u:r"), None);
        assert_eq!(context_type("u:r::s0"), None);
        assert_eq!(context_type("<<none>>"), None);
    }

    #[test]
    fn empty_and_nul_paths() {
        let f = fc(&format!("/.*\t{CTX}:a_t:s0\n/foo\t{CTX}:b_t:s0\n"));
        assert_eq!(f.lookup("", FileType::Any), None);
        assert_eq!(ty(&f, "/foo\0/bar", FileType::Any), Some("b_t"));
        assert!(fc("").is_empty());
    }

    #[test]
    fn sorted_order_puts_exact_specs_last() {
        let f = fc(&format!(
            "/a\t{CTX}:a_t:s0\n/b.*\t{CTX}:b_t:s0\n/c\t{CTX}:c_t:s0\n/d.*\t{CTX}:d_t:s0\n"
        ));
        let order: Vec<&str> = f.specs().map(|s| s.pattern.as_str()).collect();
        assert_eq!(order, ["/b.*", "/d.*", "/a", "/c"]);
    }

    #[test]
    fn literal_prefix_is_conservative() {
        let lp = |p: &str| String::from_utf8(literal_prefix(p.as_bytes())).unwrap();
        assert_eq!(lp("/lib(/.*)?"), "/lib");
        assert_eq!(lp("/a\\.conf"), "/a.conf");
        assert_eq!(lp("/ab?c"), "/a");
        assert_eq!(lp("/ab*"), "/a");
        assert_eq!(lp("/ab+"), "/a");
        assert_eq!(lp("/ab{2}"), "/a");
        assert_eq!(lp("/a\\dx"), "/a");
        assert_eq!(lp("/a|/b"), "");
        assert_eq!(lp("/a[|]b"), "/a");
        assert_eq!(lp("/a[[:alpha:]|]|x"), "");
        assert_eq!(lp("/a(b|c)"), "/a");
        assert_eq!(lp("/a\\|b"), "/a|b");
        assert_eq!(lp("/a]x"), "/a");
    }

    #[test]
    fn escaped_angle_brackets_are_literals_as_in_pcre() {
        let f = fc(&format!("/.*\t{CTX}:a_t:s0\n/x\\<y\\>.*\t{CTX}:b_t:s0\n"));
        assert_eq!(ty(&f, "/x<y>z", FileType::Any), Some("b_t"));
        assert_eq!(ty(&f, "/xy", FileType::Any), Some("a_t"));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                "[ -~\t\u{b}\u{c}\r]{0,40}",
                "(/[a-z.*()?|^$\\[\\]{}\\\\+-]{0,6}){1,4}[ \t]+(--|-d|-c|-x)?[ \t]*[a-z_:<>]{0,12}",
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
            #[test]
            fn parsing_and_lookup_never_panic(
                base in prop::collection::vec(line(), 0..8),
                local in prop::collection::vec(line(), 0..4),
                subs in "[ -~\n]{0,60}",
                paths in prop::collection::vec(prop_oneof!["(/[a-z.\n]{0,4}){0,5}/?", any::<String>()], 1..6),
                bytes in prop::collection::vec(any::<u8>(), 0..20),
            ) {
                let base = base.join("\n");
                let local = local.join("\n");
                if let Ok(f) = FileContexts::from_texts(&base, Some(&local), Some(&local), Some(&subs), Some(&subs)) {
                    let _ = f.validate();
                    for p in &paths {
                        for t in [FileType::Any, FileType::Regular, FileType::Directory, FileType::Symlink] {
                            let _ = f.try_lookup(p, t);
                        }
                        let _ = f.local_rules_for(p);
                    }
                    let _ = f.lookup_bytes(&bytes, FileType::Any);
                }
            }
        }
    }
}
