# shellcheck shell=bash
# shellcheck disable=SC2034 # the SUITE_* arrays are read by the scripts that source this file
# Reads services/suite.tsv, the list of the suite's processes (see its header
# for the columns), for the scripts that start or provision them. Sourced:
#
#   source "$ROOT/scripts/suite.sh"
#   suite_load || exit 1
#
# suite_load fills, in file (= start) order:
#   SUITE_NAMES          every name
#   SUITE_KIND[name]     service | gateway
#   SUITE_PORT[name]     listen port
#   SUITE_DB[name]       database name, "" for none
#   SUITE_PROTOS[name]   proto packages, space-separated, "" for none
#   SUITE_NEEDS[name]    names of the services it calls, space-separated, "" for none
#   SUITE_SMOKE[name]    GET path the gateway routes to it, "" for none
# and fails (status 1, the file and line on stderr) when the file is missing or
# a line is malformed, so that no script starts half a suite from a typo.
#
# suite_names [KIND]     the names (of that kind), one per line, in order
# suite_databases        the names of the entries that have a database, in order

SUITE_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/services/suite.tsv"
SUITE_NAMES=()
declare -gA SUITE_KIND=() SUITE_PORT=() SUITE_DB=() SUITE_PROTOS=() SUITE_NEEDS=() SUITE_SMOKE=()

# A malformed line: names the file, the line and the entry (suite_load's locals).
_suite_bad() { printf 'suite: %s: %s: %s\n' "$where" "$name" "$*" >&2; }

suite_load() {
    local file=$SUITE_FILE line n=0 where name kind port db protos needs smoke extra item
    local -A seen_port=() seen_proto=()
    SUITE_NAMES=()
    SUITE_KIND=() SUITE_PORT=() SUITE_DB=() SUITE_PROTOS=() SUITE_NEEDS=() SUITE_SMOKE=()
    if [[ ! -r $file ]]; then
        printf 'suite: %s not found (the list of the services)\n' "$file" >&2
        return 1
    fi
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        where="$file:$n"
        name="" kind="" port="" db="" protos="" needs="" smoke="" extra=""
        read -r name kind port db protos needs smoke extra <<<"$line"
        if [[ -z $smoke || -n $extra ]]; then
            printf 'suite: %s: want 7 columns (name kind port database protos needs smoke), got: %s\n' "$where" "$line" >&2
            return 1
        fi
        if [[ ! $name =~ ^[a-z][a-z0-9]*$ ]]; then
            _suite_bad "name must match [a-z][a-z0-9]*"
            return 1
        fi
        if [[ -n ${SUITE_KIND[$name]:-} ]]; then
            _suite_bad "listed twice"
            return 1
        fi
        if [[ $kind != service && $kind != gateway ]]; then
            _suite_bad "kind '$kind' is neither service nor gateway"
            return 1
        fi
        if [[ ! $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
            _suite_bad "port '$port' is not a TCP port"
            return 1
        fi
        if [[ -n ${seen_port[$port]:-} ]]; then
            _suite_bad "port $port is ${seen_port[$port]}'s too"
            return 1
        fi
        seen_port[$port]=$name
        [[ $db == - ]] && db=""
        if [[ -n $db && ! $db =~ ^[a-z][a-z0-9_]*$ ]]; then
            _suite_bad "database '$db' must match [a-z][a-z0-9_]*"
            return 1
        fi
        [[ $protos == - ]] && protos=""
        protos="${protos//,/ }"
        for item in $protos; do
            if [[ ! $item =~ ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$ ]]; then
                _suite_bad "'$item' is not a proto package"
                return 1
            fi
            if [[ -n ${seen_proto[$item]:-} ]]; then
                _suite_bad "proto package $item is routed to ${seen_proto[$item]} already"
                return 1
            fi
            seen_proto[$item]=$name
        done
        [[ $needs == - ]] && needs=""
        needs="${needs//,/ }"
        for item in $needs; do
            if [[ ${SUITE_KIND[$item]:-} != service ]]; then
                _suite_bad "needs '$item', which is not a service on an earlier line"
                return 1
            fi
        done
        [[ $smoke == - ]] && smoke=""
        if [[ -n $smoke && $smoke != /* ]]; then
            _suite_bad "smoke path '$smoke' must start with /"
            return 1
        fi
        if [[ -n $protos && -z $smoke ]]; then
            _suite_bad "the gateway routes to it (protos), so it needs a smoke path"
            return 1
        fi
        if [[ $kind == gateway && -n $db$protos$needs$smoke ]]; then
            _suite_bad "a gateway has no database, protos, needs or smoke path (its backends are the services' protos)"
            return 1
        fi
        SUITE_NAMES+=("$name")
        SUITE_KIND[$name]=$kind
        SUITE_PORT[$name]=$port
        SUITE_DB[$name]=$db
        SUITE_PROTOS[$name]=$protos
        SUITE_NEEDS[$name]=$needs
        SUITE_SMOKE[$name]=$smoke
    done <"$file"
    if ((${#SUITE_NAMES[@]} == 0)); then
        printf 'suite: %s lists no service\n' "$file" >&2
        return 1
    fi
}

suite_names() {
    local name
    for name in "${SUITE_NAMES[@]}"; do
        [[ -z ${1:-} || ${SUITE_KIND[$name]} == "$1" ]] && printf '%s\n' "$name"
    done
    return 0
}

suite_databases() {
    local name
    for name in "${SUITE_NAMES[@]}"; do
        [[ -n ${SUITE_DB[$name]} ]] && printf '%s\n' "$name"
    done
    return 0
}
