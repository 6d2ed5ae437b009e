#!/bin/bash
# A real cluster on one Debian machine (root): Slurm daemons, hosts in network
# namespaces joined by shaped links, and Slurm across those hosts.
#
#   cluster.sh install                     packages (slurm-wlm, munge, iproute2, iperf3, Open MPI)
#   cluster.sh slurm-up N                  munged + slurmctld + N slurmd "virtual nodes" n1..nN on 127.0.0.1
#   cluster.sh ns-up N [RATE]              N hosts host1..hostN (10.77.0.i) on one switch; RATE shapes each
#                                          host's link (tbf, e.g. 1gbit), or R1,R2,... one per host (the
#                                          last repeats: 1gbit,250mbit gives host2.. 250mbit); prints the
#                                          nsrsh path
#   cluster.sh racks-up A B INTRA INTER    two racks: hosts 1..A and A+1..A+B, each rack on its own switch
#                                          (host links at INTRA), the two switches joined by ONE link at
#                                          INTER (tbf both ways): inter-rack traffic shares it
#   cluster.sh ns-slurm-up                 slurmctld in namespace ctl + one slurmd per namespace host
#   cluster.sh env                         the variables clients need (SLURM_CONF, NSRSH)
#   cluster.sh down                        stop every daemon started here (by PID) and delete the namespaces
#
# Everything lives under $BASE (default /tmp/baobab-testbed); every address is
# 127.0.0.1 or inside the namespaces (10.77.0.0/24); nothing outside is touched.
# Run a command on host h:  $BASE/ns/nsrsh hostH CMD...   (also a drop-in for ssh)
set -euo pipefail
BASE=${BASE:-/tmp/baobab-testbed}
P=bbt  # namespace prefix
CMD=${1:-}; shift || true

die() { echo "cluster.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || [ "$CMD" = "" ] || die "needs root (network namespaces, daemons)"

slurm_conf_common() { # $1 = state dir
  cat <<EOC
ClusterName=baobab
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$BASE/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation=$1/state
SlurmdSpoolDir=$1/spool/%n
TmpFS=$1/tmp/%n
SlurmctldPidFile=$1/slurmctld.pid
SlurmdPidFile=$1/slurmd-%n.pid
SlurmctldLogFile=$1/log/slurmctld.log
SlurmdLogFile=$1/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=5
EOC
}

munge_up() {
  [ -S "$BASE/munge/munge.socket.2" ] && return 0
  mkdir -p "$BASE/munge"
  chown munge:munge "$BASE/munge"
  chmod 711 "$BASE/munge"  # 700 makes the socket inaccessible
  [ -f /etc/munge/munge.key ] || runuser -u munge -- /usr/sbin/mungekey --create 2>/dev/null || true
  runuser -u munge -- /usr/sbin/munged --socket="$BASE/munge/munge.socket.2" --pid-file="$BASE/munge/munged.pid" \
    --log-file="$BASE/munge/munged.log" --seed-file="$BASE/munge/munged.seed"
}

wait_idle() { # $1 = node count, $2 = command prefix
  for _ in $(seq 1 160); do
    [ "$($2 sinfo -h -t idle -o %D 2>/dev/null | head -1)" = "$1" ] && return 0
    sleep 0.25
  done
  die "the $1 Slurm nodes did not become idle (see $BASE/*/log)"
}

ns_common() { # switch namespace and the host-entry helpers
  local D=$BASE/ns
  mkdir -p "$D"
  cat > "$D/enter" <<EOT
#!/bin/bash
# Inside a host's own UTS and mount namespaces: its host name, its /etc/hosts,
# and its own boot_id (UCX decides "same machine" from it).
h=\$1; shift
hostname "\$h"
mount --bind $D/hosts /etc/hosts
mount --bind $D/bootid.\$h /proc/sys/kernel/random/boot_id
exec /bin/sh -c "\$*"
EOT
  cat > "$D/nsrsh" <<EOT
#!/bin/bash
# A drop-in for ssh: nsrsh [ssh options] HOST CMD...
while [[ "\$1" == -* ]]; do case "\$1" in -p|-l|-o|-i|-F) shift 2;; *) shift;; esac; done
h=\$1; shift
exec nsenter --net=/run/netns/$P-\$h unshare --uts --mount $D/enter "\$h" "\$@"
EOT
  chmod +x "$D/enter" "$D/nsrsh"
  echo "127.0.0.1 localhost" > "$D/hosts"
  echo "10.77.0.254 ctl" >> "$D/hosts"
}

add_switch() { # name
  ip netns add "$P-$1"
  ip -n "$P-$1" link set lo up
  ip -n "$P-$1" link add br0 type bridge
  ip -n "$P-$1" link set br0 up
}

add_host() { # name ip switch [rate]
  local D=$BASE/ns
  ip netns add "$P-$1"
  ip -n "$P-$1" link set lo up
  ip -n "$P-$3" link add "p-$1" type veth peer name eth0 netns "$P-$1"
  ip -n "$P-$3" link set "p-$1" master br0 up
  ip -n "$P-$1" addr add "$2/24" dev eth0
  ip -n "$P-$1" link set eth0 up
  cat /proc/sys/kernel/random/uuid > "$D/bootid.$1"
  echo "$2 $1" >> "$D/hosts"
  if [ -n "${4:-}" ]; then
    # the host's link, both ways: its egress, and the switch port's egress towards it
    tc -n "$P-$1" qdisc add dev eth0 root tbf rate "$4" burst 256k latency 5ms
    tc -n "$P-$3" qdisc add dev "p-$1" root tbf rate "$4" burst 256k latency 5ms
  fi
}

