#!/bin/sh
# Writes the secret files docker-compose.prod.yml reads, with fresh random passwords, into
# ./secrets/ (or the folder given as $1). Files that exist are kept, so running it again
# is safe; delete a file (and the ones derived from the same password) to rotate it, then
# `docker compose ... up -d`: the `migrate` service sets the database roles' passwords
# from the DSN files on every start.
#
# The files are made readable by everyone (0644) on purpose: Compose bind-mounts them
# into containers whose processes run as other users (10001 for the observatory images),
# and outside Swarm it cannot change their owner. Protect the folder instead (0700, owned
# by the user that runs docker compose).
set -eu

dir="${1:-./secrets}"
mkdir -p "$dir"
chmod 0700 "$dir"

password() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

# write NAME VALUE: create $dir/NAME holding VALUE (no trailing newline) unless it exists.
write() {
    if [ -e "$dir/$1" ]; then
        echo "kept    $dir/$1"
        return
    fi
    printf '%s' "$2" > "$dir/$1"
    chmod 0644 "$dir/$1"
    echo "created $dir/$1"
}

# sha256 TEXT: its hex SHA-256 (coreutils on Linux, shasum on macOS).
sha256() {
    if command -v sha256sum >/dev/null 2>&1; then printf '%s' "$1" | sha256sum | cut -d' ' -f1
    else printf '%s' "$1" | shasum -a 256 | cut -d' ' -f1; fi
}

# existing NAME: the password already in $dir/NAME, or a new one.
existing() { if [ -e "$dir/$1" ]; then cat "$dir/$1"; else password; fi; }

postgres="$(existing postgres_password)"
app="$(password)"
readonly_pw="$(existing observatory_readonly_password)"
redis="$(existing redis_password)"

write postgres_password "$postgres"
write observatory_readonly_password "$readonly_pw"
write redis_password "$redis"
write database_url "postgresql://postgres:${postgres}@timescaledb:5432/llm_observatory"
write database_app_url "postgresql://observatory_app:${app}@timescaledb:5432/llm_observatory"
write database_readonly_url "postgresql://observatory_readonly:${readonly_pw}@timescaledb:5432/llm_observatory"
write redis_url "redis://:${redis}@redis:6379/0"
write grafana_admin_password "$(password)"
write pgadmin_password "$(password)"

# The API's first key, for the operator: only its digest is stored (api/keys.py), so the key
# itself is printed this once. More keys: `python -m api.keys new NAME SCOPES`, one entry a
# line in $dir/api_keys, then `docker compose ... up -d api`.
if [ ! -e "$dir/api_keys" ]; then
    key="obs_$(password)"
    write api_keys "operator:*:$(sha256 "$key")"
    echo "API key of entry 'operator' (all scopes; shown once, not stored; send it as X-API-Key): $key"
else
    echo "kept    $dir/api_keys"
fi

# Grafana's key for the traces (Tempo) data source: scope traces only, its own entry.
grafana_key="$(if [ -e "$dir/grafana_api_key" ]; then cat "$dir/grafana_api_key"; else printf 'obs_%s' "$(password)"; fi)"
write grafana_api_key "$grafana_key"
if ! grep -q '^grafana:' "$dir/api_keys"; then
    printf '\ngrafana:traces:%s' "$(sha256 "$grafana_key")" >> "$dir/api_keys"
    echo "added   the grafana entry to $dir/api_keys"
fi
