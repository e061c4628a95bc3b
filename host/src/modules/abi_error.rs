//! Turns abi_stable's load errors (a layout mismatch is a ~200-line dump)
//! into one line that names the module, both versions and the first
//! mismatch. The full text is logged at debug level by the caller.

use modhost_plugin_api::abi_stable::library::LibraryError;

/// One line describing `error` for a module loaded from `file`.
pub(crate) fn summarize(error: &LibraryError) -> String {
    match error {
        LibraryError::IncompatibleVersionNumber {
            library_name,
            expected_version,
            actual_version,
        } => format!(
            "incompatible interface version: the host uses {library_name} {expected_version}, the module was built against {actual_version}; rebuild the module against this host's modhost-plugin-api"
        ),
        LibraryError::AbiInstability(_) => {
            let text = error.to_string();
            format!(
                "incompatible ABI: the module was built against a different modhost-plugin-api interface ({}); rebuild it against this host's version",
                first_mismatch(&text)
            )
        }
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

/// The `Error:…` line(s) of a layout mismatch, e.g. `too many fields
/// Expected: 6 Found: 5`, with whitespace collapsed.
fn first_mismatch(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(pos) = lines.iter().position(|l| l.starts_with("Error:")) {
        let mut out: Vec<&str> = vec![lines[pos].trim_start_matches("Error:").trim()];
        out.extend(
            lines[pos + 1..]
                .iter()
                .take(4)
                .copied()
                .take_while(|l| !l.starts_with("Error:")),
        );
        return out
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    }
    first_line(text).to_owned()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

#[cfg(test)]
mod tests {
    use super::first_mismatch;

    #[test]
    fn picks_the_error_line_and_its_details() {
        let text = "Compared <this>:\n  lots of layout\n\nError:too many fields \nExpected:\n    6\nFound:\n    5\n";
        assert_eq!(first_mismatch(text), "too many fields Expected: 6 Found: 5");
    }

    #[test]
    fn falls_back_to_the_first_line() {
        assert_eq!(first_mismatch("something odd\nmore"), "something odd");
    }
}
