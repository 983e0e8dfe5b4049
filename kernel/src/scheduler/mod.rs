//! Planning and running: the op descriptors that cross from Python ([`ops`]), reading
//! Python arguments ([`extract`]), the validated graph and its dependency counting
//! ([`graph`]), the Python class holding a plan ([`plan`]), the frame engine that runs plans
//! with their bodies through one ready queue ([`engine`]), and the work-stealing worker pool
//! ([`pool`]).

pub mod engine;
pub mod extract;
pub mod graph;
pub mod ops;
pub mod plan;
pub mod pool;

pub use plan::Plan;
