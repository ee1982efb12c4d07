//! All of the crate's unsafe code, in two parts: [`pam`], the entry points
//! libpam calls and the real PAM handle, and [`sys`], the other libc calls.
//! Nothing outside this folder has an `unsafe` block.

pub mod pam;
pub mod sys;
