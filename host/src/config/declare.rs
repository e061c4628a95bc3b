//! The machinery behind "each setting is declared once": the [`section!`]
//! macro, the [`Codec`] trait its entries use, and [`Take`], the serde
//! reader every raw table shares.
//!
//! # Why a `macro_rules!` table and not a static table of descriptors
//!
//! A setting has to exist as a *typed struct field* twice (the raw serde
//! field and the field of the model struct other code reads, e.g.
//! `Limits::send_queue: usize`) and as *data* (its key, default, bounds and
//! whether it applies live, for the key check, the diff and the config.toml
//! test). A static table of descriptors can only give the data: the fields
//! would still be written by hand and kept in step with it, which is the
//! repetition this replaces. A macro writes both from one entry, and the
//! compiler checks the types: an entry's codec must read its field's type
//! (`Count` reads `usize` and `u32`, `Millis` reads `Duration`).
//!
//! # Shape of an entry
//!
//! ```text
//! send_queue: usize = send_queue, Count { default: 1024, min: 1, max: 1_000_000 }, Live,
//!     "per-connection outbox, in messages";
//! ```
//!
//! field and type (the model struct), the key in the file (the raw struct),
//! the codec with its default and bounds, whether a change applies `Live` or
//! needs a `Restart`, and what the key means: the hint shown when a value
//! is out of bounds (`limits.send_queue: per-connection outbox, in messages
//! (default 1024)`) and the first line of the field's docs.

use std::{marker::PhantomData, path::Path};

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{
    error::{KeyPath, Problem},
    shape::Shaped,
};

/// When a changed setting takes effect on a running host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    /// At once, on reload (read where it is used).
    Live,
    /// Only after a restart: the running host keeps the old value.
    Restart,
}

/// Where a value is read: its key path, the config file's folder (to
/// resolve relative paths) and what the key means (for hints).
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    pub(crate) path: KeyPath,
    pub(crate) base: &'a Path,
    pub(crate) what: &'static str,
}

impl<'a> At<'a> {
    /// The table at `path`; relative paths resolve against `base`.
    pub(crate) fn table(path: KeyPath, base: &'a Path) -> Self {
        Self {
            path,
            base,
            what: "",
        }
    }

    /// One key of this table.
    pub(crate) fn key(&self, key: &str, what: &'static str) -> Self {
        Self {
            path: self.path.key(key),
            base: self.base,
            what,
        }
    }
}

/// How one kind of setting is read, checked and shown. Implemented by the
/// small codec values in `codec.rs` (`Count { default, min, max }`), which
/// carry the default and bounds; `T` is the model field's type.
pub(crate) trait Codec<T> {
    /// What serde reads from the file for this key.
    type Raw: DeserializeOwned + Shaped;

    /// Check the written value, or the default when the key is absent.
    fn read(&self, written: Option<Self::Raw>, at: &At<'_>) -> Result<T, Problem>;

    /// The value as the live-diff line shows it.
    fn show(&self, value: &T) -> String;

    /// The default as written in config.toml (`65536`, `"plugins"`), or
    /// `None` for a key that has none (absent means "not set").
    #[cfg_attr(not(test), allow(dead_code, reason = "read through `Decl`, by tests"))]
    fn default_toml(&self) -> Option<String>;

    /// The live-diff line for a change of `name` (`limits.send_queue`);
    /// `owner` is the table's name in the line (`limits`, `module echo`).
    fn change(&self, name: &str, owner: &str, old: &T, new: &T) -> String {
        let _ = owner;
        format!("{name} {} → {}", self.show(old), self.show(new))
    }

    /// The accepted range of a number, for tests.
    #[cfg_attr(not(test), allow(dead_code, reason = "read through `Decl`, by tests"))]
    fn bounds(&self) -> Option<(u64, u64)> {
        None
    }
}

/// One declared setting, as data, for the tests that check config.toml and
/// the bounds against the declarations (the host itself reads settings
/// through the generated structs).
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decl {
    /// The key in its table (`send_queue`).
    pub(crate) key: &'static str,
    /// The default as written in config.toml, see [`Codec::default_toml`].
    pub(crate) default_toml: fn() -> Option<String>,
    /// The accepted range of a number.
    pub(crate) bounds: fn() -> Option<(u64, u64)>,
}

/// A raw table read key by key: declared keys are taken, the rest go to
/// [`Take::other`], which ignores them unless the table keeps them (a
/// module's own keys). Unknown keys were reported before serde ran (see
/// `shape.rs`), so ignoring is safe.
pub(crate) trait Take: Default {
    /// Shown in serde's "expected struct …" when the value is not a table.
    const NAME: &'static str;

    /// Read `key`'s value if it is one of ours; `false` if it is not.
    fn take<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;

