#!/usr/bin/env bash
# Blast-radius scan beside ripgrep on the same generated 1 GiB tree (see benches/blast_scan.rs).
# Usage: benches/blast_vs_ripgrep.sh   (env: BLAST_BENCH_BYTES, BLAST_BENCH_RUNS, BLAST_BENCH_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rg >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y ripgrep >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y ripgrep >/dev/null; }
    else
        sudo apt-get install -y ripgrep
    fi
fi
exec cargo bench --bench blast_scan
