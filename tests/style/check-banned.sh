#!/bin/sh
# Fails when project C code calls a function our style bans: they either
# overflow (sprintf, strcpy, strcat, gets), coerce bad input silently (atoi,
# atol, atof, strtol family, sscanf) or keep hidden state (strtok).
# Use snprintf, mlx_buf, mlx_parse_int64 and explicit cursors instead.
root=${1:-.}
cd "$root" || exit 2
pattern='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atoll|atof|strtol|strtoul|strtoll|strtoull|strtod|sscanf|strtok|strncpy)[[:space:]]*\('
hits=$(git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^tests/fuzz/corpus/' |
       xargs grep -nE "$pattern" 2>/dev/null | grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)')
if [ -n "$hits" ]; then
    echo "banned functions used (see tests/style/check-banned.sh for why and what to use):"
    echo "$hits"
    exit 1
fi
echo "no banned functions in $(git ls-files '*.c' '*.h' | wc -l) files"
