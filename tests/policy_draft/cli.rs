//! `wavelift policy draft` end to end.
