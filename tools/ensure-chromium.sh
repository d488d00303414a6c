#!/usr/bin/env bash
# Installs Debian's chromium for the report and dashboard tests, if it is not there already.
# The tests drive it headless on local files only. Needs apt (Debian or Ubuntu) and root (or
# sudo). tox runs it before the tests in the environments that drive Chromium (py311 to py313
# and ibapi10) and before the docs build (its screenshots, tools/doc_images.py). When it cannot install chromium it says why and how to get it; under CI it then
# fails, elsewhere it carries on and those tests are reported skipped with the same advice.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
cannot() {
    echo "ensure-chromium: cannot install chromium: $1." >&2
    echo "ensure-chromium: install Debian's chromium (as root: apt-get install chromium) or" \
        "your system's Chromium package, so that \`chromium\` is on PATH." >&2
    case "${CI:-}" in
        "" | 0 | false | FALSE | False | no)
            echo "ensure-chromium: the tests that render in Chromium will be skipped" \
                "(and the docs show a note in place of their screenshots)." >&2
            exit 0 ;;
        *)
            echo "ensure-chromium: CI is set, so this is an error." >&2
            exit 1 ;;
    esac
}
if ! command -v apt-get >/dev/null 2>&1; then cannot "no apt-get here"; fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then cannot "not root, and no sudo"; fi
    SUDO=(sudo -n)  # never wait for a password
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq || cannot "apt-get update failed"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium \
    || cannot "apt-get install chromium failed"
