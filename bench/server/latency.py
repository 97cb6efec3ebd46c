#!/usr/bin/env python3
"""Side-by-side benchmark: `rampart server` against `fail2ban-server` (1.0.2).

For each daemon, in a network namespace of its own (created here, always deleted):
start it on a copy of Debian's stock tree with one jail (the stock sshd filter,
maxretry = 1, the stock nftables-multiport action, a log file written by this script),
measure the time from start to an answering control socket, then append failure lines
from new addresses one at a time and measure, with `nft monitor` inside the namespace,
the time from the append to the address entering the nftables set. Reports p50/p99 ban
latency, time to ready, and peak RSS of the idle daemon and after the bans.

Usage: bench/server/latency.py [--bans N] [--skip-fail2ban]
Needs: root, iproute2, nftables, python3 (with python3-pyinotify for fail2ban's inotify
backend; without it fail2ban polls), a release build, and the fail2ban package unpacked
under target/ (the test suite or bench/regex/run.py fetch it).
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
REF = os.path.join(ROOT, "target", "fail2ban-1.0.2-2")
RAMPART = os.path.join(ROOT, "target", "release", "rampart")


def rss_kib(pid, field="VmHWM"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def run_one(tool, bans):
    work = tempfile.mkdtemp(prefix="rampart-lat-%s-" % tool)
    ns = "rt-lat-%s-%d" % (tool[:4], os.getpid())
    conf = os.path.join(work, "conf")
    shutil.copytree(os.path.join(REF, "etc", "fail2ban"), conf)
    log = os.path.join(work, "auth.log")
    open(log, "w").close()
    sock = os.path.join(work, "sock")
    with open(os.path.join(conf, "fail2ban.local"), "w") as f:
        f.write("[Definition]\nloglevel = NOTICE\nlogtarget = %s/server.log\ndbfile = %s/db.sqlite3\n"
                "socket = %s\npidfile = %s/pid\n" % (work, work, sock, work))
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write("[sshd]\nenabled = true\nlogpath = %s\nbackend = auto\nmaxretry = 1\n"
                "findtime = 600\nbantime = 3600\nbanaction = nftables-multiport\n"
                "action = %%(action_)s\n" % log)
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "usr", "lib", "python3", "dist-packages"))
    if tool == "rampart":
        cmd = [RAMPART, "server", "-f", "-c", conf]
        ping = [RAMPART, "-s", sock, "ping"]
    else:
        cmd = ["/usr/bin/python3", os.path.join(REF, "usr", "bin", "fail2ban-client"), "-f", "-c", conf, "start"]
        ping = ["/usr/bin/python3", os.path.join(REF, "usr", "bin", "fail2ban-client"), "-c", conf, "-s", sock, "ping"]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = monitor = None
    try:
        monitor = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "elements"],
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
        seen = {}
        lock = threading.Condition()

        def watch():
            for line in monitor.stdout:
                now = time.monotonic()
                if "add element" in line:
                    with lock:
                        for word in line.replace("{", " ").replace("}", " ").split():
                            if word.startswith("198.18.") and word not in seen:
                                seen[word] = now
                        lock.notify_all()

        threading.Thread(target=watch, daemon=True).start()
        started = time.monotonic()
        server = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while subprocess.run(ping, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() - started > 60:
                sys.exit("%s did not answer on its socket" % tool)
            time.sleep(0.005)
        ready = time.monotonic() - started
        time.sleep(1.0)
        idle_rss = rss_kib(server.pid, "VmRSS")
        latencies = []
        missing = 0
        for i in range(bans):
            ip = "198.18.%d.%d" % (1 + i // 250, 1 + i % 250)
            stamp = datetime.datetime.now().strftime("%b %d %H:%M:%S").replace(" 0", "  ", 1)
            line = "%s host sshd[%d]: Failed password for invalid user bench from %s port 4242 ssh2\n" % (
                stamp, 1000 + i, ip)
            t0 = time.monotonic()
            with open(log, "a") as f:
                f.write(line)
            with lock:
                while ip not in seen and time.monotonic() - t0 < 10:
                    lock.wait(0.05)
                t1 = seen.get(ip)
            if t1 is None:
                missing += 1
            else:
                latencies.append((t1 - t0) * 1000.0)
            time.sleep(0.02)
        peak = rss_kib(server.pid)
        return {"ready": ready * 1000.0, "lat": latencies, "missing": missing,
                "idle_rss": idle_rss, "peak_rss": peak}
    finally:
        for p in (server, monitor):
            if p is not None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bans", type=int, default=300)
    ap.add_argument("--skip-fail2ban", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(RAMPART):
        sys.exit("build first: cargo build --release")
    if not os.path.isdir(REF):
        sys.exit("no fail2ban reference under target/ (run bench/regex/run.py once)")
    tools = ["rampart"] + ([] if args.skip_fail2ban else ["fail2ban"])
    results = {t: run_one(t, args.bans) for t in tools}
    out = ["## %s — ban latency, %d bans" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), args.bans), "",
           "machine: %s, %s, %d cores; command: `bench/server/latency.py --bans %d`" % (
               platform.node(), platform.machine(), os.cpu_count(), args.bans), "",
           "| daemon | ready | ban latency p50 | p99 | max | missed | RSS idle | RSS peak |",
           "|---|---|---|---|---|---|---|---|"]
    for tool in tools:
        r = results[tool]
        lat = r["lat"] or [float("nan")]
        out.append("| %s | %.0f ms | %.1f ms | %.1f ms | %.1f ms | %d | %.1f MiB | %.1f MiB |" % (
            "rampart" if tool == "rampart" else "fail2ban 1.0.2", r["ready"], percentile(lat, 50),
            percentile(lat, 99), max(lat), r["missing"], r["idle_rss"] / 1024.0, r["peak_rss"] / 1024.0))
    text = "\n".join(out) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", datetime.date.today().isoformat() + ".md"), "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
