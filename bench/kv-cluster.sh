#!/usr/bin/env bash
# Loads a 3-member rudder cluster on loopback (fsync on, data on this
# disk) at 1, 16, 64 and 256 clients with 128-byte values: puts, then
# linearizable gets, each beside the raw fdatasync rate of the same
# directory measured right before it; at 64 clients also lease and stale
# gets, the cost of a read with no Raft round. Bounded: about 20 s per
# client count (40 s at 64) plus the build. See docs/BENCHMARKS.md.
#
#   bench/kv-cluster.sh [seconds-per-run]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
cargo build --release --locked --bin rudder >&2
RUDDER=target/release/rudder
DIR="$(mktemp -d "$PWD/target/kv-bench.XXXXXX")"
PORT=22379
ENDPOINTS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1000)),127.0.0.1:$((PORT + 2000))"

# Writes of 128 bytes with O_DSYNC (each write is a write + fdatasync):
# prints the rate per second.
raw_fdatasync() {
  local out secs
  out="$(dd if=/dev/zero of="$DIR/raw" bs=128 count=2000 oflag=dsync 2>&1 | tail -n 1)"
  secs="$(echo "$out" | sed -E 's/.*copied, ([0-9.]+) s.*/\1/')"
  rm -f "$DIR/raw"
  awk -v s="$secs" 'BEGIN { printf "%.0f", 2000 / s }'
}

RUST_LOG=warn "$RUDDER" demo --data-dir "$DIR/data" --base-port "$PORT" >"$DIR/demo.log" 2>&1 &
DEMO=$!
trap 'kill -INT $DEMO 2>/dev/null; wait $DEMO 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"leader":[1-9]' && break
  sleep 0.1
done

echo "# machine: $(nproc) cores, $(df -T "$DIR" | awk 'NR==2 {print $2 " on " $1}')"
run() { # clients workload consistency
  local raw result
  raw="$(raw_fdatasync)"
  result="$("$RUDDER" bench --endpoints "$ENDPOINTS" --clients "$1" --duration "$SECONDS_PER_RUN" \
    --workload "$2" --consistency "$3" --value-size 128 --keys 10000 --json)"
  echo "{\"raw_fdatasync_per_s\":$raw,\"result\":$result}"
}
for clients in 1 16 64 256; do
  run "$clients" put linearizable
  run "$clients" get linearizable
  if [ "$clients" = 64 ]; then
    # The floor under any read: gets that do no Raft work at all (lease:
    # the leader's state; stale: any member's), beside the linearizable ones.
    run "$clients" get lease
    run "$clients" get stale
  fi
done
