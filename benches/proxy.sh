#!/usr/bin/env bash
# The proxy side by side, in one run: wrk against nginx serving a 1 KB file directly, through
# `git ports proxy`, through nginx as a reverse proxy (keep-alive upstream), through Caddy's
# reverse_proxy, and through portless (the npm package, a peer built for this job), at 16 and
# 64 connections, ROUNDS rounds (default 3) with every path measured once per round in turn;
# requests per second, p50 and p99 per round, the ratios and their spread; and the proxy's
# memory when idle. Needs nginx and wrk (Debian's packages), Caddy if it is to be compared
# (`apt-get install caddy`), node/npm, and for portless Node 24 (`NODE24=/path/to/node`);
# a peer that is missing is left out and said so.
#
#   cargo build --release && [ROUNDS=5] benches/proxy.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${ROUNDS:-3}
# GIT_PORTS_BIN: another build to measure (an older one, to compare).
bin="${GIT_PORTS_BIN:-$PWD/target/release/git-ports}"
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for t in nginx wrk curl; do command -v "$t" >/dev/null || { echo "needs $t (apt-get install $t)" >&2; exit 1; }; done

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers may run as another user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export HOME="$work/home" GIT_PORTS_HOME="$work/ports" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME" "$GIT_PORTS_HOME"
git config --global user.name bench && git config --global user.email bench@example.com
up=47611 proxy=47612 portless_port=47613 nproxy=47614 cproxy=47615
git config --global ports.proxyPort "$proxy"

# The repository whose worktree nginx serves.
git init -q -b main "$work/bench" && git -C "$work/bench" commit -q --allow-empty -m init
git -C "$work/bench" config ports.web.range "$up-$up"
git -C "$work/bench" worktree add -q "$work/wt" -b wt
(cd "$work/wt" && "$bin" allocate web >/dev/null)

# nginx: one worker per core, a 1 KB file, no logs.
mkdir -p "$work/www" && head -c 1024 /dev/zero | tr '\0' x > "$work/www/1k.txt"
cat > "$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$up; root $work/www; }
}
EOF
# nginx as a reverse proxy to that server, the way it is usually set up for speed: a process
# of its own with as many workers as git ports proxy has threads, as a proxy would run.
cat > "$work/nginx-proxy.conf" <<EOF
worker_processes 2;
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$nproxy;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
EOF
# Run from the worktree: the proxy forwards only to the worktree's own server.
(cd "$work/wt" && exec nginx -c "$work/nginx.conf" -g 'daemon off;') & pids+=($!)
nginx -c "$work/nginx-proxy.conf" -g 'daemon off;' & pids+=($!)
"$bin" proxy 2>/dev/null & pids+=($!)
proxy_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$up/1k.txt" && curl -sf -o /dev/null -H "Host: wt.bench.localhost" "http://127.0.0.1:$proxy/1k.txt" && break; sleep 0.1; done
curl -sf -o /dev/null -H "Host: wt.bench.localhost" "http://127.0.0.1:$proxy/1k.txt" || { echo "git ports proxy does not route" >&2; exit 1; }
idle_kib=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$nproxy/1k.txt" && break; sleep 0.1; done

have_caddy=no
if command -v caddy >/dev/null; then
  cat > "$work/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://:$cproxy {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$up
}
EOF
  HOME="$work" XDG_DATA_HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" caddy run --config "$work/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$cproxy/1k.txt" && have_caddy=yes && break; sleep 0.1; done
fi

have_portless=no
if [ -n "${NODE24:-}" ] && [ -x "$NODE24" ]; then
  (cd "$work" && npm init -y >/dev/null && npm i -q --no-audit --no-fund portless@0.15.6 >/dev/null 2>&1) || true
  pl="$work/node_modules/portless/dist/cli.js"
  if [ -f "$pl" ]; then
    "$NODE24" "$pl" proxy start --no-tls --port "$portless_port" --skip-trust >/dev/null 2>&1 || true
    "$NODE24" "$pl" alias bench "$up" >/dev/null 2>&1 || true
    for _ in $(seq 50); do curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$portless_port/1k.txt" && have_portless=yes && break; sleep 0.2; done
  fi
fi

# wrk's requests/s, p50 and p99 (in ms).
measure() { # conns host url
  local out
  if [ -n "$2" ]; then out=$(wrk -t2 -c"$1" -d"${secs}s" --latency -H "Host: $2" "$3"); else out=$(wrk -t2 -c"$1" -d"${secs}s" --latency "$3"); fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $(ms "$p50") $(ms "$p99")"
}
ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

# Every path at each connection count, once per round, in turn; then the medians over rounds.
paths=("direct||http://127.0.0.1:$up/1k.txt" "git ports proxy|wt.bench.localhost|http://127.0.0.1:$proxy/1k.txt" "nginx as proxy||http://127.0.0.1:$nproxy/1k.txt")
[ "$have_caddy" = yes ] && paths+=("caddy reverse_proxy||http://127.0.0.1:$cproxy/1k.txt")
[ "$have_portless" = yes ] && paths+=("portless|bench.localhost|http://127.0.0.1:$portless_port/1k.txt")
results="$work/results"
: > "$results"
printf "%-5s %-6s %-22s %12s %9s %9s\n" round conns path "req/s" "p50 ms" "p99 ms"
for r in $(seq "$rounds"); do
  for c in 16 64; do
    for p in "${paths[@]}"; do
      IFS='|' read -r name host url <<<"$p"
      read -r rps p50 p99 < <(measure "$c" "$host" "$url")
      printf "%-5s %-6s %-22s %12s %9s %9s\n" "$r" "$c" "$name" "$rps" "$p50" "$p99"
      printf "%s|%s|%s|%s|%s|%s\n" "$r" "$c" "$name" "$rps" "$p50" "$p99" >> "$results"
    done
  done
done
# Per round, git ports proxy's requests/s over each other path's, and its p99 minus theirs;
# then the median and the range of each over the rounds.
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
data = {(r, c, name): (float(rps), float(p99)) for r, c, name, rps, p50, p99 in rows}
rounds = sorted({row[0] for row in rows}, key=int)
names = [n for n in dict.fromkeys(row[2] for row in rows) if n != "git ports proxy"]
for c in ("16", "64"):
    print(f"\n{c} connections, git ports proxy against each, median (range) over {len(rounds)} rounds:")
    for n in names:
        ratio = [data[(r, c, "git ports proxy")][0] / data[(r, c, n)][0] for r in rounds]
        p99 = [data[(r, c, "git ports proxy")][1] - data[(r, c, n)][1] for r in rounds]
        print(f"  {n:<20} req/s {statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})"
              f"   p99 {statistics.median(p99):+.3f} ms ({min(p99):+.3f} to {max(p99):+.3f})")
PY
echo "git ports proxy idle: $((idle_kib / 1024)) MiB resident ($idle_kib KiB)"
[ "$have_portless" = yes ] || echo "portless left out: set NODE24 to a Node 24 binary (see the README)"
[ "$have_caddy" = yes ] || echo "Caddy left out: not installed (apt-get install caddy)"
if [ "$have_portless" = yes ]; then HOME="$HOME" "$NODE24" "$pl" proxy stop >/dev/null 2>&1 || true; fi
