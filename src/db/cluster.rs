//! The private PostgreSQL cluster started when `DATABASE_URL` is unset.
//!
//! Data lives in `<data_dir>/pg`; the server listens on a Unix socket inside that
//! directory only (no TCP). A cluster left running by a killed Relevo is adopted,
//! and a stale `postmaster.pid` is cleared, so a restart never fails on it and never
//! starts a second postmaster on the same directory.

use std::{
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sqlx::postgres::PgConnectOptions;

/// Superuser and database name inside the private cluster.
const ROLE: &str = "relevo";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no PostgreSQL server binaries found (looked at RELEVO_PG_BIN, `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin); install them with `apt-get install postgresql` \
         or set DATABASE_URL to an existing database"
    )]
    NoBinaries,
    #[error("data directory path {0:?} is too long for a Unix socket; use a shorter RELEVO_DATA_DIR")]
    PathTooLong(PathBuf),
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error(
        "the `{user}` user, which runs the private Postgres when Relevo runs as root, cannot enter \
         {dir:?}; run `chmod o+x {dir:?}` or set RELEVO_DATA_DIR to a directory it can reach \
         (e.g. /var/lib/relevo)"
    )]
    Unreachable { dir: PathBuf, user: &'static str },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Options that differ between a service cluster and a throwaway test cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Turn off fsync and synchronous commit. Only for test clusters, whose data
    /// does not have to survive a machine crash.
    pub unsafe_fast: bool,
}

/// A running private cluster. `stop` shuts it down if this process owns it.
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<RunAs>,
    owned: bool,
}

impl PrivateCluster {
    /// Initialises (first run) and starts the cluster in `dir/pg`, or adopts one
    /// that is already running there.
    pub fn start(dir: &Path, bin: Option<&Path>, options: &Options) -> Result<Self, Error> {
        let bin = match bin {
            Some(b) => b.to_path_buf(),
            None => find_binaries().ok_or(Error::NoBinaries)?,
        };
        std::fs::create_dir_all(dir)?;
        let data = std::path::absolute(dir.join("pg"))?;
        if data.join(".s.PGSQL.5432").as_os_str().len() > 100 {
            return Err(Error::PathTooLong(data));
        }
        let run_as = unprivileged_user();
        if let Some(user) = &run_as {
            make_reachable(&std::path::absolute(dir)?, user)?;
        }
        let mut cluster = Self {
            bin,
            data,
            run_as,
            owned: true,
        };
        if !cluster.data.join("PG_VERSION").exists() {
            cluster.init()?;
        }
        let owner_file = dir.join("relevo.pid");
        if cluster.is_running()? {
            // Left running by a Relevo that was killed, or shared with a live one.
            cluster.owned = !previous_owner_alive(&owner_file);
            tracing::info!(data = %cluster.data.display(), "reusing running private Postgres");
        } else {
            let stale = cluster.data.join("postmaster.pid");
            if stale.exists() {
                tracing::warn!("removing stale postmaster.pid left by a killed server");
                std::fs::remove_file(stale)?;
            }
            cluster.pg_start(options)?;
        }
        if cluster.owned {
            std::fs::write(&owner_file, std::process::id().to_string())?;
        }
        Ok(cluster)
    }

    /// Connection options for the `relevo` database over the cluster's socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.data)
            .username(ROLE)
            .database(database)
    }

    /// A `postgres://` URL for the given database (for `psql`, `pgbench`, child processes).
    pub fn url(&self, database: &str) -> String {
        // A percent-encoded socket directory as host: understood by sqlx and libpq.
        let host = self.data.to_string_lossy().replace('%', "%25").replace('/', "%2F");
        format!("postgres://{ROLE}@{host}/{database}")
    }

    /// The socket directory, which is also the data directory.
    pub fn socket_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server (fast shutdown) if this process started or adopted it.
    pub fn stop(&self) -> Result<(), Error> {
        if !self.owned {
            return Ok(());
        }
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])?;
        Ok(())
    }

    /// Stops the server immediately, whoever owns it (used by the test harness).
    pub fn stop_immediate(&self) -> Result<(), Error> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])?;
        Ok(())
    }

    fn init(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.data)?;
        std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))?;
        if let Some(user) = self.run_as {
            std::os::unix::fs::chown(&self.data, Some(user.uid), Some(user.gid))?;
        }
        let data = self.data.to_string_lossy().into_owned();
        self.run(
            "initdb",
            &["-D", &data, "-U", ROLE, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"],
        )?;
        // Unix socket in the data directory only: nothing listens on TCP.
        let conf = format!(
            "\n# Relevo private cluster\nlisten_addresses = ''\nunix_socket_directories = '{data}'\n\
             max_connections = 300\nshared_buffers = 128MB\n"
        );
        let path = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&conf);
        std::fs::write(&path, text)?;
        Ok(())
    }

    fn is_running(&self) -> Result<bool, Error> {
        let out = self.command("pg_ctl").args(["status", "-D"]).arg(&self.data).output()?;
        Ok(out.status.success())
    }

    fn pg_start(&self, options: &Options) -> Result<(), Error> {
        let log = self.data.join("server.log");
        let mut opts = String::new();
        if options.unsafe_fast {
            opts.push_str("-c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = log.to_string_lossy().into_owned();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &opts])
            .map_err(|e| match e {
                Error::Command { command, detail } => Error::Command {
                    command,
                    detail: format!("{detail}; server log: {log}"),
                },
                other => other,
            })?;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, Error> {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, Error> {
        let out = self.command(program).args(args).output()?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("{program} {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        // Own process group: a Ctrl-C at the terminal must reach Relevo only, which
        // then drains its work and stops Postgres itself.
        cmd.process_group(0).env_remove("PGDATA").stdin(std::process::Stdio::null());
        if let Some(user) = self.run_as {
            cmd.uid(user.uid).gid(user.gid).current_dir("/");
        }
        cmd
    }
}

/// The user the cluster runs as when Relevo runs as root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    name: &'static str,
    uid: u32,
    gid: u32,
}

/// The cluster's user must traverse every directory down to `dir`. Relevo's
/// own data directory gets the missing search bit (it holds nothing others
/// can read: the token file is 0600); any other blocking directory stops
/// start-up with its name, instead of initdb's bare "Permission denied".
fn make_reachable(dir: &Path, user: &RunAs) -> Result<(), Error> {
    let euid = unsafe { libc::geteuid() }; // SAFETY: no preconditions.
    let meta = std::fs::metadata(dir)?;
    if meta.uid() == euid && !can_enter(&meta, user) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7777 | 0o011))?;
        tracing::info!(dir = %dir.display(), "made the data directory enterable by the Postgres user");
    }
    for ancestor in dir.ancestors() {
        if !can_enter(&std::fs::metadata(ancestor)?, user) {
            return Err(Error::Unreachable { dir: ancestor.to_path_buf(), user: user.name });
        }
    }
    Ok(())
}

fn can_enter(meta: &std::fs::Metadata, user: &RunAs) -> bool {
    let mode = meta.mode();
    if meta.uid() == user.uid {
        mode & 0o100 != 0
    } else if meta.gid() == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// PostgreSQL refuses to run as root; when we are root, run it as `postgres`
/// (created by Debian's package) or `nobody`.
fn unprivileged_user() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for (name, c_name) in [("postgres", c"postgres"), ("nobody", c"nobody")] {
        // SAFETY: getpwnam returns null or a pointer to a static record we copy at once.
        let pw = unsafe { libc::getpwnam(c_name.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null pointer from getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some(RunAs { name, uid, gid });
        }
    }
    None
}

fn previous_owner_alive(owner_file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(owner_file) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid != std::process::id() as i32 && unsafe { libc::kill(pid, 0) } == 0
}

fn find_binaries() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}
