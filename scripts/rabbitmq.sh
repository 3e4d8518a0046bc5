#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway RabbitMQ for tests and demos: one node listening on 127.0.0.1
# only, with all its state under one directory, provisioned from
# deploy/rabbitmq/definitions.json. It survives "kill" followed by "start"
# with the same data, which the broker-restart test relies on.
set -euo pipefail

usage() {
	cat <<EOF
usage: ${0##*/} start|stop|kill|restart|pause|resume|status|env|ctl ARGS...

  start    start the node unless it runs, wait until it is ready (at most
           MM_RABBITMQ_TIMEOUT seconds), provision vhost, users, exchanges
  stop     stop the node gracefully and delete its state directory
  kill     SIGKILL the node's beam.smp only; its data stays for "start"
  restart  stop gracefully keeping the data, then start
  pause    SIGSTOP the node: connections stay open but nothing is answered
  resume   SIGCONT the node after pause
  status   say whether the node runs and is ready (exit 0) or not (exit 3)
  env      print "export ..." lines for the tests (MM_TEST_AMQP_URL,
           MM_TEST_MGMT_URL, MM_TEST_BROKER_CTL, MM_RABBITMQ_*; with a TLS
           port also MM_TEST_AMQPS_URL, MM_TEST_TLS_CA, MM_TEST_TLS_CERT,
           MM_TEST_TLS_KEY)

environment (defaults in brackets):
  MM_RABBITMQ_DIR        state directory [/tmp/mm-rabbitmq]
  MM_RABBITMQ_PORT       AMQP port [5672]
  MM_RABBITMQ_MGMT_PORT  management HTTP port [15672]
  MM_RABBITMQ_DIST_PORT  Erlang distribution port [AMQP port + 20000]
  MM_RABBITMQ_NODENAME   node name [mm-<AMQP port>@localhost]
  MM_RABBITMQ_TIMEOUT    seconds "start" waits for the node [60]
  MM_RABBITMQ_BIN        RabbitMQ's scripts [/usr/lib/rabbitmq/bin]
  MM_RABBITMQ_TLS_PORT   AMQPS port, with a CA, a server certificate for
                         localhost and 127.0.0.1 and a client certificate
                         made once in MM_RABBITMQ_DIR/tls [unset: no TLS]
  MM_RABBITMQ_PROVISION  "no": "start" skips the provisioning, for a node
                         about to join a provisioned cluster [yes]
EOF
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
definitions=$repo_dir/deploy/rabbitmq/definitions.json
# The tests' wide "collector" and "actuator" users, one for every host,
# which a fleet does not have (each host has its own user: mm-broker-host).
test_roles=$repo_dir/tests/fixtures/rabbitmq-roles.json

dir=${MM_RABBITMQ_DIR:-/tmp/mm-rabbitmq}
port=${MM_RABBITMQ_PORT:-5672}
mgmt_port=${MM_RABBITMQ_MGMT_PORT:-15672}
dist_port=${MM_RABBITMQ_DIST_PORT:-$((port + 20000))}
node=${MM_RABBITMQ_NODENAME:-mm-$port@localhost}
timeout=${MM_RABBITMQ_TIMEOUT:-60}
bin=${MM_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
tls_port=${MM_RABBITMQ_TLS_PORT:-}
provision=${MM_RABBITMQ_PROVISION:-yes}
tls=$dir/tls
vhost=mm
roles=(collector scheduler actuator operator)

pidfile=$dir/rabbit.pid
logfile=$dir/log/rabbit.log
outfile=$dir/log/server.out
epmd_mark=$dir/epmd-started-by-us
provisioned=$dir/provisioned

say() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

user_home=${HOME:-}

# Everything RabbitMQ and the CLI read comes from here, never from
# /etc/rabbitmq or /var/lib/rabbitmq, so a system broker is left alone.
export HOME=$dir/home
export RABBITMQ_NODENAME=$node
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$dist_port
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_LOGS=$logfile
export RABBITMQ_PID_FILE=$pidfile
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1

ctl() { "$bin/rabbitmqctl" -q -n "$node" "$@"; }

# The pid of our node's beam.smp, or nothing. The pid file alone is not
# trusted: after a kill -9 or a reboot it may name another process.
node_pid() {
	local pid
	[[ -r $pidfile ]] || return 0
	pid=$(tr -dc 0-9 <"$pidfile")
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 0
	if tr '\0' ' ' <"/proc/$pid/cmdline" |
	    grep -q -F -- "beam.smp" && tr '\0' ' ' <"/proc/$pid/cmdline" |
	    grep -q -F -- " -home $dir/home "; then
		echo "$pid"
	fi
}

# Who listens on a TCP port on any address, or nothing.
port_user() {
	ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1
}

log_tail() {
	local f
	for f in "$outfile" "$logfile"; do
		if [[ -s $f ]]; then
			say "last lines of $f:"
			tail -n 25 "$f" >&2
		fi
	done
}

# Close every descriptor above 2 of this (sub)shell.
close_inherited_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		((fd > 2)) && eval "exec $fd>&-"
	done
	return 0
}

# A test CA, a server certificate for localhost and 127.0.0.1, and a
# client certificate (CN=mm-test-client), made once. The node runs as the
# user running this script, so the keys stay 0600.
make_tls() {
	[[ -s $tls/client.key ]] && return 0
	command -v openssl >/dev/null ||
	    die "openssl not found; apt-get install openssl"
	mkdir -p "$tls"
	chmod 700 "$tls"
	if ! (
		cd "$tls"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		    -subj "/CN=mm test CA" -keyout ca.key -out ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		    -keyout server.key -out server.csr
		printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		    "extendedKeyUsage=serverAuth" >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -days 3650 -extfile server.ext \
		    -out server.pem
		openssl req -newkey rsa:2048 -nodes \
		    -subj "/CN=mm-test-client" -keyout client.key \
		    -out client.csr
		printf '%s\n' "extendedKeyUsage=clientAuth" >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -days 3650 -extfile client.ext \
		    -out client.pem
		chmod 644 ca.pem
		rm -f server.csr client.csr server.ext client.ext
	) >"$tls/openssl.log" 2>&1; then
		cat "$tls/openssl.log" >&2
		rm -f "$tls/client.key"
		die "cannot make the test certificates in $tls"
	fi
}

prepare_dir() {
	mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
	chmod 700 "$dir/home"
	: >"$RABBITMQ_CONF_ENV_FILE"
	cat >"$RABBITMQ_CONFIG_FILE" <<EOF
listeners.tcp.1 = 127.0.0.1:$port
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt_port
log.file.level = info
log.console = false
EOF
	if [[ -n $tls_port ]]; then
		make_tls
		cat >>"$RABBITMQ_CONFIG_FILE" <<EOF
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $tls/ca.pem
ssl_options.certfile = $tls/server.pem
ssl_options.keyfile = $tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
EOF
	fi
	if [[ ! -s $RABBITMQ_ENABLED_PLUGINS_FILE ]]; then
		"$bin/rabbitmq-plugins" -q --offline enable \
		    rabbitmq_management rabbitmq_consistent_hash_exchange \
		    >/dev/null || die "cannot enable plugins"
	fi
}

check_ports() {
	local p user
	for p in "$port" "$mgmt_port" "$dist_port" $tls_port; do
		user=$(port_user "$p")
		if [[ -n $user ]]; then
			say "port $p is already in use: $user"
			case $user in
			*beam*)
				say "another RabbitMQ (the system's" \
				    "rabbitmq-server?) runs; stop it" \
				    "(systemctl stop rabbitmq-server) or set" \
				    "MM_RABBITMQ_PORT, MM_RABBITMQ_MGMT_PORT" ;;
			*)
				say "set MM_RABBITMQ_PORT," \
				    "MM_RABBITMQ_MGMT_PORT or" \
				    "MM_RABBITMQ_DIST_PORT to free ports" ;;
			esac
			exit 1
		fi
	done
}

