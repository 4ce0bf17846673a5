//! `wavelift policy draft`: the translator on hand-built rule sets ([`translate`]), the
//! drafts of the firewall fixtures of every format ([`fixtures`], insta snapshots) and the
//! command end to end ([`cli`]).

mod cli;
mod fixtures;
mod support;
mod translate;
