//! Planning and running: the validated graph ([`graph`]), dependency counting and the ready
//! queue ([`ready`]), the frame engine that runs plans with their bodies ([`engine`]), the
//! work-stealing worker pool ([`pool`]) and the Python class tying them together
//! ([`plan`]).

pub mod engine;
pub mod graph;
pub mod plan;
pub mod pool;
pub mod ready;

pub use plan::Plan;
