#!/usr/bin/env bash
# Install what the test suite needs, idempotently.
#
# Why a script: the integration tests start real servers (Dovecot, PostgreSQL)
# and OCR faxes with tesseract, so a fresh machine or CI image needs the same
# system packages every time, and nobody should have to remember the list.
#
#   - as root: apt-get installs only what is missing (one `apt-get update`);
#     packaged services the install starts are stopped again -- the tests
#     start their own throw-away servers on free ports.
#   - not root: prints what to install and carries on (those tests skip
#     locally; with CI=true they fail instead).
#   - always: .venv with `pip install -e '.[test]'`, redone only when
#     pyproject.toml changed.
set -euo pipefail

cd "$(dirname "$0")/.."
repo_root=$(pwd)

say() { printf 'install-test-deps: %s\n' "$*"; }

# ------------------------------------------------------------ system packages

have_dovecot() { command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; }

have_postgres() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] && return 0
    done
    command -v initdb >/dev/null 2>&1
}

have_tesseract() { command -v tesseract >/dev/null 2>&1; }

have_tesseract_lang() {
    have_tesseract && tesseract --list-langs 2>/dev/null | grep -qx "$1"
}

have_cjk_font() {
    if command -v fc-list >/dev/null 2>&1; then
        fc-list 2>/dev/null | grep -qiE 'wqy|noto (sans|serif) cjk' && return 0
    fi
    ls /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc \
       /usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc >/dev/null 2>&1
}

missing=()
have_dovecot || missing+=(dovecot-imapd)
have_postgres || missing+=(postgresql)
have_tesseract || missing+=(tesseract-ocr)
have_tesseract_lang eng || missing+=(tesseract-ocr-eng)
have_tesseract_lang chi_sim || missing+=(tesseract-ocr-chi-sim)
have_tesseract_lang chi_tra || missing+=(tesseract-ocr-chi-tra)
have_cjk_font || missing+=(fonts-wqy-zenhei)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The HTML monthly report is checked in a real headless browser.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

# Stop a packaged service that the install just started.  Only the system
# instances (pid files under /run) are touched, never the throw-away servers
# of a test run that may be going on in parallel.
stop_packaged_services() {
    local pid
    if [ -s /run/dovecot/master.pid ] && pid=$(cat /run/dovecot/master.pid) \
        && kill -0 "$pid" 2>/dev/null; then
        say "stopping the packaged dovecot service (pid $pid)"
        kill "$pid" || true
    fi
    if command -v pg_lsclusters >/dev/null 2>&1; then
        # Columns: Ver Cluster Port Status ...
        pg_lsclusters --no-header 2>/dev/null | while read -r ver cluster _port status _rest; do
            case "$status" in
                online*)
                    say "stopping the packaged PostgreSQL cluster $ver/$cluster"
                    pg_ctlcluster "$ver" "$cluster" stop || true
                    ;;
            esac
        done
    fi
    # Keep them from coming back at boot on machines with systemd.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now dovecot.service postgresql.service >/dev/null 2>&1 || true
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    say "system packages present (dovecot, postgresql, tesseract eng/chi_sim/chi_tra, CJK font, chromium)"
elif [ "$(id -u)" -eq 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    stop_packaged_services
    say "installed: ${missing[*]}"
else
    say "NOT ROOT: missing system packages: ${missing[*]}"
    say "  install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    say "  (or run this script as root). Continuing: the tests that need them will skip."
fi

# ------------------------------------------------------------------ virtualenv

venv="$repo_root/.venv"
stamp="$venv/.casegate-test-deps"
if [ ! -e "$venv/pyvenv.cfg" ]; then
    say "creating .venv"
    python3 -m venv "$venv"
elif ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    # E.g. created by another user whose interpreter we cannot reach, or the
    # base Python was removed/upgraded.
    say "ERROR: .venv exists but $venv/bin/python does not run; remove .venv and retry"
    exit 1
fi

# Reinstall only when the declared dependencies changed: a pip run per test
# invocation would cost seconds and need the package index every time.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import casegate.daemon, pytest' >/dev/null 2>&1; then
    say ".venv up to date"
else
    say "installing casegate[test] into .venv (editable)"
    "$venv/bin/pip" install -q -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
    say ".venv ready"
fi