wait_ready() {
	local pid=$1 deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			say "the node exited during startup"
			log_tail
			exit 1
		fi
		if ctl await_startup --timeout 5 >/dev/null 2>&1 &&
		    curl -fsS -o /dev/null -u guest:guest \
		    "http://127.0.0.1:$mgmt_port/api/overview" 2>/dev/null; then
			return 0
		fi
		sleep 1
	done
	say "the node did not become ready within $timeout s"
	log_tail
	exit 1
}

# Load the definitions, then what only tests want: each role's password is
# its name and guest may do anything on the vhost. Done again only when
# definitions.json changes, so a restart after "kill" stays quick.
provision() {
	local sum user
	[[ $provision != no ]] || return 0
	sum=$(cat "$definitions" "$test_roles" | sha256sum | cut -d' ' -f1)
	if [[ -r $provisioned && $(cat "$provisioned") == "$sum" ]]; then
		return 0
	fi
	ctl import_definitions "$definitions" >/dev/null ||
	    die "cannot import $definitions"
	ctl import_definitions "$test_roles" >/dev/null ||
	    die "cannot import $test_roles"
	for user in "${roles[@]}"; do
		ctl change_password "$user" "$user" >/dev/null ||
		    die "cannot set the password of $user"
	done
	ctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null ||
	    die "cannot grant guest permissions on vhost $vhost"
	echo "$sum" >"$provisioned"
}

