#!/usr/bin/env bash
# The proxy side by side, in one run: wrk against nginx serving a 1 KB file directly, through
# `git ports proxy`, and through portless (the npm package, a peer built for this job), at 16
# and 64 connections; requests per second, p50 and p99, and the ratios; and the proxy's
# memory when idle. Needs nginx and wrk (Debian's packages), node/npm, and for portless Node 24
# (`NODE24=/path/to/node`; without it portless is left out and said so).
#
#   cargo build --release && benches/proxy.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin="$PWD/target/release/git-ports"
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
up=47611 proxy=47612 portless_port=47613
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
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
"$bin" proxy 2>/dev/null & pids+=($!)
proxy_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$up/1k.txt" && curl -sf -o /dev/null -H "Host: wt.bench.localhost" "http://127.0.0.1:$proxy/1k.txt" && break; sleep 0.1; done
curl -sf -o /dev/null -H "Host: wt.bench.localhost" "http://127.0.0.1:$proxy/1k.txt" || { echo "git ports proxy does not route" >&2; exit 1; }
idle_kib=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")

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

printf "%-6s %-22s %12s %9s %9s\n" conns path "req/s" "p50 ms" "p99 ms"
for c in 16 64; do
  read -r d_rps d_50 d_99 < <(measure "$c" "" "http://127.0.0.1:$up/1k.txt")
  read -r g_rps g_50 g_99 < <(measure "$c" "wt.bench.localhost" "http://127.0.0.1:$proxy/1k.txt")
  printf "%-6s %-22s %12s %9s %9s\n" "$c" direct "$d_rps" "$d_50" "$d_99"
  printf "%-6s %-22s %12s %9s %9s\n" "$c" "git ports proxy" "$g_rps" "$g_50" "$g_99"
  if [ "$have_portless" = yes ]; then
    read -r p_rps p_50 p_99 < <(measure "$c" "bench.localhost" "http://127.0.0.1:$portless_port/1k.txt")
    printf "%-6s %-22s %12s %9s %9s\n" "$c" portless "$p_rps" "$p_50" "$p_99"
  fi
  awk -v g="$g_rps" -v d="$d_rps" -v g99="$g_99" -v d99="$d_99" -v c="$c" \
    'BEGIN { printf "       ratio to direct %.2fx; p99 added %.3f ms (%s connections)\n", g/d, g99-d99, c }'
  if [ "$have_portless" = yes ]; then
    awk -v g="$g_rps" -v p="$p_rps" 'BEGIN { printf "       ratio to portless %.2fx\n", g/p }'
  fi
done
echo "git ports proxy idle: $((idle_kib / 1024)) MiB resident ($idle_kib KiB)"
[ "$have_portless" = yes ] || echo "portless left out: set NODE24 to a Node 24 binary (see the README)"
if [ "$have_portless" = yes ]; then HOME="$HOME" "$NODE24" "$pl" proxy stop >/dev/null 2>&1 || true; fi
