//! Pure evaluation of Kubernetes (Multi)NetworkPolicy semantics (`wavelift policy test`,
//! and the sim network's enforcement).
