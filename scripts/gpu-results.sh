# Sourced by scripts/gpu-check.sh and scripts/gpu-profile.sh: where their results go.
#   gpu_results DEFAULT_DIR   sets RESULTS ($OUT when set, else DEFAULT_DIR; made), SUMMARY
#                             (RESULTS/summary.txt, emptied) and T0 (the start, in seconds), and
#                             runs pack_logs at exit.
# say TEXT: prints TEXT and adds it to the summary. pack_logs: with $OUT set (the device tool,
# which brings back at most 8 files from $OUT) and more than 7 files there, packs them all into
# $OUT/logs.tar.gz and leaves it beside summary.txt.
gpu_results() {
  RESULTS=${OUT:-$1}
  mkdir -p "$RESULTS"
  SUMMARY=$RESULTS/summary.txt
  : > "$SUMMARY"
  T0=$(date +%s)
  trap pack_logs EXIT
}
say() { echo "$*" | tee -a "$SUMMARY"; }
pack_logs() {
  [ -n "${OUT:-}" ] && [ "$(ls "$RESULTS" | wc -l)" -gt 7 ] || return 0
  local t
  t=$(mktemp) && tar -C "$RESULTS" -czf "$t" . &&
    find "$RESULTS" -mindepth 1 ! -path "$RESULTS/summary.txt" -delete && mv "$t" "$RESULTS/logs.tar.gz"
}
