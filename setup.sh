#!/usr/bin/env bash
# Set up the kit on this machine, then (optionally) open the lessons or run the tests.
#
#   ./setup.sh            set up only
#   ./setup.sh lab        set up, then open JupyterLab on your own copies of
#                         the lessons (~/kit-lessons, or KIT_LESSONS_DIR)
#   ./setup.sh control-room
#                         set up, then serve the instructor control room
#                         (lessons/control-room.ipynb) alone with Voila, on
#                         http://127.0.0.1:8866/ (this machine only)
#   ./setup.sh hub CLASSFILE
#                         set up, then serve a class on this server with
#                         JupyterHub (as root; the class file names learners
#                         and limits: python -m kit hub example)
#   ./setup.sh test [ARGS...]
#                         set up, then run the test suite (ARGS go to pytest)
#
# Setting up means, in order, and each step is skipped when already done:
#   1. the Debian packages in KIT_DEFAULT_APT_PACKAGES below (apt-get, as root),
#      and for `test` the test tools in KIT_TEST_APT_PACKAGES too;
#   2. a Python virtual environment in .venv with the kit installed in it
#      (pip runs again only when pyproject.toml has changed);
#   3. the guest image (`python -m kit image`; cached, fast the second time);
#   4. for `lab` and plain setup: the readiness checklist (`python -m kit doctor`).
#
# `test` is strict where setting up for the lessons is forgiving: the aarch64
# image and the image with Debian's kernel must build, the image must boot the
# kit's own kernel (unless KIT_KERNEL=debian asks for Debian's on purpose), it
# makes the unprivileged user KIT_TEST_USER that some tests act as (as root),
# and the suite runs with KIT_TESTING_ALL=1 and the plugin tests/skip_policy.py:
# a test that skips then fails, unless README.md names it as skipped on purpose.
#
# Environment variables (all optional):
#   KIT_APT_PACKAGES   space-separated Debian packages to require instead of
#                      the default list (used by the tests of this script)
#   KIT_SKIP_APT=1     skip step 1 (you installed the programs another way)
#   KIT_SKIP_IMAGE=1   skip step 3
#   KIT_SKIP_DOCTOR=1  skip step 4
#   KIT_PYTHON         the Python (>= 3.11, with venv) to build .venv from
#   KIT_KERNEL=debian  guests boot Debian's kernel, not the kit's own; for
#                      `test`, the tests of the kit's kernel then skip
#
# The functions below can be loaded without running anything
# (`source setup.sh`): main only runs when the file is executed.

set -euo pipefail

# The one list of Debian packages the kit needs. Add new ones here (for example
# chromium for the browser tests, qemu-system-arm for the aarch64 guests).
KIT_DEFAULT_APT_PACKAGES=(
    qemu-system-x86   # qemu-system-x86_64: the hypervisor
    qemu-system-arm   # qemu-system-aarch64: the aarch64 guest of lesson 2
    qemu-utils        # qemu-img
    graphviz          # dot, for the diagrams
    busybox-static    # the guest's userland
    qemu-guest-agent  # qemu-ga, copied into the guest
    cpio
    e2fsprogs         # mke2fs: the guest's root disk (kit/rootdisk.py)
    sqlite3           # a small database for the guest's applications
    python3
    python3-venv
    python3-dev
    gcc
    curl
    ca-certificates
    util-linux        # setpriv, for the parent-death signal
    build-essential   # the rest of this block builds the kit's own guest kernel
    bc                # (kit/kernel.py, about 4 min once); without it, guests
    bison             # boot Debian's kernel instead, slower and bigger
    flex
    libelf-dev
    libssl-dev
    xz-utils
    ninja-build       # these two build the guest agent as one static program
    pkg-config        # (kit/guestos/build/agent.py, about a minute once)
    fonts-noto-color-emoji  # the lessons' icons, in a browser on this machine
)

# Installed by `./setup.sh test` only: programs that only tests run.
KIT_TEST_APT_PACKAGES=(
    chromium          # a real browser for the tests of the lessons in JupyterLab
    shellcheck        # tests/test_setup_script.py checks this script with it
    gpg               # tests/guestos/build/test_private_apt.py reads the kit's Debian key (assets/apt/)
)

# Installed by `./setup.sh hub` and `test`: Node.js and npm for JupyterHub's proxy
# (kit/hub/proxy.py), nft for the table that keeps each learner's forwards theirs.
KIT_HUB_APT_PACKAGES=(
    nodejs
    npm
    nftables
)

