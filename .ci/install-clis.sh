#!/usr/bin/env bash
# Install the real claude, codex and gemini CLIs into ./.clis (git-ignored) for the
# end-to-end tests. Versions are pinned: the provider emulator is verified against them.
# Without npm this prints why and exits 0, and the tests that need the CLIs then skip;
# under LLMSUP_REQUIRE_REAL_CLIS=1 (as in .ci/run) it fails instead.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  "@anthropic-ai/claude-code@${LLMSUP_CLAUDE_VERSION:-2.1.197}"
  "@openai/codex@${LLMSUP_CODEX_VERSION:-0.169.0}"
  "@google/gemini-cli@${LLMSUP_GEMINI_VERSION:-0.61.0}"
)
BIN=.clis/node_modules/.bin

if ! command -v npm >/dev/null 2>&1; then
  if [ "${LLMSUP_REQUIRE_REAL_CLIS:-0}" != "0" ]; then
    echo "install-clis: npm not found, and LLMSUP_REQUIRE_REAL_CLIS=1 requires the real CLIs" >&2
    exit 1
  fi
  echo "install-clis: npm not found; the end-to-end tests with the real CLIs will be skipped" >&2
  exit 0
fi
if [ -x "$BIN/claude" ] && [ -x "$BIN/codex" ] && [ -x "$BIN/gemini" ] \
   && [ "$(cat .clis/.installed 2>/dev/null)" = "${PACKAGES[*]}" ]; then
  echo "install-clis: already installed in .clis"
  exit 0
fi
mkdir -p .clis
for try in 1 2; do
  if npm install --prefix .clis --no-audit --no-fund --loglevel=error "${PACKAGES[@]}"; then
    echo "${PACKAGES[*]}" > .clis/.installed
    echo "install-clis: installed ${PACKAGES[*]} in .clis"
    exit 0
  fi
  echo "install-clis: npm install failed (try $try)" >&2
  sleep 2
done
exit 1
