//! The states of Lifeboat's long operations, as state machines: each state lists the
//! states it may become, and [`StateMachine::transition`] refuses every other move.
//!
//! The metadata store keeps each state as its text (`as_str`) and reads it back with
//! `from_db`, so the rest of the code handles only these enums. Staying in a state is
//! always allowed, which keeps every step idempotent: a step run again after a crash
//! sets the state it already set.

use std::fmt;

/// A move a state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// What the state belongs to, e.g. "a migration task".
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// The states of one kind of thing, and the moves between them.
pub trait StateMachine: Copy + Eq + fmt::Debug + 'static {
    /// What the states belong to, for errors ("an instance").
    const WHAT: &'static str;

    /// The states this one may become, besides itself.
    fn successors(self) -> &'static [Self];

    /// The stored text of the state.
    fn name(self) -> &'static str;

    /// Whether the state may become `next` (itself included).
    fn can_become(self, next: Self) -> bool {
        self == next || self.successors().contains(&next)
    }

    /// `next`, when the state may become it.
    fn transition(self, next: Self) -> Result<Self, InvalidTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(InvalidTransition {
                what: Self::WHAT,
                from: self.name(),
                to: next.name(),
            })
        }
    }

    /// True when no other state can follow.
    fn is_final(self) -> bool {
        self.successors().is_empty()
    }
}

/// Declares an enum stored as text: `as_str`, `from_db`, `Display`, and serde and
/// (with the `openapi` feature) OpenAPI schemas with the same texts.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $ty:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        // Every text is the variant's name in snake_case (a test checks it), which
        // serde and the OpenAPI schema derive from `rename_all`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        $vis enum $ty {
            $($(#[$vmeta])* $variant),+
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads the form written by [`Self::as_str`], as stored in the metadata store.
            pub fn from_db(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    // The same, with the value `Default` gives.
    ($(#[$meta:meta])* $vis:vis enum $ty:ident default $default:ident { $($body:tt)* }) => {
        text_enum! { $(#[$meta])* $vis enum $ty { $($body)* } }

        impl Default for $ty {
            fn default() -> Self {
                Self::$default
            }
        }
    };
}

/// Implements [`StateMachine`] from a table of successors.
macro_rules! state_machine {
    ($ty:ident, $what:literal, { $($state:ident => [$($next:ident),*]),+ $(,)? }) => {
        impl $crate::state::StateMachine for $ty {
            const WHAT: &'static str = $what;

            fn successors(self) -> &'static [Self] {
                match self { $(Self::$state => &[$(Self::$next),*]),+ }
            }

            fn name(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

pub(crate) use {state_machine, text_enum};
