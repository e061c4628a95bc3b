//! The codecs a `section!` entry can use: how a kind of value is read from
//! the file, checked against its bounds, given its default, and shown in a
//! live-diff line.
//!
//! Each codec is a small value written in the entry itself
//! (`Count { default: 1024, min: 1, max: 1_000_000 }`), so a setting's
//! default and bounds sit next to its name and nowhere else.

use std::{
    fmt::Display,
    net::{IpAddr, SocketAddr},
    path::{Component, Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::{
    declare::{At, Codec},
    error::{KeyPath, Problem},
    shape::{Shape, Shaped},
};

/// The bound hint's text: what the key means, and its default if it has one.
fn what(at: &At<'_>, default: Option<u64>) -> String {
    match default {
        Some(d) => format!("{} (default {d})", at.what),
        None => at.what.to_owned(),
    }
}

/// `value` at `path` must lie in `min..=max`; `what` explains the key.
pub(crate) fn bounded(
    path: &KeyPath,
    value: u64,
    min: u64,
    max: u64,
    what: &str,
) -> Result<u64, Problem> {
    let bound = if value < min {
        format!("too small: it must be at least {min}")
    } else if value > max {
        format!("too large: it must be at most {max}")
    } else {
        return Ok(value);
    };
    Err(Problem::invalid(
        path,
        format!("{path} = {value} is {bound}"),
        format!("{path}: {what}"),
    ))
}

/// A whole number read as `usize` or `u32`. Every declared maximum fits
/// both, so the conversion cannot fail in practice; if it did, the value is
/// refused as too large rather than wrapped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count {
    pub(crate) default: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl<T: TryFrom<u64> + Display> Codec<T> for Count {
    type Raw = u64;
    fn read(&self, written: Option<u64>, at: &At<'_>) -> Result<T, Problem> {
        let value = written.unwrap_or(self.default);
        let what = what(at, Some(self.default));
        let n = bounded(&at.path, value, self.min, self.max, &what)?;
        T::try_from(n).map_err(|_| {
            Problem::invalid(&at.path, format!("{} = {n} is too large", at.path), what)
        })
    }
    fn show(&self, value: &T) -> String {
        value.to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.min, self.max))
    }
}

/// A number with no default: absent means "not set" (`None`), e.g. a
/// module's own `publishes_per_second`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptCount {
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Codec<Option<u32>> for OptCount {
    type Raw = u64;
    fn read(&self, written: Option<u64>, at: &At<'_>) -> Result<Option<u32>, Problem> {
        let Some(value) = written else {
            return Ok(None);
        };
        let n = bounded(&at.path, value, self.min, self.max, at.what)?;
        u32::try_from(n).map(Some).map_err(|_| {
            Problem::invalid(&at.path, format!("{} = {n} is too large", at.path), at.what)
        })
    }
    fn show(&self, value: &Option<u32>) -> String {
        value.map_or_else(|| "default".to_owned(), |n| n.to_string())
    }
    fn default_toml(&self) -> Option<String> {
        None
    }
    fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.min, self.max))
    }
}

/// A duration written as whole seconds (`idle_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Secs {
    pub(crate) default: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Codec<Duration> for Secs {
    type Raw = u64;
    fn read(&self, written: Option<u64>, at: &At<'_>) -> Result<Duration, Problem> {
        let value = written.unwrap_or(self.default);
        let what = what(at, Some(self.default));
        bounded(&at.path, value, self.min, self.max, &what).map(Duration::from_secs)
    }
    fn show(&self, value: &Duration) -> String {
        value.as_secs().to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.min, self.max))
    }
}

/// A duration written as whole milliseconds (`call_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Millis {
    pub(crate) default: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Codec<Duration> for Millis {
    type Raw = u64;
    fn read(&self, written: Option<u64>, at: &At<'_>) -> Result<Duration, Problem> {
        let value = written.unwrap_or(self.default);
        let what = what(at, Some(self.default));
        bounded(&at.path, value, self.min, self.max, &what).map(Duration::from_millis)
    }
    fn show(&self, value: &Duration) -> String {
        value.as_millis().to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.min, self.max))
    }
}

/// Milliseconds with no default: absent means "use the general setting".
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptMillis {
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Codec<Option<Duration>> for OptMillis {
    type Raw = u64;
    fn read(&self, written: Option<u64>, at: &At<'_>) -> Result<Option<Duration>, Problem> {
        written
            .map(|v| bounded(&at.path, v, self.min, self.max, at.what).map(Duration::from_millis))
            .transpose()
    }
    fn show(&self, value: &Option<Duration>) -> String {
        value.map_or_else(|| "default".to_owned(), |d| d.as_millis().to_string())
    }
    fn default_toml(&self) -> Option<String> {
        None
    }
    fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.min, self.max))
    }
}

/// `true` or `false`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    pub(crate) default: bool,
}

