//! A throwaway Postgres cluster that accepts TLS connections only, with
//! certificates made for it at start-up (by the `openssl` command): the
//! proof that the services reach Postgres over verified TLS and refuse a
//! server whose certificate does not match.
//!
//! The server's certificate names `localhost` only and is signed by a test
//! CA ([`TlsPostgres::ca_file`]); a second CA ([`TlsPostgres::other_ca_file`])
//! signed nothing of it. `pg_hba.conf` trusts `hostssl` on 127.0.0.1 and
//! rejects `hostnossl`, so a connection that works is a TLS one.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use uuid::Uuid;

use crate::process::free_port;

/// A running TLS-only cluster; stopped and deleted on drop.
pub struct TlsPostgres {
    dir: PathBuf,
    pgbin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing of this server.
    pub other_ca_file: PathBuf,
}

impl TlsPostgres {
    /// Makes the certificates, initialises the cluster and starts it.
    pub fn start() -> Self {
        let pgbin = find_pgbin();
        let dir = std::env::temp_dir().join(format!("crm-tls-pg-{}", Uuid::now_v7()));
        fs::create_dir_all(&dir).expect("a temporary directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, crt, subject) = (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN=crm test {ca}"));
            openssl(&dir, &[&["req", "-x509"], &ec[..], &["-keyout", &key, "-out", &crt, "-subj", &subject, "-days", "2"]].concat());
        }
        openssl(&dir, &[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
        fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );

        let data = dir.join("data");
        fs::create_dir_all(&data).expect("data directory");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
        for file in ["server.crt", "server.key"] {
            fs::copy(dir.join(file), dir.join(format!("{file}.pg"))).expect("copy");
        }
        hand_to_postgres(&dir);
        run_as_postgres(
            &pgbin.join("initdb"),
            &["-D", path(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        for file in ["server.crt", "server.key"] {
            fs::rename(dir.join(format!("{file}.pg")), data.join(file)).expect("move into the data directory");
        }
        fs::set_permissions(data.join("server.key"), fs::Permissions::from_mode(0o600)).expect("chmod");
        hand_to_postgres(&dir);
        let port = free_port();
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off",
            path(&dir)
        );
        run_as_postgres(
            &pgbin.join("pg_ctl"),
            &["-D", path(&data), "-l", path(&dir.join("postgres.log")), "-o", &options, "-w", "-t", "30", "start"],
        );
        Self { ca_file: dir.join("ca.crt"), other_ca_file: dir.join("other-ca.crt"), dir, pgbin, port }
    }

    /// The superuser's URL with `host` and `sslmode`.
    pub fn url(&self, host: &str, sslmode: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?sslmode={sslmode}", self.port)
    }

    /// The URL of `role` on `database` at `localhost`, without `sslmode`.
    pub fn role_url(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@localhost:{}/{database}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(&self.pgbin.join("pg_ctl"), &["-D", path(&data), "-m", "immediate", "-w", "stop"]).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs (the openssl package)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Postgres refuses to run as root: as root, the cluster belongs to `postgres`.
fn hand_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown").args(["-R", "postgres:postgres", path(dir)]).status().expect("chown runs");
        assert!(status.success(), "chown to postgres");
    }
}

fn as_postgres(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", path(program)]).args(args).current_dir("/");
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn run_as_postgres(program: &Path, args: &[&str]) {
    let out = as_postgres(program, args).output().expect("the Postgres binary runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest installed server binaries (`CRM_PG_BIN` to choose).
fn find_pgbin() -> PathBuf {
    if let Ok(bin) = std::env::var("CRM_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries in /usr/lib/postgresql (or set CRM_PG_BIN)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    found.pop().expect("initdb and pg_ctl under /usr/lib/postgresql/*/bin")
}
