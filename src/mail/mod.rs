//! Mail to the administrator: the message that says a unit failed
//! (`failure`), and handing it to the box's own mail server (`smtp`).

pub mod failure;
pub mod queue;
pub mod smtp;
