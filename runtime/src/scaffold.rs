//! `sluice new`: a plugin project to start from, in Rust, Python or
//! JavaScript. Each template (`runtime/templates/<lang>/`) is a working
//! plugin with a unit test, a sample events file and a README giving the
//! one command that builds it; the files are compiled into the binary so an
//! installed `sluice` needs no checkout to read them. The SDKs are the
//! exception: a project depends on them by path, from a Sluice checkout.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A guest language `sluice new` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// Why no project was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: use 1 to 64 lowercase letters, digits and `-`, starting with a letter"
    )]
    BadName(String),
    #[error("`{0}` is a reserved name; choose another")]
    Reserved(String),
    #[error("{} already exists and is not empty; choose another name or --dir", .0.display())]
    Exists(PathBuf),
    #[error(
        "no Sluice checkout at {}: the project depends on the SDK in it ({sdk}); pass --sluice DIR, the root of a Sluice checkout",
        .checkout.display()
    )]
    NoCheckout {
        checkout: PathBuf,
        sdk: &'static str,
    },
    #[error("cannot write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name: the component is `<name>.wasm`, which a pipeline
    /// loads as `plugin = "<name>"`.
    pub name: String,
    pub lang: Lang,
    /// The project directory is `<dir>/<name>`.
    pub dir: PathBuf,
    /// The Sluice checkout whose SDKs the project depends on.
    pub checkout: PathBuf,
}

/// One file of a template: its path in the project (placeholders allowed)
/// and its text.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($($path:literal => $file:literal),+ $(,)?) => {
        &[$(TemplateFile { path: $path, text: include_str!(concat!("../templates/", $file)) }),+]
    };
}

const RUST: &[TemplateFile] = template![
    "Cargo.toml" => "rust/Cargo.toml",
    "src/lib.rs" => "rust/src/lib.rs",
    "events.jsonl" => "rust/events.jsonl",
    "README.md" => "rust/README.md",
    ".gitignore" => "rust/gitignore",
];

const PYTHON: &[TemplateFile] = template![
    "{{module}}.py" => "python/app.py",
    "test_{{module}}.py" => "python/test_app.py",
    "events.jsonl" => "python/events.jsonl",
    "README.md" => "python/README.md",
    ".gitignore" => "python/gitignore",
];

const JS: &[TemplateFile] = template![
    "package.json" => "js/package.json",
    "index.js" => "js/index.js",
    "index.test.js" => "js/index.test.js",
    "events.jsonl" => "js/events.jsonl",
    "README.md" => "js/README.md",
    ".gitignore" => "js/gitignore",
];

/// Each language's SDK, relative to a checkout's root.
const RUST_SDK: &str = "plugins/sdk";
const PYTHON_SDK: &str = "plugins/python";
const JS_SDK: &str = "plugins/js/sdk";

/// Names that would shadow a module or package the build needs.
const RESERVED: &[&str] = &[
    "sluice-sdk",
    "sluice",
    "test",
    "wit-world",
    "componentize-py",
];

impl Lang {
    fn template(self) -> &'static [TemplateFile] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    fn sdk(self) -> &'static str {
        match self {
            Lang::Rust => RUST_SDK,
            Lang::Python => PYTHON_SDK,
            Lang::Js => JS_SDK,
        }
    }
}

/// The checkout this binary was built from, if it is still there: the
/// default for `--sluice`.
pub fn default_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let well_formed = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !well_formed {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    if RESERVED.contains(&name) {
        return Err(ScaffoldError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// Writes the project; the files written, relative to its directory.
pub fn create(new: &NewPlugin) -> Result<(PathBuf, Vec<String>), ScaffoldError> {
    check_name(&new.name)?;
    let sdk = new.checkout.join(new.lang.sdk());
    if !sdk.is_dir() {
        return Err(ScaffoldError::NoCheckout {
            checkout: new.checkout.clone(),
            sdk: new.lang.sdk(),
        });
    }
    // Absolute, so the project may be moved within this machine.
    let sdk = std::path::absolute(&sdk).map_err(|source| ScaffoldError::Write {
        path: sdk.clone(),
        error: source,
    })?;
    let project = new.dir.join(&new.name);
    let occupied = std::fs::read_dir(&project).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || project.is_file() {
        return Err(ScaffoldError::Exists(project));
    }

    let sdk = sdk.display().to_string();
    let module = new.name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", &new.name)
            .replace("{{module}}", &module)
            .replace("{{sdk}}", &sdk)
    };
    let mut written = Vec::new();
    for file in new.lang.template() {
        let relative = fill(file.path);
        let path = project.join(&relative);
        write_new(&path, fill(file.text).as_bytes()).map_err(|source| ScaffoldError::Write {
            path,
            error: source,
        })?;
        written.push(relative);
    }
    Ok((project, written))
}

/// Creates `path` (and its directory); never overwrites a file.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(dir: &Path, name: &str, lang: Lang) -> NewPlugin {
        NewPlugin {
            name: name.to_owned(),
            lang,
            dir: dir.to_owned(),
            checkout: default_checkout(),
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "order-enrich", "x2", "abc-1-d"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "1a", "-a", "a-", "a--b", "a_b", "a.b", "é"] {
            assert!(
                matches!(check_name(bad), Err(ScaffoldError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check_name("sluice-sdk"),
            Err(ScaffoldError::Reserved(_))
        ));
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn every_placeholder_is_filled_in_every_language() {
        let dir = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let name = format!("my-{lang}-plugin");
            let (project, files) = create(&new(dir.path(), &name, lang)).unwrap();
            assert!(files.iter().any(|f| f == "README.md"), "{files:?}");
            for file in &files {
                let text = std::fs::read_to_string(project.join(file)).unwrap();
                assert!(!text.contains("{{"), "{lang}: {file} keeps a placeholder");
                assert!(!file.contains("{{"), "{lang}: {file}");
            }
            let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
            assert!(readme.contains(&name), "{lang}: README names the plugin");
        }
    }

    #[test]
    fn never_overwrites_and_needs_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        std::fs::write(dir.path().join("taken/keep"), "mine").unwrap();
        let err = create(&new(dir.path(), "taken", Lang::Rust)).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("taken/keep")).unwrap(),
            "mine"
        );

        let mut elsewhere = new(dir.path(), "fresh", Lang::Python);
        elsewhere.checkout = dir.path().to_owned();
        let err = create(&elsewhere).unwrap_err().to_string();
        assert!(
            err.contains("plugins/python") && err.contains("--sluice"),
            "{err}"
        );
        assert!(!dir.path().join("fresh").exists());
    }
}
