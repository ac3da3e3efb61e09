//! `kubectl bpc extcap install | uninstall`: the program copied to where
//! this machine's Wireshark looks for extcaps, as Wireshark itself reports
//! its folders (`tshark -G folders`): the personal folder, or with
//! `--system` the global one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Error;

/// The name the extcap has in Wireshark's folder.
pub const PROGRAM: &str = "kubectl-bpc";

/// `kubectl bpc extcap ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ExtcapCommand {
    /// Copy kubectl-bpc into Wireshark's extcap folder: Wireshark then lists the interface
    /// "Kubernetes workloads (kubectl bpc)" (tshark -i bpc).
    Install(Placement),
    /// Remove it from Wireshark's extcap folder.
    Uninstall(Placement),
}

/// Which folder.
#[derive(Debug, Clone, clap::Args)]
pub struct Placement {
    /// For every user: Wireshark's global extcap folder (needs root), not the personal one.
    #[arg(long)]
    pub system: bool,
    /// The tshark that reports the folders [default: tshark on PATH].
    #[arg(long, value_name = "PATH", default_value = "tshark")]
    pub tshark: PathBuf,
}

/// Wireshark's extcap folders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folders {
    /// The user's.
    pub personal: Option<PathBuf>,
    /// Everyone's.
    pub global: Option<PathBuf>,
}

/// Reads `tshark -G folders`. Wireshark 4.2 and later print "Personal
/// Extcap path" and "Global Extcap path"; 4.0 prints only "Extcap path" (the
/// global one) and looks in `<Personal configuration>/extcap` as well.
pub fn parse_folders(text: &str) -> Folders {
    let mut f = Folders::default();
    let mut personal_config = None;
    for line in text.lines() {
        let Some((label, path)) = line.split_once(':') else { continue };
        let path = PathBuf::from(path.trim());
        match label.trim() {
            "Personal Extcap path" => f.personal = Some(path),
            "Global Extcap path" | "Extcap path" => f.global = Some(path),
            "Personal configuration" => personal_config = Some(path),
            _ => {}
        }
    }
    if f.personal.is_none() {
        f.personal = personal_config.map(|p| p.join("extcap"));
    }
    f
}

fn folder(p: &Placement) -> Result<PathBuf, Error> {
    let out = std::process::Command::new(&p.tshark).args(["-G", "folders"]).output().map_err(|e| {
        Error::Config(format!(
            "cannot ask Wireshark for its folders ({} -G folders: {e}): install tshark",
            p.tshark.display()
        ))
    })?;
    let folders = parse_folders(&String::from_utf8_lossy(&out.stdout));
    let (dir, which) = if p.system { (folders.global, "global") } else { (folders.personal, "personal") };
    dir.ok_or_else(|| {
        Error::Config(format!("{} -G folders names no {which} extcap folder", p.tshark.display()))
    })
}

/// Copies `program` to `dir/kubectl-bpc` (through a temporary name, so a
/// running Wireshark never sees half a file).
pub fn install_into(program: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let failed =
        |what: &str, e: std::io::Error| Error::Config(format!("cannot {what} in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| failed("create the folder", e))?;
    let target = dir.join(PROGRAM);
    let tmp = dir.join(format!(".{PROGRAM}.{}", std::process::id()));
    std::fs::copy(program, &tmp).map_err(|e| failed("copy kubectl-bpc", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| failed("make it executable", e))?;
    std::fs::rename(&tmp, &target).map_err(|e| failed("put kubectl-bpc", e))?;
    Ok(target)
}

/// Runs `extcap install` or `extcap uninstall`.
pub fn run(cmd: &ExtcapCommand) -> Result<ExitCode, Error> {
    match cmd {
        ExtcapCommand::Install(p) => {
            let me = std::env::current_exe()
                .map_err(|e| Error::Config(format!("cannot find this program: {e}")))?;
            let target = install_into(&me, &folder(p)?)?;
            println!("installed {}", target.display());
            println!(
                "Wireshark: restart it, pick \"{}\", set namespace and target in its options",
                super::protocol::INTERFACE_DISPLAY
            );
            println!("tshark:    tshark -i bpc -o extcap.bpc.namespace:NS -o extcap.bpc.target:deploy/NAME");
        }
        ExtcapCommand::Uninstall(p) => {
            let target = folder(p)?.join(PROGRAM);
            match std::fs::remove_file(&target) {
                Ok(()) => println!("removed {}", target.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    println!("not installed: {}", target.display())
                }
                Err(e) => return Err(Error::Config(format!("cannot remove {}: {e}", target.display()))),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireshark_4_0_has_its_personal_extcap_folder_in_its_configuration_folder() {
        let f = parse_folders(
            "Temp:                \t/tmp\nPersonal configuration:\t/home/u/.config/wireshark\n\
             Extcap path:         \t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n",
        );
        assert_eq!(f.personal.as_deref(), Some(Path::new("/home/u/.config/wireshark/extcap")));
        assert_eq!(f.global.as_deref(), Some(Path::new("/usr/lib/x86_64-linux-gnu/wireshark/extcap")));
    }

    #[test]
    fn wireshark_4_2_names_both_extcap_folders() {
        let f = parse_folders(
            "Personal configuration:\t/home/u/.config/wireshark\nPersonal Extcap path:\t/home/u/.local/lib/wireshark/extcap\n\
             Global Extcap path:\t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n",
        );
        assert_eq!(f.personal.as_deref(), Some(Path::new("/home/u/.local/lib/wireshark/extcap")));
        assert_eq!(f.global.as_deref(), Some(Path::new("/usr/lib/x86_64-linux-gnu/wireshark/extcap")));
    }

    #[test]
    fn install_puts_an_executable_copy_in_the_folder_it_creates() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"#!/bin/sh\n").unwrap();
        let folder = dir.path().join("a/b/extcap");
        let target = install_into(&src, &folder).unwrap();
        assert_eq!(target, folder.join("kubectl-bpc"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1, "no temporary file left");
    }
}
