//! Planning and running: the validated graph ([`graph`]), dependency counting and the ready
//! queue ([`ready`]), the run loop ([`run`]) and the Python class tying them together
//! ([`plan`]).

pub mod graph;
pub mod plan;
pub mod ready;
pub mod run;

pub use plan::Plan;
