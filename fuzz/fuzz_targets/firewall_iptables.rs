#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wavelift::fuzzing::firewall_rules(wavelift::fuzzing::Firewall::Iptables, data);
});
