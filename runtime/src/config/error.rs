//! What can be wrong with a config file, each problem with the line and
//! column it was found at, so an operator can go straight to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem of a config file, at a 1-based line and column (columns count
/// characters, not bytes). Line 0 means the problem concerns the file as a
/// whole and has no position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, or 0 for the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 for the whole file.
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

impl Problem {
    /// A problem at `line`:`column`.
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        Problem {
            line,
            column,
            message: message.into(),
        }
    }

    /// A problem of the file as a whole.
    pub fn whole_file(message: impl Into<String>) -> Self {
        Problem::new(0, 0, message)
    }

    /// Formats as `FILE:LINE:COL: message` (or `FILE: message` without a
    /// position), the form editors and terminals turn into links.
    pub fn display_with<'a>(&'a self, path: &'a Path) -> impl fmt::Display + 'a {
        ProblemAt {
            path,
            problem: self,
        }
    }
}

struct ProblemAt<'a> {
    path: &'a Path,
    problem: &'a Problem,
}

impl fmt::Display for ProblemAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Problem {
            line,
            column,
            message,
        } = self.problem;
        if *line == 0 {
            write!(f, "{}: {message}", self.path.display())
        } else {
            write!(f, "{}:{line}:{column}: {message}", self.path.display())
        }
    }
}

/// One problem per line.
struct ProblemList<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", problem.display_with(self.path))?;
        }
        Ok(())
    }
}

/// Why a config file could not be loaded. Whatever the variant, a running
/// host keeps its current config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type, or a key is
    /// unknown. Only the first such error is known.
    #[error("{}", problem.display_with(path))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what.
        problem: Problem,
    },
    /// The file is well-formed but its content is not usable (including
    /// `${VAR}` references that cannot be resolved). Lists every problem.
    #[error("{}", ProblemList { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// The positioned problems (none for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Syntax { problem, .. } => std::slice::from_ref(problem),
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// Formats problems that are not (yet) an error, such as the result of
/// [`super::Config::missing_plugins`], one `FILE:LINE:COL: message` per line.
pub fn display_problems<'a>(path: &'a Path, problems: &'a [Problem]) -> impl fmt::Display + 'a {
    ProblemList { path, problems }
}
