#!/usr/bin/env bash
# Workload W1, rudder beside tikv/raft-rs 0.7, in one run: instructions per
# proposal counted with callgrind (baseline with 0 proposals subtracted),
# allocations per proposal for rudder (dhat); rudder's asynchronous-writes
# modes too (raft-rs has no counterpart). Usage: bench/w1-compare.sh [N]
# (default 200000). Needs valgrind; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200000}"
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --locked -p rudder-raft --example w1_count --example w1_allocs >&2
(cd bench/raft-rs-w1 && cargo build --release --locked >&2)
rudder=target/release/examples/w1_count
allocs=target/release/examples/w1_allocs
raftrs=bench/raft-rs-w1/target/release/raft-rs-w1

# Instructions of one run of "$@", as callgrind counts them.
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-8s %-17s %15s %12s\n' impl mode instr/proposal allocs/prop
for mode in pipelined sequential pipelined-async sequential-async; do
  impls="rudder raft-rs"
  case "$mode" in *-async) impls=rudder ;; esac
  for impl in $impls; do
    bin=$rudder; [ "$impl" = raft-rs ] && bin=$raftrs
    base=$(instructions "$bin" "$mode" 0)
    total=$(instructions "$bin" "$mode" "$n")
    per=$(( (total - base) / n ))
    a=-
    if [ "$impl" = rudder ]; then
      a=$("$allocs" "$mode" "$n" | sed -n 's/.*, \([0-9.]*\) allocations\/proposal/\1/p')
    fi
    printf '%-8s %-17s %15s %12s\n' "$impl" "$mode" "$per" "$a"
  done
done
