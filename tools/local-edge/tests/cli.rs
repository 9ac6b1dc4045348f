//! The binary refuses bad setups with a message naming the problem (and, being an
//! integration test, makes `cargo test --workspace` build the binary the e2e tests run).

use std::process::Command;

#[test]
fn a_pkcs8_key_is_refused_with_the_command_that_makes_the_right_one() {
    let dir = std::env::temp_dir().join(format!("local-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_local-edge"))
        .args([
            "--key",
            key.to_str().unwrap(),
            "--web-dir",
            dir.to_str().unwrap(),
        ])
        .env_remove("TABLE")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("genrsa -traditional"), "{stderr}");
}
