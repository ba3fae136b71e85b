//! The image build file (`Containerfile`): no container runtime runs on the test machines, so
//! this checks what can be checked without one — the image copies the binary `cargo build
//! --release -p rotor` makes, with a toolchain the workspace accepts, into a non-root final
//! stage whose default command is `rotor controllers`, as the Helm chart runs it.

use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `major.minor` of a version such as `1.91` or `1.95-bookworm`.
fn minor_version(v: &str) -> (u32, u32) {
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("{v:?} is no version"),
    }
}

#[test]
fn the_image_copies_what_cargo_builds_for_rotor_into_a_non_root_stage() {
    let file = read("Containerfile");
    let lines: Vec<&str> = file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a final stage: {froms:?}");

    // The build stage: the release build of the rotor package, and its binary.
    let text = lines.join("\n");
    assert!(
        text.contains("cargo build --release --locked -p rotor"),
        "{text}"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_rotor"));
    let name = bin
        .file_name()
        .and_then(|n| n.to_str())
        .expect("binary name");
    assert!(
        text.contains(&format!("target/release/{name} ")),
        "copies target/release/{name}"
    );
    let rust = froms[0]
        .split_whitespace()
        .nth(1)
        .and_then(|image| image.rsplit_once(':'))
        .map(|(_, tag)| minor_version(tag))
        .expect("the Rust image has a version tag");
    let workspace = read("Cargo.toml");
    let wanted = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| minor_version(v.trim_matches('"')))
        .expect("the workspace's rust-version");
    assert!(
        rust >= wanted,
        "Rust {rust:?} in the image, the workspace needs {wanted:?}"
    );

    // The final stage: distroless, non-root, `rotor controllers` by default.
    assert!(
        froms[1].contains("distroless") && froms[1].ends_with(":nonroot"),
        "{}",
        froms[1]
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );
    assert!(
        text.contains(r#"ENTRYPOINT ["/usr/local/bin/rotor"]"#),
        "{text}"
    );
    assert!(text.contains(r#"CMD ["controllers"]"#), "{text}");
}
