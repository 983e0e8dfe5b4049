//! namu's builtin ops, evaluated through CPython's C API without a Python-level call.
//!
//! Each op has the meaning its Python callable in `namu/runtime/ops.py` has (the reference
//! interpreter uses those); `tests/kernel` checks the two agree.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyList, PyTuple};

use crate::error::KernelError;

/// A builtin op the kernel evaluates natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeOp {
    /// `a + b` (also ONNX `StringConcat`).
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `-a`.
    Neg,
    /// `not a` (a `bool`).
    Not,
    /// `bool(a)`.
    Truth,
    /// `a` itself.
    Identity,
    /// `len(a)`.
    Len,
    /// `a[b]` (also ONNX `SequenceAt`).
    GetItem,
    /// `a and b` on evaluated operands: `a` if it is falsy, else `b`.
    And,
    /// `a or b` on evaluated operands: `a` if it is truthy, else `b`.
    Or,
    /// A rich comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    Compare(CompareOp),
    /// `[*args]`.
    List,
    /// `(*args,)`.
    Tuple,
}

/// The six rich comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Every native op by name (the names `namu/runtime/ops.py` uses): the one table
/// [`NativeOp::from_name`], [`NativeOp::name`] and `namu._kernel.NATIVE_OPS` read.
pub const NATIVE_OPS: [(&str, NativeOp); 19] = [
    ("add", NativeOp::Add),
    ("sub", NativeOp::Sub),
    ("mul", NativeOp::Mul),
    ("neg", NativeOp::Neg),
    ("not", NativeOp::Not),
    ("truth", NativeOp::Truth),
    ("identity", NativeOp::Identity),
    ("len", NativeOp::Len),
    ("getitem", NativeOp::GetItem),
    ("and", NativeOp::And),
    ("or", NativeOp::Or),
    ("eq", NativeOp::Compare(CompareOp::Eq)),
    ("ne", NativeOp::Compare(CompareOp::Ne)),
    ("lt", NativeOp::Compare(CompareOp::Lt)),
    ("le", NativeOp::Compare(CompareOp::Le)),
    ("gt", NativeOp::Compare(CompareOp::Gt)),
    ("ge", NativeOp::Compare(CompareOp::Ge)),
    ("list", NativeOp::List),
    ("tuple", NativeOp::Tuple),
];

impl NativeOp {
    /// The op named `name` in [`NATIVE_OPS`], if it is native.
    pub fn from_name(name: &str) -> Option<NativeOp> {
        NATIVE_OPS.iter().find(|&&(n, _)| n == name).map(|&(_, op)| op)
    }

    /// The op's name in [`NATIVE_OPS`].
    pub fn name(self) -> &'static str {
        // Plans get their native ops from `from_name`, so every op met here is listed.
        NATIVE_OPS.iter().find(|&&(_, op)| op == self).map_or("?", |&(name, _)| name)
    }

    /// How many arguments the op takes (`None`: any number).
    pub fn arity(self) -> Option<usize> {
        match self {
            NativeOp::Neg
            | NativeOp::Not
            | NativeOp::Truth
            | NativeOp::Identity
            | NativeOp::Len => Some(1),
            NativeOp::List | NativeOp::Tuple => None,
            _ => Some(2),
        }
    }

    /// Evaluates the op on `args` (whose length matches [`NativeOp::arity`]).
    pub fn eval<'py>(
        self,
        py: Python<'py>,
        args: &[&Bound<'py, PyAny>],
    ) -> Result<Bound<'py, PyAny>, KernelError> {
        let a = || args[0];
        let b = || args[1];
        let value = match self {
            NativeOp::Add => a().add(b())?,
            NativeOp::Sub => a().sub(b())?,
            NativeOp::Mul => a().mul(b())?,
            NativeOp::Neg => a().neg()?,
            NativeOp::Not => PyBool::new(py, !a().is_truthy()?).to_owned().into_any(),
            NativeOp::Truth => PyBool::new(py, a().is_truthy()?).to_owned().into_any(),
            NativeOp::Identity => a().clone(),
            NativeOp::Len => a().len()?.into_bound_py_any(py)?,
            NativeOp::GetItem => a().get_item(b())?,
            NativeOp::And => {
                if a().is_truthy()? {
                    b().clone()
                } else {
                    a().clone()
                }
            }
            NativeOp::Or => {
                if a().is_truthy()? {
                    a().clone()
                } else {
                    b().clone()
                }
            }
            NativeOp::Compare(op) => {
                let op = match op {
                    CompareOp::Eq => pyo3::basic::CompareOp::Eq,
                    CompareOp::Ne => pyo3::basic::CompareOp::Ne,
                    CompareOp::Lt => pyo3::basic::CompareOp::Lt,
                    CompareOp::Le => pyo3::basic::CompareOp::Le,
                    CompareOp::Gt => pyo3::basic::CompareOp::Gt,
                    CompareOp::Ge => pyo3::basic::CompareOp::Ge,
                };
                a().rich_compare(b(), op)?
            }
            NativeOp::List => PyList::new(py, args.iter().copied())?.into_any(),
            NativeOp::Tuple => PyTuple::new(py, args.iter().copied())?.into_any(),
        };
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ops_map_one_to_one() {
        for &(name, op) in &NATIVE_OPS {
            assert_eq!(NativeOp::from_name(name), Some(op), "{name}");
            assert_eq!(op.name(), name);
        }
        assert_eq!(NativeOp::from_name("pow"), None);
    }
}
