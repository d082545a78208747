#!/usr/bin/env bash
# Serves every repository under ROOT over git's smart HTTP protocol on 127.0.0.1:PORT: lighttpd runs the real
# `git http-backend` as CGI for every path, streaming responses (so a pack is not buffered whole). Used by the
# Rust test harness (crates/testkit/src/git_server.rs) and by scripts/lib.sh, so both serve repositories the same way.
#
# Usage: git-http-server.sh ROOT PORT STATE_DIR [v0]
# With `v0`, the server behaves like one that predates protocol v2: the client's Git-Protocol header is logged but
# not passed on, so git answers every request in protocol v0.
# STATE_DIR receives lighttpd.conf, the CGI wrapper, the CGI's HOME and error.log. Every request is appended to
# STATE_DIR/requests.log as one line "METHOD URI GIT_PROTOCOL" ("-" when the client sent no Git-Protocol header)
# before git http-backend runs, so the count is complete as soon as the client has its answer. Runs lighttpd in
# the foreground (it replaces this shell, so killing this process's id stops the server).
set -euo pipefail

if [ "$#" -lt 3 ] || [ "$#" -gt 4 ] || { [ "$#" -eq 4 ] && [ "$4" != v0 ]; }; then
    echo "usage: $0 ROOT PORT STATE_DIR [v0]" >&2
    exit 2
fi
root=$(cd "$1" && pwd)
port=$2
mkdir -p "$3"
state=$(cd "$3" && pwd)
forget_protocol=
if [ "${4:-}" = v0 ]; then
    forget_protocol='unset HTTP_GIT_PROTOCOL'
fi

backend="$(git --exec-path)/git-http-backend"
if [ ! -x "$backend" ]; then
    echo "git http-backend not found at $backend" >&2
    exit 1
fi
if ! command -v lighttpd >/dev/null 2>&1; then
    echo "lighttpd is not installed (apt-get install -y lighttpd)" >&2
    exit 1
fi

# Repositories are created by another user than the one git runs as only in some setups; safe.directory keeps
# git from refusing them either way.
mkdir -p "$state/home"
cat >"$state/home/.gitconfig" <<'CONFIG'
[safe]
	directory = *
CONFIG

cat >"$state/cgi.sh" <<CGI
#!/bin/sh
printf '%s %s %s\n' "\$REQUEST_METHOD" "\$REQUEST_URI" "\${HTTP_GIT_PROTOCOL:--}" >>'$state/requests.log'
$forget_protocol
exec '$backend'
CGI
chmod +x "$state/cgi.sh"
: >"$state/requests.log"

cat >"$state/lighttpd.conf" <<CONF
server.document-root = "$root"
server.bind = "127.0.0.1"
server.port = $port
server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.errorlog = "$state/error.log"
server.stream-response-body = 2
server.stream-request-body = 2
alias.url = ("/" => "$state/cgi.sh/")
cgi.assign = ("" => "")
setenv.set-environment = (
    "GIT_PROJECT_ROOT" => "$root",
    "GIT_HTTP_EXPORT_ALL" => "1",
    "GIT_CONFIG_NOSYSTEM" => "1",
    "HOME" => "$state/home",
    "PATH" => "$PATH",
)
CONF

exec lighttpd -D -f "$state/lighttpd.conf"
