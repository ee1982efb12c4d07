//! `mfa-ctl doctor`: checks a setup (configuration, store, PAM service files,
//! Dovecot, clock) and says what is wrong and what to do.
