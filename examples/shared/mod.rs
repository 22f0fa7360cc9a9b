//! What both example services share, written once: the command line, the stream
//! catalog and the stream route, the connection limits, graceful shutdown, and the
//! embedded demo cluster.

pub mod catalog;
pub mod cli;
pub mod demo;
pub mod generator;
pub mod limit;
pub mod service;
pub mod shutdown;
