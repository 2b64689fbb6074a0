# bench/lib.sh: helpers shared by the comparison scripts in bench/ (sourced, never run).
#
# - bench_require_packages: installs the Debian packages a benchmark needs, only those missing
#   (one `apt-get update` first, and only when something has to be installed).
# - bench_build_initbox: builds the static musl release binary into /tmp/bench-target (its own
#   Cargo target dir, so it never waits on the lock of the main target/) and exports INITBOX_BIN.
# - bench_start_listener: starts a loopback TCP listener on a free port that accepts and closes
#   connections; it is stopped when the script exits, and stops by itself after a time limit.
# - bench_wait_for_quiet: waits (bounded) until other load on the machine has died down.
# - bench_machine_info / bench_tool_versions: Markdown lines describing the machine and tools
#   (bench_initbox_versions: only the initbox and rustc lines, for the other comparisons).
# - bench_server_tmpdir: a scratch directory for real servers (tmpfs when there is room).
# - bench_on_exit: a command to run when the script exits (e.g. stop the servers it started).
# - bench_run_bg: runs a command in the background and waits for it, so that a signal to the
#   script stops it at once (it gets SIGTERM) instead of after it finishes.
#
# Every target is 127.0.0.1 (BENCH_HOST); nothing here talks to another address.
# Safe under `set -euo pipefail`.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_RESULTS="$BENCH_DIR/results"
readonly BENCH_HOST=127.0.0.1
export BENCH_DIR BENCH_ROOT BENCH_RESULTS BENCH_HOST

BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-/tmp/bench-target}"
BENCH_RUST_TARGET=x86_64-unknown-linux-musl

bench_log() { printf '[bench] %s\n' "$*" >&2; }
bench_die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- clean-up on exit -------------------------------------------------------------------------

BENCH_PIDS=()
BENCH_TMPDIRS=()
BENCH_EXIT_HOOKS=()

