#!/usr/bin/env bash
# Checks and unit-tests the Rego of every policy under policies/ with the
# given opa binary:
#
#   policies/test.sh bin/opa
#
# For each policies/<name>/ holding src.rego it runs, from the repository
# root,
#   opa check --strict --v0-compatible --capabilities policies/capabilities.json <name>/src.rego <name>/src_test.rego
#   opa test --v0-compatible --capabilities policies/capabilities.json --ignore '*.yaml' <name>/ -v
# and exits non-zero if any of them fails. `--ignore '*.yaml'` keeps opa
# from loading the template and sample manifests next to the Rego as data
# (they would collide: "merge error").
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 <path to opa>" >&2
	exit 2
fi
opa=$1
if ! command -v "$opa" >/dev/null 2>&1; then
	echo "$0: no opa binary at $1 (build it: cd tools && go build -o ../bin/opa github.com/open-policy-agent/opa)" >&2
	exit 2
fi
case $opa in
*/*) opa=$(cd "$(dirname "$opa")" && pwd)/$(basename "$opa") ;;
esac

cd "$(dirname "$0")/.." || exit 2
caps=policies/capabilities.json
status=0
found=0
for dir in policies/*/; do
	dir=${dir%/}
	[ -f "$dir/src.rego" ] || continue
	found=$((found + 1))
	echo "== $dir"
	tests=("$dir/src.rego")
	[ -f "$dir/src_test.rego" ] && tests+=("$dir/src_test.rego")
	if ! "$opa" check --strict --v0-compatible --capabilities "$caps" "${tests[@]}"; then
		echo "FAIL: opa check $dir" >&2
		status=1
	fi
	if ! "$opa" test --v0-compatible --capabilities "$caps" --ignore '*.yaml' "$dir/" -v; then
		echo "FAIL: opa test $dir" >&2
		status=1
	fi
done
if [ "$found" -eq 0 ]; then
	echo "$0: no policies/*/src.rego found" >&2
	exit 1
fi
exit $status