# The unprivileged user the tests act as, besides root (created by
# `./setup.sh test` run as root; tests/infrastructure/test_limits.py).
KIT_TEST_USER=kit-learner

# The same needs in plain words, for machines without apt.
# Each entry: "program|what provides it".
KIT_PLAIN_NEEDS=(
    "qemu-system-x86_64|QEMU for x86-64 (system emulation), version 7 or later"
    "qemu-img|QEMU's utilities"
    "dot|Graphviz"
    "busybox|a statically linked BusyBox"
    "qemu-ga|the QEMU guest agent"
    "sqlite3|SQLite's command-line shell"
    "cpio|cpio, to pack the guest's initramfs"
    "mke2fs|e2fsprogs, to make the guest's root disk"
    "gcc|a C compiler (for Python packages without a ready-made wheel)"
)

MIN_PYTHON="3.11"
# Debian's own interpreter: the one a fresh Debian 12 has, and the one CI tests.
SYSTEM_PYTHON="${KIT_SYSTEM_PYTHON:-/usr/bin/python3}"

say() { printf '==> %s\n' "$*"; }
warn() { printf '!!! %s\n' "$*" >&2; }
die() {
    printf '\nsetup.sh: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '%s\n' "$line" >&2; done
    exit 1
}

# The folder this script is in, found with shell builtins only.
repo_root() {
    local src="${BASH_SOURCE[0]}" dir
    case "$src" in
        */*) dir="${src%/*}" ;;
        *) dir=. ;;
    esac
    (cd "$dir" && pwd -P)
}

# The Debian packages to require, one a line; with the argument "test", the
# test tools as well (`./setup.sh lab` stays without them).
apt_packages() {
    if [[ -n "${KIT_APT_PACKAGES:-}" ]]; then
        # shellcheck disable=SC2086  # split on purpose: a space-separated list
        printf '%s\n' $KIT_APT_PACKAGES
    else
        printf '%s\n' "${KIT_DEFAULT_APT_PACKAGES[@]}"
        if [[ "${1:-}" == test || "${1:-}" == hub ]]; then
            printf '%s\n' "${KIT_HUB_APT_PACKAGES[@]}"
        fi
        if [[ "${1:-}" == test ]]; then
            printf '%s\n' "${KIT_TEST_APT_PACKAGES[@]}"
        fi
    fi
}

have_apt() {
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1
}

# Print the packages (given as arguments) that dpkg does not have installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == *" ok installed" ]] && continue
        provided_otherwise "$pkg" || printf '%s\n' "$pkg"
    done
}

# Succeed if the program a package stands for is already there from elsewhere:
# Node.js from NodeSource's packages brings its own npm, and conflicts with
# Debian's npm package, which apt then cannot install.
provided_otherwise() {
    case "$1" in
        npm) command -v npm >/dev/null 2>&1 ;;
        nodejs) command -v node >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

# Find a program on PATH or in the sbin folders (qemu-ga lives in /usr/sbin).
find_program() {
    command -v "$1" 2>/dev/null && return 0
    local dir
    for dir in /usr/local/sbin /usr/sbin /sbin; do
        [[ -x "$dir/$1" ]] && { printf '%s\n' "$dir/$1"; return 0; }
    done
    return 1
}

no_apt_help() {
    local need program what missing=()
    for need in "${KIT_PLAIN_NEEDS[@]}"; do
        program="${need%%|*}"
        what="${need#*|}"
        find_program "$program" >/dev/null ||
            missing+=("$(printf '  - %-19s %s' "$program" "$what")")
    done
    pick_python >/dev/null ||
        missing+=("$(printf '  - %-19s %s' python3 "Python $MIN_PYTHON or later, with its venv module")")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    die "this machine has no apt-get, so setup cannot install what the kit needs." \
        "" \
        "Install these with your system's package manager, then run ./setup.sh again:" \
        "${missing[@]}" \
        "" \
        "The kit looks for these programs on PATH (and qemu-ga in /usr/sbin too), so" \
        "if you built one yourself, add its folder to PATH. To use a particular" \
        "Python, set KIT_PYTHON=/path/to/python3. If you are sure everything is" \
        "there, KIT_SKIP_APT=1 ./setup.sh skips this check."
}

step_system_packages() {
    local mode="${1:-setup}"
    if [[ "${KIT_SKIP_APT:-}" == 1 ]]; then
        say "skipping system packages (KIT_SKIP_APT=1)"
        return 0
    fi
    if ! have_apt; then
        say "checking for the programs the kit needs (no apt-get here)"
        no_apt_help
        return 0
    fi
    local wanted=() missing=()
    mapfile -t wanted < <(apt_packages "$mode")
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    if ((${#missing[@]} == 0)); then
        say "system packages: all ${#wanted[@]} installed"
        return 0
    fi
    if ((EUID != 0)); then
        die "some system packages are missing: ${missing[*]}" \
            "" \
            "Install them as root with:" \
            "" \
            "    sudo apt-get install -y --no-install-recommends ${missing[*]}" \
            "" \
            "then run the rest of the setup again as your normal user (./setup.sh, ./setup.sh lab or ./setup.sh test)."
    fi
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Succeed if the Python given as $1 runs and is at least MIN_PYTHON.
python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" >/dev/null 2>&1
}

# Print the Python to build .venv from: KIT_PYTHON if set, else the system's
# own (Debian's /usr/bin/python3, the one the tests run on), else python3 on PATH.
pick_python() {
    local candidate
    if [[ -n "${KIT_PYTHON:-}" ]]; then
        python_ok "$KIT_PYTHON" || { warn "KIT_PYTHON=$KIT_PYTHON is not a Python >= $MIN_PYTHON"; return 1; }
        printf '%s\n' "$KIT_PYTHON"
        return 0
    fi
    for candidate in "$SYSTEM_PYTHON" "$(command -v python3 2>/dev/null || true)"; do
        if [[ -n "$candidate" ]] && python_ok "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

step_venv() {
    local root="$1" venv="$1/.venv" python
    if [[ -x "$venv/bin/python" ]] && python_ok "$venv/bin/python" && venv_matches_kit_python "$venv"; then
        say "Python environment: .venv is there ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
        return 0
    fi
    python="$(pick_python)" || die "no Python $MIN_PYTHON or later was found (tried python3 on PATH and /usr/bin/python3)." \
        "Install one (on Debian 12: apt-get install python3 python3-venv), or set KIT_PYTHON=/path/to/python3."
    if [[ -e "$venv" ]]; then
        say "re-creating .venv with $python (the old one does not work, or was made from another Python)"
        "$python" -m venv --clear "$venv" || die "could not re-create .venv with $python."
    else
        say "creating a Python environment in .venv with $python"
        "$python" -m venv "$venv" || die "could not create .venv with $python." \
            "On Debian, its venv module comes in the package python3-venv."
    fi
}

# Succeed unless KIT_PYTHON asks for another interpreter than the one .venv
# was made from (a .venv made earlier from another Python would otherwise be
# used silently, and the tests would not run on the Python asked for).
venv_matches_kit_python() {
    [[ -n "${KIT_PYTHON:-}" ]] || return 0
    local base wanted
    base="$("$1/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null)" || return 1
    wanted="$(command -v "$KIT_PYTHON" 2>/dev/null || printf '%s' "$KIT_PYTHON")"
    [[ "$(realpath -- "$base" 2>/dev/null)" == "$(realpath -- "$wanted" 2>/dev/null)" ]]
}

# What .venv/.kit-installed holds after a successful install of the extras $2.
install_stamp() {
    local root="$1" extras="$2" sum
    sum="$(sha256sum "$root/pyproject.toml")"
    printf '%s %s [%s]\n' "${sum%% *}" "$root" "$extras"
}

# Install the kit (editable) with the extras $2: "lab" for the learner's
# JupyterLab and Voila, "lab,test" for the tests as well.
step_python_packages() {
    local root="$1" extras="${2:-lab}" stamp_file="$1/.venv/.kit-installed" stamp
    stamp="$(install_stamp "$root" "$extras")"
    if [[ -f "$stamp_file" && "$(<"$stamp_file")" == "$stamp" ]]; then
        say "Python packages: up to date"
        return 0
    fi
    say "installing the kit and its Python packages into .venv (a few minutes the first time)"
    rm -f "$stamp_file"
    (cd "$root" && .venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check -e ".[$extras]") ||
        die "pip could not install the Python packages (see its messages above)."
    printf '%s\n' "$stamp" >"$stamp_file"
}

step_image() {
    local root="$1" mode="${2:-setup}"
    if [[ "${KIT_SKIP_IMAGE:-}" == 1 ]]; then
        say "skipping the guest image (KIT_SKIP_IMAGE=1)"
        return 0
    fi
    say "preparing the guest image (built once, then cached)"
    (cd "$root" && .venv/bin/python -m kit image) ||
        die "the guest image could not be built (see the messages above)."
    # Lesson 2's aarch64 guest: optional for the lessons, so a failure only
    # warns (the lesson then says why it has no aarch64 guest); the tests of
    # that lesson need it.
    if ! (cd "$root" && .venv/bin/python -m kit image --arch aarch64); then
        [[ "$mode" == test ]] &&
            die "the aarch64 guest image could not be built (see above), and the tests need it."
        warn "no aarch64 guest image (see above); lesson 2 will show why."
    fi
    # Lesson 6 boots Debian's kernel beside the kit's own (a second x86 image).
    if ! (cd "$root" && .venv/bin/python -m kit image --kernel debian); then
        [[ "$mode" == test ]] &&
            die "the image with Debian's kernel could not be built (see above), and the tests need it."
        warn "no image with Debian's kernel (see above); lesson 6 will build it when asked."
    fi
}

# For the tests: the guest image must boot the kit's own kernel.  Elsewhere a
# kernel that cannot be built only warns and guests boot Debian's; in the test
# command that fallback would leave the kit's kernel untested while the tests
# pass, so it fails, unless KIT_KERNEL=debian chose Debian's kernel on purpose.
require_kit_kernel() {
    local root="$1" found
    if [[ "${KIT_KERNEL:-}" == debian ]]; then
        say "KIT_KERNEL=debian: the tests run on Debian's kernel, on purpose"
        return 0
    fi
    if [[ "${KIT_SKIP_IMAGE:-}" == 1 ]]; then
        return 0  # no image built here; the tests of the kit's kernel check it
    fi
    found="$(cd "$root" && .venv/bin/python -c '
from kit.guestos import images
image = images.find_image()
print(image.kernel_summary() if image else "no guest image is built")
raise SystemExit(0 if image and image.kernel_source == "kit" else 1)
' 2>&1)" || die "the tests need the kit's own guest kernel, and the guest image has none:" \
        "  $found" \
        "" \
        "Fix what stops the kernel build (python -m kit image --rebuild tries it again)," \
        "or test with Debian's kernel on purpose: KIT_KERNEL=debian ./setup.sh test"
    say "guests boot $found"
}

# For the tests: the unprivileged user they act as, besides root, to check
# what one user's guests and sockets are to another.  A system user with a
# home of its own (its own ~/.cache/kit), made once; only root can make it.
step_test_user() {
    local root="$1"
    if ((EUID != 0)); then
        say "running the tests as $(id -un) (the tests that act as a second user need root)"
        return 0
    fi
    if id -u "$KIT_TEST_USER" >/dev/null 2>&1; then
        say "test user $KIT_TEST_USER: there"
    else
        say "creating the unprivileged user $KIT_TEST_USER for the tests"
        useradd --system --create-home --home-dir "/var/lib/$KIT_TEST_USER" \
            --shell /usr/sbin/nologin --comment "the kit's tests" "$KIT_TEST_USER" ||
            die "could not create the user $KIT_TEST_USER (useradd, from the passwd package)."
    fi
    # The tests' other users (this one, the class hub's learners) run this
    # checkout's .venv: a folder above it that others may not enter (root's
    # own /root, where a newcomer clones) would fail them all.
    open_path_to_others "$root"
}

# Let every user enter the folders above $1 (o+x: open a path they know, not
# list the folder) and read the checkout (o+rX), printing each change.
open_path_to_others() {
    local dir="$1"
    while [[ "$dir" != / ]]; do
        if [[ -d "$dir" ]] && ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$dir"; then
            say "letting other users pass through $dir (o+x), for the tests' second users"
            chmod o+x "$dir"
        fi
        dir="$(dirname "$dir")"
    done
    if ! setpriv --reuid=65534 --regid=65534 --clear-groups \
        test -r "$1/setup.sh" -a -x "$1/.venv/bin/python"; then
        say "letting other users read this checkout (o+rX), for the tests' second users"
        chmod -R o+rX "$1"
    fi
}

step_doctor() {
    local root="$1"
    if [[ "${KIT_SKIP_DOCTOR:-}" == 1 ]]; then
        say "skipping the readiness check (KIT_SKIP_DOCTOR=1)"
        return 0
    fi
    say "checking that the kit is ready"
    if ! (cd "$root" && .venv/bin/python -m kit doctor); then
        warn "the kit is not ready yet: see the checklist above. JupyterLab will still open."
    fi
}

has_display() {
    [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]
}

# The learner's own copies of the lessons (python -m kit lessons): made on
# the first run, never overwritten, so the repository's lessons/ stays as
# shipped and what JupyterLab saves is the learner's.
lessons_folder() {
    printf '%s\n' "${KIT_LESSONS_DIR:-$HOME/kit-lessons}"
}

step_lesson_copies() {
    local root="$1" folder
    folder="$(lessons_folder)"
    (cd "$root" && .venv/bin/python -m kit lessons "$folder") ||
        die "could not copy the lessons into $folder (see above); set KIT_LESSONS_DIR to another folder."
}

# Print, one per line, the arguments for `jupyter lab`, for the user id $2,
# on the learner's copies of the lessons in $3.  Saved lessons keep no output
# of a live widget (kit.lesson.workspace.drop_widget_views), so a lesson
# opened again shows no "model not found".
jupyter_lab_args() {
    local root="$1" uid="$2" folder="${3:-$1/lessons}"
    printf '%s\n' --ip=127.0.0.1 "--ServerApp.root_dir=$folder" \
        "--ContentsManager.pre_save_hook=kit.lesson.workspace.drop_widget_views"
    ((uid == 0)) && printf '%s\n' --allow-root
    has_display || printf '%s\n' --no-browser
    return 0
}

usage() {
    cat <<'EOF'
usage: ./setup.sh            set up the kit
       ./setup.sh lab        set up, then open JupyterLab on your own copies
                             of the lessons (~/kit-lessons)
       ./setup.sh control-room
                             set up, then serve the instructor control room
                             on http://127.0.0.1:8866/ (Voila)
       ./setup.sh hub CLASSFILE
                             set up, then serve a class with JupyterHub on
                             http://127.0.0.1:8000/ (as root; see
                             docs/instructor-guide.md)
       ./setup.sh test [ARGS...]
                             set up, then run the tests (ARGS go to pytest)
EOF
}

main() {
    local mode="${1:-setup}"
    case "$mode" in
        setup | lab | test | control-room | hub) ;;
        -h | --help | help) usage; return 0 ;;
        *) usage >&2; return 2 ;;
    esac
    (($# > 0)) && shift
    if [[ "$mode" != test && "$mode" != hub && $# -gt 0 ]]; then
        usage >&2
        return 2
    fi
    if [[ "$mode" == hub && $# -ne 1 ]]; then
        die "usage: ./setup.sh hub CLASSFILE" \
            "(.venv/bin/python -m kit hub example > class.toml writes one to start from)"
    fi

    local root
    root="$(repo_root)"
    cd "$root"

    step_system_packages "$mode"
    step_venv "$root"
    if [[ "$mode" == test ]]; then
        step_python_packages "$root" lab,test,hub
    elif [[ "$mode" == hub ]]; then
        step_python_packages "$root" lab,hub
    else
        step_python_packages "$root" lab
    fi
    step_image "$root" "$mode"

    case "$mode" in
        setup)
            step_doctor "$root"
            say "setup done. Open the lessons with: ./setup.sh lab"
            ;;
        lab)
            step_doctor "$root"
            step_lesson_copies "$root"
            local args=() folder
            folder="$(lessons_folder)"
            mapfile -t args < <(jupyter_lab_args "$root" "$EUID" "$folder")
            say "opening JupyterLab on your copies of the lessons in $folder (stop it with Ctrl-C)"
            exec "$root/.venv/bin/jupyter" lab "${args[@]}"
            ;;
        control-room)
            # Voila runs the notebook in a kernel of its own and serves only its
            # outputs (no code cells), on 127.0.0.1 alone, behind a token (other
            # users of a shared server could otherwise press its stop buttons);
            # Ctrl-C stops it and its kernel, and with the kernel every guest it
            # started.  Open the URL with ?token=... that Voila prints.
            say "serving the control room on http://127.0.0.1:8866/ (stop it with Ctrl-C)"
            exec "$root/.venv/bin/voila" "$root/lessons/control-room.ipynb" --no-browser \
                --port 8866 --Voila.ip=127.0.0.1 --token
            ;;
        hub)
            # A class on this server (kit/hub): JupyterHub on the class file's address
            # (127.0.0.1:8000 by default), each learner a system user with the class
            # file's limits. As root; Ctrl-C stops the hub, every server and guest.
            say "serving the class of $1 with JupyterHub (stop it with Ctrl-C)"
            exec "$root/.venv/bin/python" -m kit hub serve "$@"
            ;;
        test)
            require_kit_kernel "$root"
            step_test_user "$root"
            say "running the tests"
            export KIT_TESTING_ALL=1
            exec "$root/.venv/bin/python" -m pytest -p tests.skip_policy "$@"
            ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
