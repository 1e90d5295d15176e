#!/usr/bin/env bash
# The two commands of the README, on a fresh clone or an old one:
#
#   ./dev.sh run  [pytest options]        set up, then the main job:
#                                         pytest --unlearn-spec specs/tiny.yaml [options]
#   ./dev.sh test [options | paths ...]   set up, then the test suite:
#                                         python -m pytest tests -n 2 -q [options]
#   ./dev.sh setup                        set up only
#
# Setup makes a virtualenv ($VENV, default .venv) with the CPU torch wheel, the project and its
# test extra, GPTQModel's CPU requirements and the example plug-in method, as CI does. It is
# skipped when nothing it installs from has changed since the last setup (a stamp in the venv),
# so a second run starts at once. Options after the command are added to pytest's
# (./dev.sh run -x, ./dev.sh test -k spec); for `test`, arguments that start with a path
# replace the default ones (./dev.sh test tests/spec -x -q).
#
# Environment: VENV (where the venv lives), PYTHON (the interpreter that makes it, python3).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH="torch==2.13.0"          # the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
GPTQMODEL="gptqmodel==7.7.0"   # installed --no-deps: its torch>=2.14.1 pin would pull CUDA

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

# what setup installs from: when none of it changes, setup has nothing to do
stamp() {
  cat dev.sh pyproject.toml requirements/*.txt examples/plugin_method/pyproject.toml \
    | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

setup() {
  local want have pip
  want="$(stamp)"
  have="$(cat "$VENV/.dev-setup" 2>/dev/null || true)"
  if [[ -x "$VENV/bin/python" && "$want" == "$have" ]]; then
    echo "dev.sh: $VENV is set up (delete $VENV/.dev-setup to reinstall)"
    return
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
      echo "dev.sh: unlearnspec needs Python >= 3.10; $PYTHON is $("$PYTHON" -V 2>&1)." \
           "Set PYTHON=python3.11 (or another)." >&2
      exit 2
    }
    echo "dev.sh: creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  echo "dev.sh: installing into $VENV (torch, the project, GPTQModel for the CPU, the example plug-in)"
  pip=("$VENV/bin/python" -m pip install -q)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" "$TORCH"
  "${pip[@]}" -e '.[test]' -c requirements/torch-cpu.txt
  "${pip[@]}" --no-deps "$GPTQMODEL"
  "${pip[@]}" -r requirements/gptq-cpu.txt -c requirements/torch-cpu.txt
  "${pip[@]}" -e examples/plugin_method -c requirements/torch-cpu.txt
  echo "$want" > "$VENV/.dev-setup"
  echo "dev.sh: $VENV is set up"
}

need_browser() {
  [[ "${UNLEARNSPEC_SKIP_BROWSER:-}" == 1 ]] && return
  for name in chromium chromium-browser google-chrome chrome; do
    command -v "$name" >/dev/null 2>&1 && return
  done
  echo "dev.sh: the suite checks the HTML report in headless Chromium, which is not installed." \
       "Install it (apt-get install -y chromium) or run UNLEARNSPEC_SKIP_BROWSER=1 ./dev.sh test" >&2
  exit 2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) setup ;;
  run)
    setup
    # a warm rerun is mostly start-up: keep compiled bytecode between runs (an environment
    # that sets PYTHONDONTWRITEBYTECODE recompiles and assert-rewrites every module each
    # time) and skip hypothesis's pytest plugin, which imports all of hypothesis (~2 s on
    # two busy cores) for a terminal summary that spec items never fill
    PYTHONDONTWRITEBYTECODE= exec "$VENV/bin/python" -m pytest -p no:hypothesispytest \
      --unlearn-spec specs/tiny.yaml "$@"
    ;;
  test)
    need_browser
    setup
    [[ $# -gt 0 && "$1" != -* ]] || set -- tests -n 2 -q "$@"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  -h|--help|help) usage ;;
  *) usage 2 ;;
esac
