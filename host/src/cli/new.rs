//! `modhost new NAME [--dir DIR]`: a module crate that builds and tests out
//! of the box, from the templates in `new/`.
//!
//! The crate depends on this host's own `modhost-plugin-api`, pinned to its
//! exact version: a module built against another version is refused at
//! load time (its ABI id differs). When this binary was built from a
//! checkout that is still there, the dependency is a path into it, so the
//! module builds offline and against exactly the code the host runs, and
//! the checkout's `Cargo.lock` is copied along to build the same versions of
//! every shared dependency. Otherwise it is a git dependency on this
//! release's tag in the repository `Cargo.toml` names.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use modhost::signing::validate_module_name;

/// This host's version: the plugin-api's too (they share the workspace's).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository `Cargo.toml` names (`[package] repository`), if any.
const REPOSITORY: Option<&str> = option_env!("CARGO_PKG_REPOSITORY");

const CARGO_TOML: &str = include_str!("new/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("new/lib.rs.tmpl");
const TESTS_RS: &str = include_str!("new/tests.rs.tmpl");
const GITIGNORE: &str = include_str!("new/gitignore.tmpl");
const README: &str = include_str!("new/README.md.tmpl");

/// Where the module's modhost crates come from.
enum Source {
    /// The checkout this binary was built from.
    Checkout(PathBuf),
    /// The repository, at this release's tag.
    Git(String),
}

impl Source {
    fn find() -> anyhow::Result<Source> {
        // `host/`, where this binary's Cargo.toml was at build time.
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_owned);
        if let Some(root) = checkout
            && root.join("plugin-api/Cargo.toml").is_file()
            && root.join("plugins/testkit/Cargo.toml").is_file()
        {
            return Ok(Source::Checkout(root));
        }
        match REPOSITORY.filter(|r| !r.is_empty()) {
            Some(repo) => Ok(Source::Git(repo.to_owned())),
            None => bail!(
                "cannot tell where modhost-plugin-api {VERSION} comes from: this modhost was built from a checkout that is gone ({}) and its Cargo.toml names no repository; build modhost from a checkout (cargo install --path host) and run it while the checkout is there",
                env!("CARGO_MANIFEST_DIR")
            ),
        }
    }

    /// The dependency line for the workspace crate `name` at `path`.
    fn dependency(&self, name: &str, path: &str) -> String {
        match self {
            Source::Checkout(root) => format!(
                "{name} = {{ path = {:?}, version = \"={VERSION}\" }}",
                root.join(path).display().to_string()
            ),
            Source::Git(repo) => {
                format!("{name} = {{ git = {repo:?}, tag = \"v{VERSION}\" }}")
            }
        }
    }

    /// One line for Cargo.toml's comment.
    fn comment(&self) -> String {
        match self {
            Source::Checkout(root) => format!(
                "modhost {VERSION}'s own plugin-api, from the checkout modhost was built from ({}): the module builds against exactly the code the host runs.",
                root.display()
            ),
            Source::Git(_) => format!(
                "modhost {VERSION}'s plugin-api from its release tag: the crate is not on crates.io."
            ),
        }
    }

    /// The README's paragraph on it.
    fn readme(&self) -> String {
        let common = format!(
            "The module must be built against the plugin-api of the modhost that will load it: the host compares the ABI id built into the module (plugin-api version, abi_stable version, target) with its own and refuses another. So `modhost-plugin-api` is pinned to `={VERSION}`; after a host upgrade, point it at the new version and package again."
        );
        match self {
            Source::Checkout(root) => format!(
                "`modhost new` ran from a modhost built in the checkout {}, so the modhost crates are path dependencies into it, and `Cargo.lock` is the checkout's: the module builds offline, with the versions the host was tested with. To share this crate, replace the paths with a `git` dependency on modhost's repository at tag `v{VERSION}`.\n\n{common}",
                root.display()
            ),
            Source::Git(repo) => format!(
                "The modhost crates are not on crates.io, so they come from {repo} at tag `v{VERSION}`, the release of the modhost that made this crate.\n\n{common}"
            ),
        }
    }
}

/// `modhost new NAME [--dir DIR]`: writes the crate into `dir` (default
/// `./NAME`), which must not exist or be empty.
pub(crate) fn new(name: &str, dir: Option<PathBuf>) -> anyhow::Result<()> {
    validate_module_name(name).with_context(|| {
        format!("cannot make a module called {name:?}: pick a name of a-z, 0-9, '_' and '-'")
    })?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("cannot make a module called {name:?}: a crate name starts with a letter (a-z)");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: give another folder with --dir",
            dir.display()
        );
    }
    let source = Source::find()?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{type}}", &type_name(name))
            .replace(
                "{{api}}",
                &source.dependency("modhost-plugin-api", "plugin-api"),
            )
            .replace(
                "{{testkit}}",
                &source.dependency("modhost-plugin-testkit", "plugins/testkit"),
            )
            .replace("{{source}}", &source.comment())
            .replace("{{source_readme}}", &source.readme())
    };
    fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("src/tests.rs", TESTS_RS),
        (".gitignore", GITIGNORE),
        ("README.md", README),
    ];
    for (file, template) in files {
        let path = dir.join(file);
        fs::write(&path, fill(template))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Source::Checkout(root) = &source {
        // Cargo drops what the module does not use and keeps the versions
        // of the rest, so abi_stable & co. are the builds the host's own.
        let lock = root.join("Cargo.lock");
        if lock.is_file() {
            fs::copy(&lock, dir.join("Cargo.lock"))
                .with_context(|| format!("cannot copy {}", lock.display()))?;
        }
    }
    let how = match &source {
        Source::Checkout(root) => format!("path dependencies into {}", root.display()),
        Source::Git(repo) => format!("git dependencies on {repo} at tag v{VERSION}"),
    };
    println!(
        "made module {name} in {} (modhost-plugin-api ={VERSION}, {how})\n\
         next:\n  cd {}\n  cargo test\n  modhost keygen {name} --config PATH/TO/HOST/config.toml\n  modhost package --config PATH/TO/HOST/config.toml",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// `my-module` → `MyModule`: the module's type in the template (`name`
/// starts with a letter).
fn type_name(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Source, VERSION, type_name};

    #[test]
    fn dependencies_are_pinned_to_this_version() {
        let path = Source::Checkout("/src/modhost".into());
        assert_eq!(
            path.dependency("modhost-plugin-api", "plugin-api"),
            format!(
                "modhost-plugin-api = {{ path = \"/src/modhost/plugin-api\", version = \"={VERSION}\" }}"
            )
        );
        let git = Source::Git("https://example.com/modhost".into());
        assert_eq!(
            git.dependency("modhost-plugin-testkit", "plugins/testkit"),
            format!(
                "modhost-plugin-testkit = {{ git = \"https://example.com/modhost\", tag = \"v{VERSION}\" }}"
            )
        );
        assert!(git.readme().contains(&format!("v{VERSION}")));
    }

    #[test]
    fn type_names_are_rust_identifiers() {
        assert_eq!(type_name("greeter"), "Greeter");
        assert_eq!(type_name("my-module_2"), "MyModule2");
        assert_eq!(type_name("a--b"), "AB");
    }
}