cmd_start() {
	local pid
	[[ -x $bin/rabbitmq-server ]] ||
	    die "$bin/rabbitmq-server not found; apt-get install rabbitmq-server"
	[[ -r $definitions ]] || die "$definitions not found"
	pid=$(node_pid)
	if [[ -z $pid ]]; then
		rm -f "$pidfile"
		check_ports
		prepare_dir
		if ! epmd -names >/dev/null 2>&1; then
			touch "$epmd_mark"
		fi
		say "starting node $node on 127.0.0.1:$port" \
		    "(management $mgmt_port, state $dir)"
		# setsid: the node outlives this script and its terminal,
		# and Ctrl-C in the caller's shell does not reach it. It
		# keeps no descriptor of the caller's beyond 0-2: a lock
		# (flock) or a pipe (ctest) would stay held as long as it
		# runs.
		(cd "$dir" && close_inherited_fds &&
		    exec setsid "$bin/rabbitmq-server" \
		    >"$outfile" 2>&1 </dev/null) &
		local deadline=$((SECONDS + 10))
		while [[ -z $(node_pid) ]] && ((SECONDS < deadline)); do
			if ! kill -0 $! 2>/dev/null; then
				say "rabbitmq-server exited at once"
				log_tail
				exit 1
			fi
			sleep 0.2
		done
		pid=$(node_pid)
		[[ -n $pid ]] || { say "no pid file after 10 s"; log_tail; exit 1; }
	fi
	wait_ready "$pid"
	provision
	say "ready: amqp://127.0.0.1:$port/$vhost (pid $pid)"
	[[ -n $tls_port ]] || return 0
	# The node starts without a listener it could not open: say so.
	if [[ -z $(ss -Hltn "sport = :$tls_port" 2>/dev/null) ]]; then
		say "the TLS listener on port $tls_port is not up"
		grep -m 3 -E "listen_error|eaddrinuse|ssl" "$logfile" >&2 || true
		exit 1
	fi
	say "ready: amqps://localhost:$tls_port/$vhost"
}

# Graceful shutdown, keeping the data.
shutdown_node() {
	local pid deadline
	pid=$(node_pid)
	if [[ -n $pid ]]; then
		kill -CONT "$pid" 2>/dev/null || true
		ctl shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "node did not stop within 30 s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pidfile"
}

# epmd is shared by every Erlang node on the machine: stop it only if our
# start launched it and no other node is registered now.
stop_epmd() {
	[[ -e $epmd_mark ]] || return 0
	rm -f "$epmd_mark"
	if ! epmd -names 2>/dev/null | grep -q '^name '; then
		epmd -kill >/dev/null 2>&1 || true
	fi
}

cmd_stop() {
	shutdown_node
	stop_epmd
	case $dir in
	/ | "$user_home" | "") die "refusing to delete state directory \"$dir\"" ;;
	esac
	rm -rf -- "$dir"
	say "stopped"
}

cmd_kill() {
	local pid
	pid=$(node_pid)
	if [[ -z $pid ]]; then
		say "node $node is not running"
		return 0
	fi
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
	done
	say "killed beam.smp (pid $pid)"
}

# SIGSTOP or SIGCONT the node, to test clients against a stalled broker.
cmd_signal() {
	local pid
	pid=$(node_pid)
	[[ -n $pid ]] || die "node $node is not running"
	kill "-$1" "$pid"
	say "sent SIG$1 to beam.smp (pid $pid)"
}

cmd_restart() {
	shutdown_node
	cmd_start
}

cmd_status() {
	local pid
	pid=$(node_pid)
	if [[ -z $pid ]]; then
		echo "not running (state $dir)"
		exit 3
	fi
	if ctl await_startup --timeout 5 >/dev/null 2>&1; then
		echo "running: node $node pid $pid amqp 127.0.0.1:$port" \
		    "management http://127.0.0.1:$mgmt_port/ state $dir"
		return 0
	fi
	echo "starting or unresponsive: node $node pid $pid"
	exit 3
}

cmd_env() {
	cat <<EOF
export MM_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$port/$vhost
export MM_TEST_MGMT_URL=http://127.0.0.1:$mgmt_port
export MM_TEST_BROKER_CTL=$script_dir/rabbitmq.sh
export MM_RABBITMQ_DIR=$dir
export MM_RABBITMQ_PORT=$port
export MM_RABBITMQ_MGMT_PORT=$mgmt_port
export MM_RABBITMQ_DIST_PORT=$dist_port
export MM_RABBITMQ_NODENAME=$node
EOF
	[[ -n $tls_port ]] || return 0
	cat <<EOF
export MM_RABBITMQ_TLS_PORT=$tls_port
export MM_TEST_AMQPS_URL=amqps://guest:guest@localhost:$tls_port/$vhost
export MM_TEST_TLS_CA=$tls/ca.pem
export MM_TEST_TLS_CERT=$tls/client.pem
export MM_TEST_TLS_KEY=$tls/client.key
EOF
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
kill) cmd_kill ;;
restart) cmd_restart ;;
pause) cmd_signal STOP ;;
resume) cmd_signal CONT ;;
status) cmd_status ;;
env) cmd_env ;;
ctl) shift; ctl "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
