//! Native execution kernel of namu, imported from Python as `namu._kernel`.
//!
//! This file only registers the module's contents. The logic lives in [`scheduler`] (the op
//! descriptors, plan validation and the run loop), [`context`] (copy-on-write value
//! contexts), [`dispatch`] (calling nodes through vectorcall, and the native ops) and
//! [`error`] (the one error type and its mapping to Python exceptions).

pub mod context;
pub mod dispatch;
pub mod error;
pub mod scheduler;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::dispatch::native::NATIVE_OPS;
use crate::scheduler::ops;

/// The `namu._kernel` extension module.
#[pymodule]
fn _kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("NATIVE_OPS", PyTuple::new(m.py(), NATIVE_OPS.iter().map(|&(name, _)| name))?)?;
    m.add_class::<scheduler::Plan>()?;
    m.add_class::<context::Context>()?;
    m.add_class::<scheduler::engine::Sink>()?;
    m.add_class::<ops::Call>()?;
    m.add_class::<ops::Native>()?;
    m.add_class::<ops::Map>()?;
    m.add_class::<ops::If>()?;
    m.add_class::<ops::Loop>()?;
    m.add_class::<ops::Function>()?;
    m.add_class::<ops::Try>()?;
    m.add_class::<ops::Seq>()?;
    m.add_class::<ops::SeqStep>()?;
    Ok(())
}