impl Codec<bool> for Flag {
    type Raw = bool;
    fn read(&self, written: Option<bool>, _: &At<'_>) -> Result<bool, Problem> {
        Ok(written.unwrap_or(self.default))
    }
    fn show(&self, value: &bool) -> String {
        value.to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(self.default.to_string())
    }
}

/// A flag whose change reads as a word: `module echo disabled`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Switch {
    pub(crate) default: bool,
    pub(crate) on: &'static str,
    pub(crate) off: &'static str,
}

impl Codec<bool> for Switch {
    type Raw = bool;
    fn read(&self, written: Option<bool>, _: &At<'_>) -> Result<bool, Problem> {
        Ok(written.unwrap_or(self.default))
    }
    fn show(&self, value: &bool) -> String {
        (if *value { self.on } else { self.off }).to_owned()
    }
    fn default_toml(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn change(&self, _: &str, owner: &str, _: &bool, new: &bool) -> String {
        format!("{owner} {}", self.show(new))
    }
}

/// A socket address to bind: an IP and a port, no host names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addr {
    pub(crate) default: &'static str,
}

impl Codec<SocketAddr> for Addr {
    type Raw = String;
    fn read(&self, written: Option<String>, at: &At<'_>) -> Result<SocketAddr, Problem> {
        let text = written.as_deref().unwrap_or(self.default);
        text.parse().map_err(|_| {
            let hint = if text.parse::<IpAddr>().is_ok() {
                format!("add a port: \"{text}:8080\"")
            } else {
                "write an IP address and a port: \"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (all interfaces); host names are not resolved, IPv6 goes in brackets: \"[::1]:8080\"".to_owned()
            };
            let path = &at.path;
            Problem::invalid(path, format!("{path} = {text:?} is not a socket address"), hint)
        })
    }
    fn show(&self, value: &SocketAddr) -> String {
        value.to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(format!("{:?}", self.default))
    }
}

/// Resolve a path from the file against the file's folder, dropping `.`
/// components (`./plugins` → `/srv/modhost/plugins`).
pub(crate) fn resolve(base: &Path, path: &KeyPath, value: &str) -> Result<PathBuf, Problem> {
    if value.is_empty() {
        return Err(Problem::invalid(
            path,
            format!("{path} is an empty path"),
            "relative paths are resolved against the config file's folder; use \".\" for that folder itself",
        ));
    }
    let joined = base.join(value);
    let mut out = PathBuf::new();
    for c in joined.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

/// A folder, relative to the config file's folder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Folder {
    pub(crate) default: &'static str,
}

impl Codec<PathBuf> for Folder {
    type Raw = String;
    fn read(&self, written: Option<String>, at: &At<'_>) -> Result<PathBuf, Problem> {
        resolve(
            at.base,
            &at.path,
            written.as_deref().unwrap_or(self.default),
        )
    }
    fn show(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }
    fn default_toml(&self) -> Option<String> {
        Some(format!("{:?}", self.default))
    }
}

/// `"x"` or `["x", "y"]`.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Shaped for OneOrMany {
    const SHAPE: Shape = Shape::Text;
}

impl Default for OneOrMany {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl OneOrMany {
    /// The strings, whichever way they were written.
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// One folder or a non-empty list of them (`verify_keys`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Folders {
    pub(crate) default: &'static str,
}

impl Codec<Vec<PathBuf>> for Folders {
    type Raw = OneOrMany;
    fn read(&self, written: Option<OneOrMany>, at: &At<'_>) -> Result<Vec<PathBuf>, Problem> {
        let path = &at.path;
        match written.unwrap_or(OneOrMany::One(self.default.to_owned())) {
            OneOrMany::One(s) => Ok(vec![resolve(at.base, path, &s)?]),
            OneOrMany::Many(items) if items.is_empty() => Err(Problem::invalid(
                path,
                format!("{path} is empty, so no module could ever be verified"),
                "list at least one folder of <module>.pub files: verify_keys = [\"verify_keys\"]",
            )),
            OneOrMany::Many(items) => items
                .iter()
                .enumerate()
                .map(|(i, s)| resolve(at.base, &path.index(i), s))
                .collect(),
        }
    }
    fn show(&self, value: &Vec<PathBuf>) -> String {
        let items: Vec<String> = value.iter().map(|p| p.display().to_string()).collect();
        format!("[{}]", items.join(", "))
    }
    fn default_toml(&self) -> Option<String> {
        Some(format!("{:?}", self.default))
    }
}

/// Paths the host serves itself; an echo endpoint there would shadow them.
const HOST_ROUTES: &[&str] = &[
    "/ws",
    "/ws/",
    "/trigger",
    "/trigger/",
    "/health",
    "/metrics",
    "/module",
];

/// An optional URL path of the host's own (`ws_echo_path`); absent is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutePath {}

impl Codec<Option<String>> for RoutePath {
    type Raw = String;
    fn read(&self, written: Option<String>, at: &At<'_>) -> Result<Option<String>, Problem> {
        let Some(p) = written else {
            return Ok(None);
        };
        let path = &at.path;
        let hint = "use a path of its own starting with '/', e.g. \"/echo\"; remove the key to turn the echo endpoint off";
        if !p.starts_with('/') || p.len() < 2 || p.contains(char::is_whitespace) {
            return Err(Problem::invalid(
                path,
                format!("{path} = {p:?} is not a path such as \"/echo\""),
                hint,
            ));
        }
        if HOST_ROUTES.contains(&p.as_str()) || p.starts_with("/api/") || p == "/api" {
            return Err(Problem::invalid(
                path,
                format!("{path} = {p:?} would shadow the host's own {p} endpoint"),
                hint,
            ));
        }
        Ok(Some(p))
    }
    fn show(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_else(|| "(off)".to_owned())
    }
    fn default_toml(&self) -> Option<String> {
        None
    }
}

/// One word out of a fixed list (`status = "admins"`), each naming a value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice<T: 'static> {
    pub(crate) default: T,
    pub(crate) options: &'static [(&'static str, T)],
}

