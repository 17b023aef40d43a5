//! The one bound-value type of the audit SQL: inserts (`db`) and queries (`query`) build their
//! statements with a list of these and bind them in order.

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// One value bound to a `?`/`$N` parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Float(f64),
}

impl Bind {
    pub(crate) fn text(s: impl Into<String>) -> Bind {
        Bind::Text(Some(s.into()))
    }

    pub(crate) fn int(i: i64) -> Bind {
        Bind::Int(Some(i))
    }
}

/// Binds the values in order.
pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    binds: impl IntoIterator<Item = Bind>,
) -> Query<'q, Any, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
            Bind::Float(f) => q.bind(f),
        };
    }
    q
}
