//! Tests of reading settings.

use super::read::*;
use super::*;

#[test]
fn service_names() {
    for ok in ["web", "storybook", "a1-b2"] {
        assert!(is_service_name(ok), "{ok}");
    }
    for bad in ["", "Web", "1web", "-x", "../x", "we b", "wéb", "web_"] {
        assert!(!is_service_name(bad), "{bad}");
    }
}

/// Every key git-ports reads is documented where people look: the README's table and the
/// man page.
#[test]
fn every_key_is_in_the_readme_and_the_man_page() {
    let readme = include_str!("../../README.md");
    let man = include_str!("../../man/git-ports.1");
    for Row { key, .. } in SETTINGS {
        assert!(
            readme.contains(&format!("`{key}`")) || readme.contains(&format!("{key}`")),
            "README.md does not document {key}"
        );
        assert!(
            man.contains(&format!("\\fB{key}\\fR")),
            "the man page does not document {key}"
        );
    }
    for var in [KEY_RANGE, KEY_ENV, KEY_READY, KEY_LEASE_RANGE, KEY_SCHEME] {
        assert!(
            readme.contains(&format!("`ports.<service>.{var}`")),
            "README.md does not document ports.<service>.{var}"
        );
        assert!(
            man.contains(&format!("\\fIservice\\fR\\fB.{var}")),
            "the man page does not document ports.<service>.{var}"
        );
    }
}

#[test]
fn config_entries_add_and_override() {
    let mut s = Settings::defaults();
    let mut ranges = BTreeMap::new();
    for (k, v) in [
        ("ports.web.range", "8100-8199"),
        ("ports.storybook.range", "6006-6106"),
        ("ports.storybook.env", "STORYBOOK"),
    ] {
        assert!(s.apply(k, v, &mut ranges).is_ok(), "{k}");
    }
    s.add_ranges(ranges);
    assert_eq!(
        s.service("web").map(|x| x.range.to_string()).ok(),
        Some("8100-8199".into())
    );
    assert_eq!(s.known().last().map(String::as_str), Some("storybook"));
    assert_eq!(s.env_name("storybook"), "STORYBOOK");
    assert_eq!(s.env_name("my-svc"), "MY_SVC_PORT");
    let mut ranges = BTreeMap::new();
    assert!(s.apply("ports.x.range", "9000-8000", &mut ranges).is_err());
    assert!(s.apply("ports.X.range", "1-2", &mut ranges).is_err());
    assert!(s.apply("ports.x.env", "A-B", &mut ranges).is_err());
    assert!(
        s.apply("ports.x.env", "$(touch pwned)", &mut ranges)
            .is_err()
    );
}
