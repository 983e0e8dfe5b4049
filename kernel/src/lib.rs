//! Native execution kernel of namu, imported from Python as `namu._kernel`.
//!
//! This file only registers the module's contents. The logic lives in [`scheduler`] (plan
//! validation and the run loop), [`context`] (copy-on-write value contexts), [`dispatch`] (calling nodes through vectorcall) and
//! [`error`] (the one error type and its mapping to Python exceptions).

pub mod context;
pub mod dispatch;
pub mod error;
pub mod scheduler;

use pyo3::prelude::*;

/// The `namu._kernel` extension module.
#[pymodule]
fn _kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<scheduler::Plan>()?;
    m.add_class::<context::Context>()?;
    m.add_class::<scheduler::engine::Sink>()?;
    Ok(())
}
