//! `wavelift policy draft`: per-VM policies from the firewall rules that protect the VM.
