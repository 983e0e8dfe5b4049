//! Calling a node: positional arguments through CPython's vectorcall protocol, and
//! spreading the result over the node's output slots.

pub mod native;

use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::error::KernelError;

/// A reusable vectorcall argument array of borrowed object pointers.
///
/// Element 0 is scratch space so calls can pass `PY_VECTORCALL_ARGUMENTS_OFFSET`, which lets
/// a callee such as a bound method prepend `self` without allocating. One buffer serves a
/// whole run, so calling a node allocates nothing (beyond what the callee does). Pointers
/// never outlive a [`ArgBuffer::call`]: the buffer is cleared before it returns.
pub struct ArgBuffer {
    ptrs: Vec<*mut ffi::PyObject>,
}

impl ArgBuffer {
    /// A buffer for calls of up to `max_arity` arguments without reallocation.
    pub fn new(max_arity: usize) -> Self {
        let mut ptrs = Vec::with_capacity(max_arity.saturating_add(1));
        ptrs.push(ptr::null_mut());
        ArgBuffer { ptrs }
    }

    /// Calls `callable(*args)` via `PyObject_Vectorcall`, without building a tuple.
    ///
    /// `args` yields borrowed references; the first `Err` it yields is returned without
    /// calling. A Python exception raised by the call comes back as
    /// [`KernelError::Python`], holding the exception object unchanged.
    #[inline]
    pub fn call<'a, 'py: 'a>(
        &mut self,
        callable: &Bound<'py, PyAny>,
        args: impl Iterator<Item = Result<&'a Bound<'py, PyAny>, KernelError>>,
    ) -> Result<Bound<'py, PyAny>, KernelError> {
        self.ptrs.truncate(1);
        for arg in args {
            match arg {
                Ok(obj) => self.ptrs.push(obj.as_ptr()),
                Err(err) => {
                    self.ptrs.truncate(1);
                    return Err(err);
                }
            }
        }
        let nargs = self.ptrs.len() - 1;
        // SAFETY: the thread is attached to the interpreter (we hold `Bound<'py, _>`s).
        // `ptrs[1..]` are borrowed pointers to objects kept alive by the references `args`
        // yielded, whose lifetime `'a` covers this call; `ptrs[0]` is writable scratch as
        // PY_VECTORCALL_ARGUMENTS_OFFSET requires. The call returns a new reference or NULL
        // with an exception set, which `from_owned_ptr_or_err` turns into `Err`.
        let result = unsafe {
            let ret = ffi::PyObject_Vectorcall(
                callable.as_ptr(),
                self.ptrs.as_mut_ptr().add(1),
                nargs | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                ptr::null_mut(),
            );
            Bound::from_owned_ptr_or_err(callable.py(), ret)
        };
        self.ptrs.truncate(1);
        Ok(result?)
    }
}

/// Spreads a node's `result` over its `n_outputs` output slots by calling `store(i, value)`
/// for output `i`.
///
/// No outputs: the result is dropped. One output: it is stored as is. `k > 1` outputs: the
/// result must be a tuple (or tuple subclass) or a list of exactly `k` items.
#[inline]
pub fn unpack_outputs<'py>(
    node: usize,
    result: Bound<'py, PyAny>,
    n_outputs: usize,
    mut store: impl FnMut(usize, Bound<'py, PyAny>),
) -> Result<(), KernelError> {
    match n_outputs {
        0 => Ok(()),
        1 => {
            store(0, result);
            Ok(())
        }
        expected => {
            // A list is snapshotted into a tuple first, so dropping values during `store`
            // (which may run arbitrary `__del__` code) cannot change what is unpacked.
            let tuple = match result.cast_into::<PyTuple>() {
                Ok(tuple) => tuple,
                Err(err) => {
                    let result = err.into_inner();
                    match result.cast::<PyList>() {
                        Ok(list) => list_to_tuple(list)?,
                        Err(_) => {
                            return Err(KernelError::OutputNotSequence {
                                node,
                                type_name: type_name(&result),
                                expected,
                            });
                        }
                    }
                }
            };
            let got = tuple.len();
            if got != expected {
                return Err(KernelError::OutputArity { node, got, expected });
            }
            for (i, value) in tuple.iter().enumerate() {
                store(i, value);
            }
            Ok(())
        }
    }
}

/// `tuple(list)`, failing (not panicking, unlike `PyListMethods::to_tuple`) if it cannot be
/// allocated.
fn list_to_tuple<'py>(list: &Bound<'py, PyList>) -> Result<Bound<'py, PyTuple>, KernelError> {
    // SAFETY: attached (we hold a `Bound<'py, _>`); `list` is a valid list. The call returns
    // a new reference to a tuple, or NULL with an exception set.
    let tuple = unsafe {
        Bound::from_owned_ptr_or_err(list.py(), ffi::PyList_AsTuple(list.as_ptr()))?
            .cast_into_unchecked::<PyTuple>()
    };
    Ok(tuple)
}

/// The Python type name of `obj`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|name| name.to_string()).unwrap_or_else(|_| "?".to_owned())
}
