#!/usr/bin/env bash
# The man pages aifd(8), aifctl(1) and aif-pelog(8): "cmake --install" puts them where man
# looks, with the version filled in; groff renders them without a single warning; and they
# cannot drift from the programs: every --option that aifd --help and aifctl --help print, every
# aifctl command, and every config key of aifd and aifctl (their settings tables) is in the page.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
build=${1:?usage: docs_man.sh BUILD_DIR VERSION}
version=${2:?usage: docs_man.sh BUILD_DIR VERSION}
command -v groff >/dev/null || fail "groff is not installed (Debian package groff-base; tests/install-deps installs it)"

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >"$prefix/install.log" 2>&1 ||
	fail "cmake --install failed: $(cat "$prefix/install.log")"
aifd_page=$prefix/share/man/man8/aifd.8
aifctl_page=$prefix/share/man/man1/aifctl.1
pelog_page=$prefix/share/man/man8/aif-pelog.8

# The page's text as written, with roff's escapes for "-" and fonts undone, so that "\-\-db"
# in the page is found as "--db".
plain() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' "$1"
}

# The tags of a page's entries: the line after each .TP.
entries() {
	plain "$1" | awk '/^\.TP/ { if ((getline line) > 0) print line }'
}

for page in "$aifd_page" "$aifctl_page" "$pelog_page"; do
	name=$(basename "$page")
	[[ -f $page ]] || fail "$name not installed at ${page#"$prefix"/}"
	assert_match "^\\.TH [A-Z-]+ [18] \"\" \"aif $version\"" "$(grep '^\.TH' "$page")" "$name: .TH with the version"
	! grep -n '@[A-Z_]*@' "$page" || fail "$name: a configure placeholder is left"
	warnings=$(groff -man -ww -z "$page" 2>&1) || fail "$name: groff failed: $warnings"
	assert_eq "" "$warnings" "$name: groff -man -ww warnings"
	text=$(groff -man -Tascii -P-cbou "$page" 2>/dev/null)
	for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" FILES EXAMPLES "SEE ALSO"; do
		grep -qx "$section" <<<"$text" || fail "$name: no $section section in the rendered page"
	done
done

# check_mentions PAGE WHAT WORD...: each WORD occurs in PAGE.
check_mentions() {
	local page=$1 what=$2 text word missing=()
	shift 2
	text=$(plain "$page")
	for word in "$@"; do
		grep -qF -- "$word" <<<"$text" || missing+=("$word")
	done
	((${#missing[@]} == 0)) || fail "$(basename "$page"): $what missing from the page: ${missing[*]}"
}

# The long options the program's --help prints (at least 4, or the extraction is broken).
help_options() {
	local opts
	opts=$("$1" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
	(($(wc -l <<<"$opts") >= 4)) || fail "$1 --help: found too few options: $opts"
	echo "$opts"
}

# The keys of a settings table in C: lines such as {"cluster", AIF_SETTING_STRING, ...}.
setting_keys() {
	local keys
	keys=$(grep -oE '^[[:space:]]*\{"[a-z_]+", AIF_SETTING_' "$1" | grep -oE '"[a-z_]+"' | tr -d '"')
	(($(wc -l <<<"$keys") >= 3)) || fail "$1: found too few settings: $keys"
	echo "$keys"
}

mapfile -t aifd_options < <(help_options "$build/daemon/aifd")
mapfile -t aifctl_options < <(help_options "$build/aifctl/aifctl")
check_mentions "$aifd_page" "aifd --help options" "${aifd_options[@]}"
check_mentions "$aifctl_page" "aifctl --help options" "${aifctl_options[@]}"

# aifctl's commands: the first words of the lines under "Commands:" in its --help.
mapfile -t commands < <("$build/aifctl/aifctl" --help |
	sed -n '/^Commands:/,/^$/{/^  [a-z]/{s/^  \([a-z]*\).*/\1/;p}}')
((${#commands[@]} >= 8)) || fail "aifctl --help: found too few commands: ${commands[*]}"
for c in "${commands[@]}"; do
	grep -qE "^\\.BI? \"?$c\\b" <(entries "$aifctl_page") ||
		fail "aifctl.1: command \"$c\" has no entry"
done

# Config keys: each has its own entry, ".BI key " = " value".
for pair in "$aifd_page:$AIF_SRC/daemon/config.c" "$aifctl_page:$AIF_SRC/aifctl/config.c"; do
	page=${pair%%:*}
	while read -r key; do
		grep -qE "^\\.BI $key \" = \"" <(entries "$page") ||
			fail "$(basename "$page"): config key \"$key\" (${pair#*:}) has no entry"
	done < <(setting_keys "${pair#*:}")
done

echo "man pages: ok (${#aifd_options[@]} aifd options, ${#aifctl_options[@]} aifctl options, ${#commands[@]} commands)"
