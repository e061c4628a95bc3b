//! Turns abi_stable's load errors (a layout mismatch is a ~200-line dump)
//! into one line naming the type, both interface versions and the first
//! mismatches. The caller adds the module and logs the full text at debug.

use modhost_plugin_api::abi_stable::library::LibraryError;

/// One line describing `error`.
pub(crate) fn summarize(error: &LibraryError) -> String {
    match error {
        LibraryError::IncompatibleVersionNumber {
            library_name,
            expected_version,
            actual_version,
        } => format!(
            "incompatible interface version: the host uses {library_name} {expected_version}, the module was built against {actual_version}; rebuild the module against this host's modhost-plugin-api"
        ),
        LibraryError::AbiInstability(_) => layout_mismatch(&error.to_string()),
        LibraryError::RootModule { err, .. } => {
            format!("the module's root failed to initialise: {err}")
        }
        LibraryError::OpenError { err, .. } => format!(
            "the library could not be opened: {}",
            first_line(&err.to_string())
        ),
        LibraryError::GetSymbolError { .. } => {
            "not a modhost module: it exports no abi_stable root module (use export_module!)"
                .to_owned()
        }
        other => first_line(&other.to_string()).to_owned(),
    }
}

/// `incompatible ABI in type T: host has P V, module built against P V'
/// (mismatch: expected a, found b; …)`.
fn layout_mismatch(text: &str) -> String {
    let expected = side(text, "Layout of expected type:");
    let found = side(text, "Layout of found type:");
    let mismatches = mismatches(text);
    let detail = if mismatches.is_empty() {
        first_line(text).to_owned()
    } else {
        mismatches.join("; ")
    };
    match (expected, found) {
        (Some(host), Some(module)) => format!(
            "incompatible ABI in type {}: the host has {} {}, the module was built against {} {} with a different layout ({detail}); rebuild the module against this host's modhost-plugin-api",
            host.ty, host.package, host.version, module.package, module.version
        ),
        _ => format!(
            "incompatible ABI: the module was built against a different modhost-plugin-api interface ({detail}); rebuild it against this host's version"
        ),
    }
}

struct Side<'a> {
    ty: &'a str,
    package: &'a str,
    version: &'a str,
}

/// The type name and its package/version after `marker` in the dump.
fn side<'a>(text: &'a str, marker: &str) -> Option<Side<'a>> {
    // Layouts nest (root module → field → …); the last pair is the type
    // that actually differs.
    let rest = &text[text.rfind(marker)? + marker.len()..];
    let mut lines = rest.lines().map(str::trim);
    let ty = lines.find_map(|l| l.strip_prefix("type:"))?;
    let package_line = lines.find(|l| l.starts_with("package:"))?;
    // package:'modhost-plugin-api' version:'0.1.0'
    let mut quoted = package_line.split('\'').skip(1).step_by(2);
    Some(Side {
        ty,
        package: quoted.next()?,
        version: quoted.next()?,
    })
}

/// Each `Error:what / Expected: a / Found: b` block as `what: expected a,
/// found b` (at most three).
fn mismatches(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(what) = line.strip_prefix("Error:") else {
            continue;
        };
        let value_after = |label: &str| {
            lines[i + 1..]
                .iter()
                .take(4)
                .position(|l| *l == label)
                .and_then(|p| lines.get(i + 2 + p))
                .copied()
        };
        match (value_after("Expected:"), value_after("Found:")) {
            (Some(e), Some(f)) => out.push(format!("{}: expected {e}, found {f}", what.trim())),
            _ => out.push(what.trim().to_owned()),
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

#[cfg(test)]
mod tests {
    use super::layout_mismatch;

    const DUMP: &str = "Compared <this>:\n  lots of layout\nLayout of expected type:\n    --- Type Layout ---\n    type:AbiInfo\n    size:24 align:8\n    package:'modhost-plugin-api' version:'0.1.0'\n\nLayout of found type:\n    --- Type Layout ---\n    type:AbiInfo\n    size:32 align:8\n    package:'modhost-plugin-api' version:'0.2.0'\n\nError:incompatible type size\nExpected:\n    24\nFound:\n    32\n\nError:too many fields\nExpected:\n    2\nFound:\n    3\n";

    #[test]
    fn names_the_type_both_versions_and_the_mismatches() {
        assert_eq!(
            layout_mismatch(DUMP),
            "incompatible ABI in type AbiInfo: the host has modhost-plugin-api 0.1.0, the module was built against modhost-plugin-api 0.2.0 with a different layout (incompatible type size: expected 24, found 32; too many fields: expected 2, found 3); rebuild the module against this host's modhost-plugin-api"
        );
    }

    #[test]
    fn falls_back_to_the_first_line() {
        let text = layout_mismatch("something odd\nmore");
        assert!(text.contains("(something odd)"), "{text}");
    }
}
