#!/usr/bin/env python3
"""Side-by-side benchmark of the idle daemon: `rampart server` against `fail2ban-server` 1.0.2
with every jail of Debian's stock `jail.conf` enabled.

For each daemon, in a network namespace of its own (created here, always deleted), on a
copy of Debian's stock tree whose only addition is a `jail.local` that enables every jail,
sets the dummy ban action (its file in the work directory) and points each jail's
`logpath` at the same path under a private root, where this script creates the files
(globs get one matching file) with a few ordinary, non-failure lines. Nothing outside
the work directory and the namespace is touched.

Measures: time from start until `status` lists the jails (as many as the daemon ends up
running), resident memory once idle and its peak, and the CPU seconds (user + system,
all threads) it used until then and over a 60 s idle window after.

Usage: bench/server/idle.py [--idle SECONDS] [--jails NAME,...] [--skip-fail2ban] [--rampart PATH]
(`--jails` enables only those jails, e.g. `sshd` for Debian's default install.)
Needs: root, iproute2, python3 (python3-pyinotify for fail2ban's inotify backend,
without it fail2ban polls), a release build, and the fail2ban package unpacked under
target/ (the test suite or bench/regex/run.py fetch it).
"""

import argparse
import ast
import datetime
import os
import pickle
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
REF = os.path.join(ROOT, "target", "fail2ban-1.0.2-2")
F2B_CLIENT = os.path.join(REF, "usr", "bin", "fail2ban-client")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); after the ")" they are 12 and 13.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def concrete(pattern):
    """One file name the glob `pattern` matches."""
    return re.sub(r"\[[^]]*\]", "0", pattern).replace("*", "bench").replace("?", "x")


def jail_logpaths(rampart, conf):
    """Every jail's logpaths as the tree names them, found or not (from rampart's dump,
    which lists found files as `addlogpath` and reports the missing ones)."""
    done = subprocess.run([rampart, "config", "dump", "-c", conf], capture_output=True, text=True)
    paths = {}
    for line in done.stdout.splitlines():
        if "'addlogpath'" in line:
            words = ast.literal_eval(line)
            paths.setdefault(words[1], []).append(words[3])
    for line in done.stderr.splitlines():
        m = re.match(r'WARNING: \[([^]]+)\] no file found for "(.*)"$', line)
        if m:
            paths.setdefault(m.group(1), []).append(m.group(2))
    return paths


def prepare(work, rampart, only=None):
    conf = os.path.join(work, "conf")
    shutil.copytree(os.path.join(REF, "etc", "fail2ban"), conf)
    logroot = os.path.join(work, "root")
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write("[DEFAULT]\nenabled = %s\nbanaction = dummy\nbanaction_allports = dummy\n"
                % ("false" if only else "true"))
    with open(os.path.join(conf, "action.d", "dummy.local"), "w") as f:
        f.write("[Init]\ntarget = %s/dummy.bans\n" % work)
    paths = jail_logpaths(rampart, conf)
    stamp = datetime.datetime.now().strftime("%b %d %H:%M:%S").replace(" 0", "  ", 1)
    ordinary = "".join("%s benchhost CRON[%d]: pam_unix(cron:session): session closed for user root\n"
                       % (stamp, 4000 + i) for i in range(5))
    with open(os.path.join(conf, "jail.local"), "a") as f:
        for jail, patterns in sorted(paths.items()):
            if only and jail not in only:
                continue
            moved = []
            for pattern in dict.fromkeys(patterns):
                moved.append(logroot + pattern)
                name = logroot + concrete(pattern)
                os.makedirs(os.path.dirname(name), exist_ok=True)
                if not os.path.exists(name):
                    with open(name, "w") as log:
                        log.write(ordinary)
            f.write("\n[%s]\n%slogpath = %s\n" % (jail, "enabled = true\n" if only else "",
                                                  "\n          ".join(moved)))
    with open(os.path.join(conf, "fail2ban.local"), "w") as f:
        f.write("[Definition]\nlogtarget = %s/server.log\ndbfile = %s/db.sqlite3\n"
                "socket = %s/sock\npidfile = %s/pid\n" % (work, work, work, work))
    return conf, len(only) if only else len(paths)


END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>"


