//! The `caruso` command line: `--check-config` on the shipped default config and on a
//! broken one (the error names the file and the key), `--help`.

use std::fs;
use std::process::Command;

use caruso_e2e::*;

#[test]
fn default_config_checks_out() {
    let cfg = workspace_root().join("config/caruso.toml");
    let out = Command::new(server_binary())
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .expect("run caruso");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "config/caruso.toml must be valid:\n{text}"
    );
    assert!(text.contains("valid"), "{text}");
}

#[test]
fn broken_config_names_file_and_key() {
    let dir = TempDir::new("badcfg");
    let path = dir.path().join("bad.toml");
    fs::write(&path, "[sip]\nudp = \"not-an-address\"\n").expect("write");
    let out = Command::new(server_binary())
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .expect("run caruso");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad address must be rejected");
    assert!(err.contains("bad.toml"), "error must name the file: {err}");
    assert!(err.contains("sip.udp"), "error must name the key: {err}");
}

#[test]
fn a_bad_api_token_names_file_and_key_but_not_the_token() {
    let dir = TempDir::new("badtoken");
    let path = dir.path().join("tokens.toml");
    fs::write(
        &path,
        "[[api.tokens]]\nname = \"a\"\ntoken = \"same-secret\"\nrole = \"admin\"\n\
         [[api.tokens]]\nname = \"b\"\ntoken = \"same-secret\"\nrole = \"supervisor\"\n",
    )
    .expect("write");
    let out = Command::new(server_binary())
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .expect("run caruso");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a duplicate token must be rejected");
    assert!(
        err.contains("tokens.toml"),
        "error must name the file: {err}"
    );
    assert!(
        err.contains("api.tokens[1].token"),
        "error must name the key: {err}"
    );
    assert!(!err.contains("same-secret"), "the token is echoed: {err}");
}

#[test]
fn help_lists_the_options() {
    let out = Command::new(server_binary())
        .arg("--help")
        .output()
        .expect("run caruso");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("--config") && text.contains("--check-config"),
        "{text}"
    );
}
