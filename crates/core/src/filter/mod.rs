//! The filter language: `status = 'active' && (views >= 10 || title ~ 'rust')`.

pub mod ast;
