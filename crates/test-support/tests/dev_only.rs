//! rotor-test-support is a dev-dependency only: no crate of the workspace may list it among its
//! normal or build dependencies (it would ship test launchers in the binary).

use std::path::Path;

/// The `[section]` of each line of a Cargo.toml that names `crate_name`, e.g.
/// `dev-dependencies` or `target.'cfg(unix)'.dependencies`.
fn sections_naming(manifest: &str, crate_name: &str) -> Vec<String> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim().to_string();
        } else if let Some(table) = section.strip_suffix(&format!(".{crate_name}")) {
            // `[dependencies.rotor-test-support]`: the dependency's own table.
            found.push(table.to_string());
        } else if line.starts_with(crate_name) {
            found.push(section.clone());
        }
    }
    found
}

#[test]
fn no_workspace_crate_depends_on_test_support_outside_dev_dependencies() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dev_users = 0;
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        for section in sections_naming(&text, "rotor-test-support") {
            assert!(
                section.ends_with("dev-dependencies"),
                "{} lists rotor-test-support under [{section}]: a dev-dependency only",
                manifest.display()
            );
            dev_users += 1;
        }
    }
    // The crates whose tests use it (store, traffic, providers, rotor): the scan saw them.
    assert!(dev_users >= 4, "only {dev_users} dev-dependents found");
}

#[test]
fn sections_are_read_as_cargo_does() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nrotor-test-support.workspace = true\n\n\
                    [dev-dependencies]\nrotor-test-support = { path = \"../t\" }\n\n\
                    [target.'cfg(unix)'.dependencies.rotor-test-support]\npath = \"../t\"\n";
    assert_eq!(
        sections_naming(manifest, "rotor-test-support"),
        [
            "dependencies",
            "dev-dependencies",
            "target.'cfg(unix)'.dependencies"
        ]
    );
}