    /// A key [`Take::take`] declined.
    fn other<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error> {
        let _ = key;
        map.next_value::<IgnoredAny>().map(|_| ())
    }
}

/// `Deserialize` for a [`Take`] table.
pub(crate) fn take_all<'de, D: Deserializer<'de>, T: Take>(d: D) -> Result<T, D::Error> {
    struct TableVisitor<T>(PhantomData<T>);
    impl<'de, T: Take> Visitor<'de> for TableVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "struct {}", T::NAME)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut out = T::default();
            while let Some(key) = map.next_key::<String>()? {
                if !out.take(&key, &mut map)? {
                    out.other(key, &mut map)?;
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(TableVisitor(PhantomData))
}

/// Declare one table of settings; see the module docs for an entry's shape.
///
/// Generates the model struct (`pub`, with `extra` fields the caller fills
/// in), the raw struct (`Option` of each codec's raw type, read with
/// [`Take`]), its [`Field`](super::shape::Field)s for the key check, the
/// [`Decl`]s, `read` (raw → model, with defaults and bounds), and
/// `describe`/`restart_required` for the live diff.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, table $table:literal, raw $raw:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident: $ty:ty = $key:ident,
                    $codec:ident { $($cf:ident: $cv:expr),* $(,)? }, $apply:ident, $what:literal;
            )*
        }
        $(extra { $( $(#[$emeta:meta])* $efield:ident: $ety:ty ),* $(,)? })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $(
                #[doc = concat!("`", stringify!($key), "`: ", $what, ".")]
                $(#[$fmeta])*
                pub $field: $ty,
            )*
            $($( $(#[$emeta])* pub $efield: $ety, )*)?
        }

        #[doc = concat!("`[", $table, "]` as written: every key optional.")]
        #[derive(Debug, Default)]
        pub(crate) struct $raw {
            $( $key: Option<<$codec as $crate::config::declare::Codec<$ty>>::Raw>, )*
        }

        impl $raw {
            /// The keys of this table, for the key check.
            pub(crate) const FIELDS: &'static [$crate::config::shape::Field] = &[$(
                $crate::config::shape::Field {
                    key: stringify!($key),
                    shape: <<$codec as $crate::config::declare::Codec<$ty>>::Raw
                        as $crate::config::shape::Shaped>::SHAPE,
                    what: $what,
                },
            )*];
        }

        impl $crate::config::shape::Shaped for $raw {
            const SHAPE: $crate::config::shape::Shape =
                $crate::config::shape::Shape::Table(Self::FIELDS);
        }

        impl $crate::config::declare::Take for $raw {
            const NAME: &'static str = stringify!($raw);
            fn take<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                match key {
                    $( stringify!($key) => self.$key = Some(map.next_value()?), )*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }

        impl<'de> serde::Deserialize<'de> for $raw {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::config::declare::take_all(d)
            }
        }

        impl $name {
            /// Every setting of this table, as data.
            #[cfg(test)]
            pub(crate) const DECLS: &'static [$crate::config::declare::Decl] = &[$(
                $crate::config::declare::Decl {
                    key: stringify!($key),
                    default_toml: || $crate::config::declare::Codec::<$ty>::default_toml(
                        &$codec { $($cf: $cv),* },
                    ),
                    bounds: || $crate::config::declare::Codec::<$ty>::bounds(
                        &$codec { $($cf: $cv),* },
                    ),
                },
            )*];

            /// Check what was written (defaults where absent) and build the
            /// table; `extra` fields start as their `Default`.
            pub(crate) fn read(
                raw: $raw,
                at: &$crate::config::declare::At<'_>,
            ) -> Result<Self, $crate::config::error::Problem> {
                Ok(Self {
                    $(
                        $field: $crate::config::declare::Codec::<$ty>::read(
                            &$codec { $($cf: $cv),* },
                            raw.$key,
                            &at.key(stringify!($key), $what),
                        )?,
                    )*
                    $($( $efield: Default::default(), )*)?
                })
            }

            /// One line per changed setting, in declaration order:
            /// `{owner}{sep}{key} {old} → {new}`, noting a needed restart.
            pub(crate) fn describe(
                old: &Self,
                new: &Self,
                owner: &str,
                sep: &str,
                out: &mut Vec<String>,
            ) {
                $(
                    if old.$field != new.$field {
                        let name = format!("{owner}{sep}{}", stringify!($key));
                        let mut line = $crate::config::declare::Codec::<$ty>::change(
                            &$codec { $($cf: $cv),* },
                            &name,
                            owner,
                            &old.$field,
                            &new.$field,
                        );
                        if $crate::config::declare::Apply::$apply
                            == $crate::config::declare::Apply::Restart
                        {
                            line.push_str(" (takes effect after a restart)");
                        }
                        out.push(line);
                    }
                )*
            }

            /// The changed settings that need a restart, by full name.
            #[allow(dead_code, reason = "not called for tables whose settings all apply live")]
            pub(crate) fn restart_required(old: &Self, new: &Self, out: &mut Vec<&'static str>) {
                $(
                    if $crate::config::declare::Apply::$apply
                        == $crate::config::declare::Apply::Restart
                        && old.$field != new.$field
                    {
                        out.push(concat!($table, ".", stringify!($key)));
                    }
                )*
            }
        }
    };
}
pub(crate) use section;

/// A hand-written raw struct (serde derive) that also lists its keys as
/// [`Field`](super::shape::Field)s, so the key check knows them from the
/// struct itself. For tables that are structure rather than settings
/// (`[[auth.tokens]]`, `[auth.jwt]`).
macro_rules! keyed {
    (
        $(#[$meta:meta])*
        $vis:vis struct $raw:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        $vis struct $raw {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $raw {
            /// The keys of this table, for the key check.
            pub(crate) const FIELDS: &'static [$crate::config::shape::Field] = &[$(
                $crate::config::shape::Field {
                    key: stringify!($field),
                    shape: <$ty as $crate::config::shape::Shaped>::SHAPE,
                    what: "",
                },
            )*];
        }

        impl $crate::config::shape::Shaped for $raw {
            const SHAPE: $crate::config::shape::Shape =
                $crate::config::shape::Shape::Table(Self::FIELDS);
        }
    };
}
pub(crate) use keyed;
