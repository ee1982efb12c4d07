//! `mfa-ctl`: the admin and user command line of pam_mfa, a thin shell over
//! `pam_mfa::admin` (the same store, policy and code checks as the PAM
//! module). This file holds the exit-code contract other tools script
//! against: 0 done, 1 refused, 2 usage, configuration or I/O error.

mod cli;
mod commands;
mod enroll;
mod error;
mod import;
mod listing;
mod qr;
mod show;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use error::Error;
use pam_mfa::admin::Admin;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help/--version, as documented.
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote what was typed or stored (a mailbox name, a
            // label): never raw to the terminal.
            let message = e.to_string();
            eprintln!("mfa-ctl: {}", pam_mfa::text::escape_controls(&message));
            // After half a streamed listing, an error object would look
            // like part of it: stderr and the exit status say it alone.
            if json && !e.output_started() {
                let error = serde_json::json!({"error": e.kind(), "message": message, "exit_code": e.exit_code()});
                println!("{}", show::Reply::new(String::new(), error).json.as_str());
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// One page per command, like `clap_mangen::generate_to`, but in `section`
/// (which that function cannot set).
fn man_pages(cmd: clap::Command, dir: &std::path::Path, section: &str) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub.clone(), dir, section)?;
    }
    clap_mangen::Man::new(cmd).section(section).generate_to(dir).map(|_| ())
}

/// Runs the command; `Ok` holds the exit status (doctor's 1 is a finding, not an error).
fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mfa-ctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir: None, section } => {
            clap_mangen::Man::new(Cli::command())
                .section(section)
                .render(&mut std::io::stdout())
                .map_err(Error::Output)?;
            Ok(0)
        }
        Command::Man {
            dir: Some(dir),
            section,
        } => {
            let mut cmd = Cli::command().disable_help_subcommand(true);
            cmd.build();
            man_pages(cmd, &dir, &section).map_err(|error| Error::ManPages { dir, error })?;
            Ok(0)
        }
        // Without opening the store: doctor must run, and report, when the
        // configuration or the store is what is broken.
        Command::Doctor(args) => {
            let (reply, code) = commands::doctor(cli.config.as_deref(), &args)?;
            print(&reply, cli.json)?;
            Ok(code)
        }
        Command::Admin(command) => {
            let now = pam_mfa::clock::now().map_err(Error::Clock)?;
            let admin = Admin::open(cli.config.as_deref())?;
            let ui = commands::Ui { json: cli.json };
            let reply = commands::run(&admin, command, &ui, now)?;
            print(&reply, cli.json)?;
            Ok(0)
        }
    }
}

fn print(reply: &show::Reply, json: bool) -> Result<(), Error> {
    if reply.printed {
        return Ok(());
    }
    let io = Error::Output;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", reply.json.as_str()).map_err(io)?;
    } else {
        write!(out, "{}", reply.human.as_str()).map_err(io)?;
    }
    out.flush().map_err(io)
}
