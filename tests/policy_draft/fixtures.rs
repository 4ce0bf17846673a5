//! Drafts of the firewall fixtures (`tests/fixtures/policy/`), one snapshot per format.
