//! The store contract ([`pam_mfa_tests::contract`]) run against every
//! backend: what the module and mfa-ctl rely on holds for this server's
//! files and for a PostgreSQL database alike. PostgreSQL is a real, private
//! server (one per test process, a fresh database per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_mfa_tests::contract_tests;

/// The file store: a temp folder per test.
mod files {
    use super::contract_tests;
    use pam_mfa::config::Config;
    use pam_mfa::store::{ExistingFolder, Store, StoreError};

    fn at(root: &std::path::Path) -> Store {
        Store::new(
            &Config {
                store: root.to_path_buf(),
                ..Config::default()
            },
            None,
        )
    }

    fn fresh() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = at(&dir.path().join("store"));
        store.init(ExistingFolder::Refuse).unwrap();
        (dir, store)
    }

    fn missing() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = at(&dir.path().join("store"));
        (dir, store)
    }

    contract_tests!(fresh, missing);

    /// Beyond the contract's "an error": the file store says which part of
    /// it is missing, so the admin knows to mount it or run init.
    #[test]
    fn missing_folder_says_missing() {
        let (_dir, store) = missing();
        assert!(matches!(store.check_ready(), Err(StoreError::Missing { .. })));
    }
}

/// PostgreSQL: a fresh database of the process's shared cluster per test,
/// set up as `mfa-ctl store init` does, used as the admin role.
mod postgres {
    use super::contract_tests;
    use pam_mfa::config::Config;
    use pam_mfa::store::backend::Backend;
    use pam_mfa::store::pg::PgStore;
    use pam_mfa::store::{ExistingFolder, StoreError};
    use pam_mfa_tests::pg::{PgCluster, PgDatabase, Role, free_port};

    fn config(db: &PgDatabase<'_>, url: &str) -> Config {
        Config::parse(&db.config_toml_with_url(Role::Admin, url))
            .unwrap_or_else(|(line, e)| panic!("config line {line:?}: {e}"))
    }

    fn fresh() -> (PgDatabase<'static>, PgStore) {
        let db = PgCluster::shared().create_database("contract");
        let store = PgStore::open(&config(&db, &db.socket_url(Role::Admin)), None).unwrap();
        store.init(ExistingFolder::Refuse).unwrap();
        (db, store)
    }

    /// A database out of reach: a port nothing listens on. It must be an
    /// error from every call, never an empty store.
    fn missing() -> (PgDatabase<'static>, PgStore) {
        let db = PgCluster::shared().create_database("contract_missing");
        let url = format!(
            "postgresql://{}@127.0.0.1:{}/{}?sslmode=verify-full&sslrootcert={}",
            Role::Admin.name(),
            free_port(),
            db.name(),
            db.ca_param()
        );
        let store = PgStore::open(&config(&db, &url), None).unwrap();
        (db, store)
    }

    contract_tests!(fresh, missing);

    /// Beyond the contract's "an error": a database out of reach says so.
    #[test]
    fn missing_database_says_unreachable() {
        let (_db, store) = missing();
        let err = store.check_ready().unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    }

    /// A database that is there but was never set up (no schema: the
    /// files' folder without its marker) is not an empty store either.
    #[test]
    fn database_without_schema_is_an_error() {
        let db = PgCluster::shared().create_database("contract_no_schema");
        let store = PgStore::open(&config(&db, &db.socket_url(Role::Admin)), None).unwrap();
        pam_mfa_tests::contract::missing_store_is_an_error(&store);
    }
}