impl<T: Copy + PartialEq> Codec<T> for Choice<T> {
    type Raw = String;
    fn read(&self, written: Option<String>, at: &At<'_>) -> Result<T, Problem> {
        let Some(word) = written else {
            return Ok(self.default);
        };
        self.options
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let path = &at.path;
                let names: Vec<String> =
                    self.options.iter().map(|(n, _)| format!("{n:?}")).collect();
                Problem::invalid(
                    path,
                    format!("{path} = {word:?} is not one of {}", names.join(", ")),
                    format!("{path}: {}", at.what),
                )
            })
    }
    fn show(&self, value: &T) -> String {
        self.options
            .iter()
            .find(|(_, v)| v == value)
            .map_or_else(String::new, |(name, _)| (*name).to_owned())
    }
    fn default_toml(&self) -> Option<String> {
        Some(format!("{:?}", self.show(&self.default)))
    }
}

/// Origins allowed to open cookie-authenticated websockets
/// (`allowed_origins`): each written as a browser sends it,
/// `scheme://host[:port]`, and kept in that serialization (lower case, the
/// scheme's default port left out) so a request's `Origin` header compares
/// as a string. `"*"` alone allows every origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origins {}

/// The wildcard of `allowed_origins`.
pub const ANY_ORIGIN: &str = "*";

impl Codec<Vec<String>> for Origins {
    type Raw = Vec<String>;
    fn read(&self, written: Option<Vec<String>>, at: &At<'_>) -> Result<Vec<String>, Problem> {
        let items = written.unwrap_or_default();
        let wildcard = items.iter().any(|o| o == ANY_ORIGIN);
        if wildcard && items.len() > 1 {
            return Err(Problem::invalid(
                &at.path,
                format!("{} mixes \"*\" with other origins", at.path),
                "\"*\" already allows every site: write either [\"*\"] or a list of origins",
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, text)| {
                if text == ANY_ORIGIN {
                    return Ok(text.clone());
                }
                serialized_origin(text).ok_or_else(|| {
                    let path = at.path.index(i);
                    Problem::invalid(
                        &path,
                        format!("{path} = {text:?} is not an origin"),
                        "write an origin as a browser sends it: scheme, host and optional port, no path (\"https://app.example.com\", \"http://localhost:3000\")",
                    )
                })
            })
            .collect()
    }
    fn show(&self, value: &Vec<String>) -> String {
        format!("[{}]", value.join(", "))
    }
    fn default_toml(&self) -> Option<String> {
        Some("[]".to_owned())
    }
}

/// `text` as the `Origin` header of a browser on that site would carry
/// it (`https://app.example.com`, `http://localhost:3000`), or `None` if it
/// is not an http(s) origin: a path, query, user or missing host is
/// refused, not ignored, since the operator meant something else.
pub fn serialized_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    plain.then(|| url.origin().ascii_serialization())
}

/// A URL path of the host's own with a default (`[external] path`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub(crate) default: &'static str,
}

impl Codec<String> for Route {
    type Raw = String;
    fn read(&self, written: Option<String>, at: &At<'_>) -> Result<String, Problem> {
        let Some(p) = written else {
            return Ok(self.default.to_owned());
        };
        let path = &at.path;
        let hint = format!(
            "use a path of its own starting with '/', e.g. {:?}",
            self.default
        );
        let host_route = HOST_ROUTES.contains(&p.as_str()) && p != self.default;
        if !p.starts_with('/') || p.len() < 2 || p.contains(char::is_whitespace) || p.ends_with('/')
        {
            return Err(Problem::invalid(
                path,
                format!("{path} = {p:?} is not a path such as {:?}", self.default),
                hint,
            ));
        }
        if host_route || p.starts_with("/api/") || p == "/api" {
            return Err(Problem::invalid(
                path,
                format!("{path} = {p:?} would shadow the host's own {p} endpoint"),
                hint,
            ));
        }
        Ok(p)
    }
    fn show(&self, value: &String) -> String {
        value.clone()
    }
    fn default_toml(&self) -> Option<String> {
        Some(format!("{:?}", self.default))
    }
}
