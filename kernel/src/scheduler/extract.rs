//! Reading the Python arguments of `Plan(...)` and of the op descriptors into Rust values,
//! with errors naming where the bad value was ([`Site`]) and what was expected.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::dispatch::type_name;
use crate::error::{KernelError, Site};
use crate::scheduler::plan::Plan;

/// The items of the sequence `obj` (any iterable; a `str` is rejected as it is almost
/// certainly a mistake).
pub fn items<'py>(
    obj: &Bound<'py, PyAny>,
    site: Site,
) -> Result<Vec<Bound<'py, PyAny>>, KernelError> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    if obj.is_instance_of::<PyString>() {
        return Err(expected(site, "a list", obj));
    }
    match obj.try_iter() {
        Ok(iter) => Ok(iter.collect::<PyResult<Vec<_>>>()?),
        Err(_) => Err(expected(site, "a list", obj)),
    }
}

/// The `N` fields of the tuple or list `obj`, which must have exactly `N` items.
pub fn fields<'py, const N: usize>(
    obj: &Bound<'py, PyAny>,
    site: Site,
    what: &str,
) -> Result<[Bound<'py, PyAny>; N], KernelError> {
    let values: Vec<Bound<'py, PyAny>> = if let Ok(tuple) = obj.cast::<PyTuple>() {
        tuple.iter().collect()
    } else if let Ok(list) = obj.cast::<PyList>() {
        list.iter().collect()
    } else {
        return Err(expected(site, what, obj));
    };
    let got = values.len();
    <[Bound<'py, PyAny>; N]>::try_from(values).map_err(|_| KernelError::Malformed {
        site,
        detail: format!("expected {what}, got a {} of length {got}", type_name(obj)),
    })
}

/// The items of `obj` as integers; `entry(i)` names item `i` in messages.
pub fn ints(
    obj: &Bound<'_, PyAny>,
    site: Site,
    entry: impl Fn(usize) -> Site,
) -> Result<Vec<i64>, KernelError> {
    items(obj, site)?.iter().enumerate().map(|(i, item)| int(item, entry(i))).collect()
}

/// `obj` as an `i64` (anything with `__index__`). Too large an integer is a
/// [`KernelError::Malformed`] naming the value, never an overflow panic.
pub fn int(obj: &Bound<'_, PyAny>, site: Site) -> Result<i64, KernelError> {
    match obj.extract::<i64>() {
        Ok(value) => Ok(value),
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(KernelError::Malformed {
                site,
                detail: format!(
                    "{} is out of range",
                    obj.str().map(|s| s.to_string()).unwrap_or_default()
                ),
            })
        }
        Err(_) => Err(expected(site, "an int", obj)),
    }
}

/// A [`KernelError::Malformed`] saying `site` should be `what` but is `obj`'s type.
pub fn expected(site: Site, what: &str, obj: &Bound<'_, PyAny>) -> KernelError {
    KernelError::Malformed { site, detail: format!("expected {what}, got '{}'", type_name(obj)) }
}

/// `obj` as a callable, or `None` for Python's `None`.
pub fn callable_or_none(
    obj: &Bound<'_, PyAny>,
    site: Site,
) -> Result<Option<Py<PyAny>>, KernelError> {
    if obj.is_none() {
        Ok(None)
    } else if obj.is_callable() {
        Ok(Some(obj.clone().unbind()))
    } else {
        Err(expected(site, "a callable or None", obj))
    }
}

/// `obj` as a [`Plan`].
pub fn plan(obj: &Bound<'_, PyAny>, site: Site) -> Result<Py<Plan>, KernelError> {
    obj.cast::<Plan>().map(|p| p.clone().unbind()).map_err(|_| expected(site, "a Plan", obj))
}
