#!/usr/bin/env bash
# aifd and aifctl answer --help and --version truthfully, and reject what they do not know.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
bindir=${1:?usage: cli_basics.sh BUILD_DIR VERSION}
version=${2:?usage: cli_basics.sh BUILD_DIR VERSION}

for prog in daemon/aifd aifctl/aifctl; do
	name=${prog##*/}
	assert_eq "$name (aif) $version" "$("$bindir/$prog" --version)" "$name --version"
	assert_eq "$name (aif) $version" "$("$bindir/$prog" -V)" "$name -V"
	help=$("$bindir/$prog" --help)
	assert_match "Usage:" "$help" "$name --help"
	assert_match "--version" "$help" "$name --help lists --version"
	set +e
	err=$("$bindir/$prog" --no-such-option 2>&1)
	rc=$?
	set -e
	assert_eq 2 "$rc" "$name exit code for an unknown option"
	assert_match "Try \"$name --help\"" "$err" "$name hint for an unknown option"
done
echo "cli basics: ok"