case "$CMD" in
install)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge iproute2 iperf3 openmpi-bin libopenmpi-dev \
    util-linux procps >/dev/null ;;

slurm-up)
  N=${1:-2}; D=$BASE/slurm
  mkdir -p "$D/state" "$D/log"
  for i in $(seq 1 "$N"); do mkdir -p "$D/spool/n$i" "$D/tmp/n$i"; done
  { slurm_conf_common "$D"
    echo "SlurmctldHost=$(hostname)(127.0.0.1)"
    echo "SlurmctldPort=16817"
    echo "TaskProlog=$D/taskprolog.sh"
    echo "NodeName=n[1-$N] NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=[17001-$((17000 + N))] CPUs=4 RealMemory=2000 State=UNKNOWN"
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"; } > "$D/slurm.conf"
  cat > "$D/taskprolog.sh" <<'EOT'
#!/bin/bash
# Virtual nodes share the host name and /dev/shm: give Open MPI's shared-memory
# transport a directory per node (its segment names would collide otherwise).
d=/dev/shm/bbt-$SLURMD_NODENAME; mkdir -p "$d"
echo "export OMPI_MCA_btl_vader_backing_directory=$d"
echo "export OMPI_MCA_btl_tcp_if_include=lo"
echo "export OMPI_MCA_oob_tcp_if_include=lo"
EOT
  chmod +x "$D/taskprolog.sh"
  export SLURM_CONF=$D/slurm.conf
  munge_up
  slurmctld -i
  for i in $(seq 1 "$N"); do slurmd -N "n$i"; done
  wait_idle "$N" ""
  echo "export SLURM_CONF=$D/slurm.conf" ;;

ns-up)
  N=${1:-2}; RATE=${2:-}
  ns_common
  add_switch sw
  add_host ctl 10.77.0.254 sw
  IFS=, read -r -a RATES <<< "$RATE"
  for i in $(seq 1 "$N"); do
    r=""
    [ ${#RATES[@]} -gt 0 ] && r=${RATES[$(( i <= ${#RATES[@]} ? i - 1 : ${#RATES[@]} - 1 ))]}
    add_host "host$i" "10.77.0.$i" sw "$r"
  done
  echo "NSRSH=$BASE/ns/nsrsh" ;;

racks-up)
  A=${1:-2}; B=${2:-2}; INTRA=${3:-}; INTER=${4:?racks-up A B INTRA INTER}
  ns_common
  add_switch swa
  add_switch swb
  # the inter-rack link: one veth pair between the two switches, shaped both ways
  ip -n "$P-swa" link add uplink type veth peer name uplink netns "$P-swb"
  for s in swa swb; do
    ip -n "$P-$s" link set uplink master br0 up
    tc -n "$P-$s" qdisc add dev uplink root tbf rate "$INTER" burst 256k latency 20ms
  done
  add_host ctl 10.77.0.254 swa
  for i in $(seq 1 "$A"); do add_host "host$i" "10.77.0.$i" swa "$INTRA"; done
  for i in $(seq $((A + 1)) $((A + B))); do add_host "host$i" "10.77.0.$i" swb "$INTRA"; done
  echo "NSRSH=$BASE/ns/nsrsh" ;;

ns-slurm-up)
  D=$BASE/nsslurm; NS=$BASE/ns
  [ -x "$NS/nsrsh" ] || die "ns-up or racks-up first"
  mkdir -p "$D/state" "$D/log"
  HOSTS=$(awk '$2 ~ /^host/ {print $2}' "$NS/hosts")
  N=$(echo "$HOSTS" | wc -w)
  for h in $HOSTS; do mkdir -p "$D/spool/$h" "$D/tmp/$h"; done
  { slurm_conf_common "$D"
    echo "SlurmctldHost=ctl(10.77.0.254)"
    echo "NodeName=host[1-$N] NodeAddr=10.77.0.[1-$N] CPUs=2 RealMemory=2000 State=UNKNOWN"
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"; } > "$D/slurm.conf"
  export SLURM_CONF=$D/slurm.conf
  munge_up
  "$NS/nsrsh" ctl "slurmctld -i"
  for h in $HOSTS; do "$NS/nsrsh" "$h" "slurmd -N $h"; done
  wait_idle "$N" "$NS/nsrsh ctl"
  echo "export SLURM_CONF=$D/slurm.conf   # clients run in ctl: $NS/nsrsh ctl 'sbatch ...'" ;;

env)
  [ -f "$BASE/slurm/slurm.conf" ] && echo "export SLURM_CONF=$BASE/slurm/slurm.conf"
  [ -f "$BASE/nsslurm/slurm.conf" ] && echo "export NS_SLURM_CONF=$BASE/nsslurm/slurm.conf"
  [ -x "$BASE/ns/nsrsh" ] && echo "export NSRSH=$BASE/ns/nsrsh"
  true ;;

down)
  for f in "$BASE"/slurm/slurmd-*.pid "$BASE"/slurm/slurmctld.pid "$BASE"/nsslurm/slurmd-*.pid \
           "$BASE"/nsslurm/slurmctld.pid "$BASE"/munge/munged.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$ns"; done
  rm -rf /dev/shm/bbt-n* "$BASE"
  true ;;

*) sed -n 2,19p "$0"; exit 1 ;;
esac