bench_cleanup() {
    local pid dir hook
    for pid in "${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for hook in "${BENCH_EXIT_HOOKS[@]+"${BENCH_EXIT_HOOKS[@]}"}"; do
        eval "$hook" || true
    done
    for dir in "${BENCH_TMPDIRS[@]+"${BENCH_TMPDIRS[@]}"}"; do
        rm -rf -- "$dir"
    done
    # Directories made inside $(...) are not in BENCH_TMPDIRS (the array was changed in a
    # subshell); their names carry this shell's pid ($$ is the same in subshells).
    rm -rf -- /tmp/bench."$$".* /dev/shm/bench."$$".*
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A scratch directory removed on exit; its path is printed (also when called as $(bench_tmpdir)).
bench_tmpdir() {
    local dir
    dir="$(mktemp -d "/tmp/bench.$$.XXXXXX")"
    BENCH_TMPDIRS+=("$dir")
    printf '%s\n' "$dir"
}

# bench_on_exit 'COMMAND': runs COMMAND (a shell string) on exit, after the background
# processes are killed and before the scratch directories are removed.
bench_on_exit() {
    BENCH_EXIT_HOOKS+=("$1")
}

# A scratch directory for servers, removed on exit; its path is printed. On /dev/shm when that
# is a tmpfs with at least 1 GiB free (initdb and its copies write tens of MB), else in /tmp.
# Mode 755: servers running as another user (postgres) must reach their files.
bench_server_tmpdir() {
    local parent=/tmp dir free
    if [[ "$(stat -f -c %T /dev/shm 2>/dev/null)" == tmpfs ]]; then
        free="$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')"
        ((${free:-0} >= 1048576)) && parent=/dev/shm
    fi
    dir="$(mktemp -d "$parent/bench.$$.XXXXXX")"
    chmod 755 "$dir"
    BENCH_TMPDIRS+=("$dir")
    printf '%s\n' "$dir"
}

# bench_run_bg COMMAND...: runs COMMAND in the background (killed on exit) and waits for it;
# returns its exit status. Redirections on the call apply to COMMAND.
bench_run_bg() {
    local pid
    "$@" &
    pid=$!
    BENCH_PIDS+=("$pid")
    wait "$pid"
}

# --- packages ---------------------------------------------------------------------------------

BENCH_APT_UPDATED=0

bench_have_package() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# bench_require_packages PKG...: installs those of PKG that are not installed yet.
bench_require_packages() {
    local missing=() pkg sudo=()
    for pkg in "$@"; do
        bench_have_package "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        command -v sudo >/dev/null || bench_die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    if ((BENCH_APT_UPDATED == 0)); then
        bench_log "apt-get update"
        "${sudo[@]+"${sudo[@]}"}" apt-get update -qq
        BENCH_APT_UPDATED=1
    fi
    bench_log "installing: ${missing[*]}"
    "${sudo[@]+"${sudo[@]}"}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- the binary under test --------------------------------------------------------------------

# Builds the static release binary and exports INITBOX_BIN (absolute path).
bench_build_initbox() {
    bench_require_packages musl-tools
    if ! rustup target list --installed | grep -qx "$BENCH_RUST_TARGET"; then
        bench_log "rustup target add $BENCH_RUST_TARGET"
        rustup target add "$BENCH_RUST_TARGET"
    fi
    bench_log "cargo build --release --target $BENCH_RUST_TARGET (CARGO_TARGET_DIR=$BENCH_TARGET_DIR)"
    (cd "$BENCH_ROOT" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" \
        cargo build --quiet --release --target "$BENCH_RUST_TARGET" --bin initbox)
    INITBOX_BIN="$BENCH_TARGET_DIR/$BENCH_RUST_TARGET/release/initbox"
    [[ -x "$INITBOX_BIN" ]] || bench_die "build produced no $INITBOX_BIN"
    export INITBOX_BIN
}

# True when `file` calls the binary static ("statically linked", or "static-pie linked": a
# position-independent executable with no interpreter and no shared libraries).
bench_is_static() {
    file -L "$1" | grep -Eq 'statically linked|static-pie linked'
}

# --- a loopback listener ----------------------------------------------------------------------

# bench_start_listener [SECONDS]: listens on 127.0.0.1 at a free port, accepts and closes every
# connection, and exports BENCH_PORT and BENCH_LISTENER_PID. The listener exits by itself after
# SECONDS (default 3600) and is killed when the script exits.
bench_start_listener() {
    local lifetime="${1:-3600}" dir port="" i
    dir="$(bench_tmpdir)"
    python3 -c '
import socket, sys, time
lifetime = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1024)
s.settimeout(1.0)
print(s.getsockname()[1], flush=True)
end = time.monotonic() + lifetime
while time.monotonic() < end:
    try:
        conn, _ = s.accept()
    except socket.timeout:
        continue
    conn.close()
' "$lifetime" >"$dir/port" &
    BENCH_LISTENER_PID=$!
    BENCH_PIDS+=("$BENCH_LISTENER_PID")
    for ((i = 0; i < 100; i++)); do # at most 10 s
        port="$(head -n1 "$dir/port" 2>/dev/null || true)"
        [[ -n "$port" ]] && break
        kill -0 "$BENCH_LISTENER_PID" 2>/dev/null || bench_die "listener exited early"
        sleep 0.1
    done
    [[ -n "$port" ]] || bench_die "listener did not report its port"
    BENCH_PORT="$port"
    export BENCH_PORT BENCH_LISTENER_PID
    bench_log "listener on $BENCH_HOST:$BENCH_PORT (pid $BENCH_LISTENER_PID)"
}

# --- a quiet moment -----------------------------------------------------------------------------

# Percentage of CPU time spent busy (not idle or iowait) over the next second, all CPUs.
bench_cpu_busy() {
    local busy0 idle0 busy1 idle1
    local sum='/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }'
    read -r busy0 idle0 < <(awk "$sum" /proc/stat)
    sleep 1
    read -r busy1 idle1 < <(awk "$sum" /proc/stat)
    awk -v busy=$((busy1 - busy0)) -v idle=$((idle1 - idle0)) \
        'BEGIN { t = busy + idle; printf "%d\n", t ? 100 * busy / t : 0 }'
}

# bench_wait_for_quiet [MAX_SECONDS]: waits until the machine is at most 10% busy for 3 seconds
# in a row, or MAX_SECONDS (default 60) have passed. Returns 1 if it gave up.
bench_wait_for_quiet() {
    local max="${1:-60}" start=$SECONDS quiet=0 busy
    while ((SECONDS - start < max)); do
        busy="$(bench_cpu_busy)"
        if ((busy <= 10)); then
            quiet=$((quiet + 1))
            ((quiet >= 3)) && return 0
        else
            quiet=0
        fi
    done
    bench_log "machine still busy (${busy:-?}% CPU) after ${max}s; measuring anyway"
    return 1
}

# --- descriptions -----------------------------------------------------------------------------

# Markdown bullet list: CPUs, CPU model, kernel, memory, date (UTC).
bench_machine_info() {
    local model mem
    model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    mem="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576; exit }' /proc/meminfo)"
    printf -- '- CPUs (nproc): %s\n' "$(nproc)"
    printf -- '- CPU model: %s\n' "${model:-unknown}"
    printf -- '- Memory: %s\n' "$mem"
    printf -- '- Kernel: %s\n' "$(uname -srm)"
    printf -- '- Date (UTC): %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')"
}

# Markdown bullet list: the initbox build and the compiler (call after bench_build_initbox).
bench_initbox_versions() {
    local commit
    commit="$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || printf 'no commit')"
    if [[ -n "$(git -C "$BENCH_ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
        commit="$commit, with uncommitted changes"
    fi
    printf -- '- initbox: %s (%s; static %s release build)\n' \
        "$("$INITBOX_BIN" --version 2>/dev/null || printf unknown)" "$commit" "$BENCH_RUST_TARGET"
    printf -- '- rustc: %s\n' "$(rustc --version)"
}

bench_package_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || printf 'not installed'
}

# Markdown bullet list of the versions of the tools compared (call after bench_build_initbox).
bench_tool_versions() {
    bench_initbox_versions
    printf -- '- netcat-openbsd (nc): %s\n' "$(bench_package_version netcat-openbsd)"
    printf -- '- wait-for-it: %s\n' "$(bench_package_version wait-for-it)"
    printf -- '- busybox-static: %s\n' "$(bench_package_version busybox-static)"
    printf -- '- bash: %s\n' "$(bench_package_version bash)"
    printf -- '- hyperfine: %s\n' "$(hyperfine --version 2>/dev/null | awk '{ print $2 }')"
    printf -- '- GNU time: %s\n' "$(bench_package_version time)"
    printf -- '- python3: %s\n' "$(python3 -c 'import platform; print(platform.python_version())')"
}