def jail_count(sock):
    """The `Number of jail` of `status`, asked over the socket in fail2ban's protocol
    (a client process per poll would cost more than what is measured); None while
    nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(sock)
            s.sendall(pickle.dumps(["status"], protocol=2) + END)
            data = b""
            while not data.endswith(END):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
            s.sendall(CLOSE)
        code, value = pickle.loads(data[:-len(END)])
    except (OSError, pickle.UnpicklingError, ValueError, EOFError):
        return None
    if code != 0:
        return None
    return dict(value).get("Number of jail")


def run_one(tool, rampart, idle, only):
    work = tempfile.mkdtemp(prefix="rampart-idle-%s-" % tool)
    ns = "rt-idle-%s-%d" % (tool[:4], os.getpid())
    server = None
    try:
        conf, named = prepare(work, rampart, only)
        sock = os.path.join(work, "sock")
        env = dict(os.environ, PYTHONPATH=os.path.join(REF, "usr", "lib", "python3", "dist-packages"))
        if tool == "rampart":
            cmd = [rampart, "server", "-f", "-c", conf]
        else:
            cmd = ["/usr/bin/python3", F2B_CLIENT, "-f", "-c", conf, "start"]
        subprocess.run(["ip", "netns", "add", ns], check=True)
        started = time.monotonic()
        server = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Poll until the number of jails has not changed for 3 s; ready is when that
        # number first showed.
        jails = ready = startup_cpu = None
        while True:
            n = jail_count(sock)
            now = time.monotonic() - started
            if n is not None and n != jails:
                jails, ready = n, now
                startup_cpu = cpu_seconds(server.pid)
            if jails is not None and now - ready > 3.0:
                break
            if now > 120:
                sys.exit("%s did not settle (%s jails)" % (tool, jails))
            if server.poll() is not None:
                sys.exit("%s exited with %s" % (tool, server.returncode))
            # Fine-grained until jails show, then gently (each poll costs the server).
            time.sleep(0.002 if not jails else 0.1)
        cpu0 = cpu_seconds(server.pid)
        time.sleep(idle)
        cpu1 = cpu_seconds(server.pid)
        return {"ready": ready * 1000.0, "jails": jails, "named": named,
                "rss": proc_status(server.pid, "VmRSS"), "peak": proc_status(server.pid, "VmHWM"),
                "threads": proc_status(server.pid, "Threads"), "cpu": cpu1 - cpu0,
                "startup_cpu": startup_cpu}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=60.0, help="idle window in seconds")
    ap.add_argument("--skip-fail2ban", action="store_true")
    ap.add_argument("--jails", help="comma-separated jails to enable instead of all")
    ap.add_argument("--rampart", default=os.path.join(ROOT, "target", "release", "rampart"))
    args = ap.parse_args()
    if not os.path.exists(args.rampart):
        sys.exit("build first: cargo build --release")
    if not os.path.isdir(REF):
        sys.exit("no fail2ban reference under target/ (run bench/regex/run.py once)")
    tools = ["rampart"] + ([] if args.skip_fail2ban else ["fail2ban"])
    only = set(args.jails.split(",")) if args.jails else None
    results = {t: run_one(t, args.rampart, args.idle, only) for t in tools}
    named = results["rampart"]["named"]
    scope = ("jails %s" % args.jails) if only else "every jail of Debian's jail.conf"
    out = ["## %s — idle server, %s" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), scope),
           "",
           "machine: %s, %s, %d cores; command: `bench/server/idle.py --idle %g%s`; %d jails name a log "
           "(all created, a few ordinary lines each), dummy action" % (
               platform.node(), platform.machine(), os.cpu_count(), args.idle,
               (" --jails " + args.jails) if only else "", named), "",
           "| daemon | jails running | ready | RSS idle | RSS peak | threads | CPU to ready | CPU over %g s idle |" % args.idle,
           "|---|---|---|---|---|---|---|---|"]
    for tool in tools:
        r = results[tool]
        out.append("| %s | %d | %.0f ms | %.1f MiB | %.1f MiB | %d | %.2f s | %.2f s |" % (
            "rampart" if tool == "rampart" else "fail2ban 1.0.2", r["jails"], r["ready"],
            r["rss"] / 1024.0, r["peak"] / 1024.0, r["threads"], r["startup_cpu"], r["cpu"]))
    text = "\n".join(out) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", datetime.date.today().isoformat() + "-idle.md"), "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
