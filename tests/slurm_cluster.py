"""A real one-node SLURM cluster on this machine, for the cluster tests (Debian, root).

start() installs slurm-wlm and munge if missing, writes a slurm.conf into a private folder,
links it at /etc/slurm/slurm.conf (the plugin's job steps clear SLURM_CONF, so it must be there),
and starts munged, slurmctld and slurmd. stop() ends only the daemons it started and removes the
link. Usable by hand too: ``python tests/slurm_cluster.py start|stop FOLDER``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")


class ClusterUnavailable(RuntimeError):
    pass


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def install() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterUnavailable("SLURM is not installed and this is not a root Debian machine to install it on")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], env=env)


def _node_facts() -> tuple[int, int]:
    out = _run(["slurmd", "-C"]).stdout
    fields = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
    return int(fields["CPUs"]), int(int(fields["RealMemory"]) * 0.9)


def write_conf(folder: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    cpus, mem = _node_facts()
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(f"""\
ClusterName=iwaetest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/jobcomp.log
MinJobAge=3600
ReturnToService=2
MpiDefault=none
NodeName={host} CPUs={cpus} NodeAddr=127.0.0.1 RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def start(folder: Path) -> dict:
    """Start the cluster; returns what stop() needs. Raises ClusterUnavailable when it cannot."""
    install()
    if CONF.exists() or CONF.is_symlink():
        if not (CONF.is_symlink() and "iwaetest" in CONF.read_text()):
            raise ClusterUnavailable(f"{CONF} exists and is not ours: not touching a real cluster's config")
        CONF.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    conf = write_conf(folder)
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.symlink_to(conf)
    started = {"folder": str(folder), "pids": []}

    # munge: runs as user munge, with /run/munge made for it
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            _run(["runuser", "-u", "munge", "--", "mungekey", "--create"])
        _run(["runuser", "-u", "munge", "--", "munged"])
        time.sleep(0.5)
        started["munged_pid"] = int(Path("/run/munge/munged.pid").read_text())
    _run(["slurmctld"])
    _run(["slurmd"])
    for name in ("slurmctld", "slurmd"):
        pid_file = folder / f"{name}.pid"
        for _ in range(50):
            if pid_file.exists():
                break
            time.sleep(0.1)
        started["pids"].append(int(pid_file.read_text()))
    for _ in range(60):  # the node is idle about a second after start
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
        if "idle" in out:
            return started
        time.sleep(0.5)
    stop(started)
    raise ClusterUnavailable(f"the SLURM node did not become idle; see {folder}/slurmctld.log and slurmd.log")


def stop(started: dict) -> None:
    """Stop only the daemons start() started."""
    pids = list(started.get("pids", [])) + ([started["munged_pid"]] if "munged_pid" in started else [])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    if CONF.is_symlink():
        CONF.unlink()


def completed_jobs(folder: Path) -> list[dict]:
    """Entries of the job-completion log (jobcomp/filetxt): one dict per finished job."""
    log = Path(folder) / "jobcomp.log"
    if not log.exists():
        return []
    return [dict(tok.split("=", 1) for tok in line.split() if "=" in tok) for line in log.read_text().splitlines()]


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        info = start(where)
        (where / "started.txt").write_text(repr(info))
        print(f"SLURM cluster up: {info}")
    else:
        import ast

        stop(ast.literal_eval((where / "started.txt").read_text()))
        print("stopped")
