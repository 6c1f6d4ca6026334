#!/usr/bin/env bash
# Installs the Debian packages the tests need, only when something is
# missing, so a second run does nothing. Tests that need a server start it
# themselves on loopback.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc)   # -race needs cgo
# ca/ssh_test.go starts a real sshd and times ssh-keygen -s.
{ command -v sshd >/dev/null || test -x /usr/sbin/sshd; } || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
# ca/pg_test.go and ca/mariadb_test.go start real database servers.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
{ command -v mariadbd >/dev/null || test -x /usr/sbin/mariadbd; } || need+=(mariadb-server)
command -v mariadb >/dev/null || need+=(mariadb-client)
# cmd/access/kubectl_e2e_test.go runs kubectl auth whoami (kubectl >= 1.26).
command -v kubectl >/dev/null || need+=(kubernetes-client)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
