//! pam_mfa: a TOTP second factor for mail logins through PAM.
//!
//! This crate is both the PAM module (`pam_mfa.so`, see [`ffi`] and
//! [`module`]) and the library `mfa-ctl` is built on, so the store, the
//! policy and the verification exist once. Where to look:
//!
//! | question | module |
//! |---|---|
//! | accept this login? | [`decide`] |
//! | replay check | [`totp`] (`Generator::check`) |
//! | rate limit / lock-out | [`lockout`] |
//! | password+code splitting | [`split`] |
//! | required/optional/disabled | [`policy`] |
//! | codes by text message: numbers, limits | [`sms`] |
//! | running the delivery command | [`deliver`] |
//! | what any store must do | [`store::backend`] |
//! | files, locking, atomic writes | [`store`] |
//! | PAM entry points, all `unsafe` | [`ffi`] ([`ffi::pam`], [`ffi::sys`]) |
//! | the PAM roles, in-process tests | [`module`] |
//! | what mfa-ctl does | [`admin`] |
//! | reading google-authenticator / pam_oath files | [`import`] |
//! | opening them without following links | [`import_file`] |
//! | checking a setup (`mfa-ctl doctor`) | [`doctor`] |

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod app_password;
pub mod args;
pub mod clock;
pub mod config;
pub mod decide;
pub mod deliver;
pub mod doctor;
pub mod duration;
pub mod ffi;
pub mod import;
pub mod import_file;
pub mod lockout;
pub mod log;
pub mod mailbox;
pub mod module;
pub mod net;
pub mod pgurl;
pub mod policy;
pub mod recovery;
pub mod seal;
pub mod secret;
pub mod sms;
pub mod split;
pub mod store;
pub mod text;
pub mod totp;
pub mod webmail;
