#!/usr/bin/env python3
"""Writes a realistic, deterministic syslog auth.log for the regex benchmark.

A server under a steady password-guessing campaign: about a third of the lines are
failures of the shapes OpenSSH really logs (invalid users, failed passwords and keys,
PAM, pre-auth disconnects, negotiation failures, …) from IPv4 and IPv6 attackers; the
rest is what a busy host logs anyway (cron, sudo, logins that succeed, session
bookkeeping, the mail system, the kernel firewall).

Usage: gen_auth_log.py LINES OUTPUT [--seed N]
"""

import argparse
import random

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
USERS = ["root", "admin", "test", "user", "oracle", "postgres", "ubuntu", "git",
         "guest", "ftpuser", "pi", "support", "deploy", "www-data", "jenkins",
         "hadoop", "mysql", "nagios", "ansible", "teamspeak", "minecraft", "steam"]
HOSTILE_USERS = ["root from 10.0.0.1", "x' or 1=1 --", "admin port 22", "a b c",
                 "invalid user root", "ssh2", "\\x00\\xff", "$(reboot)"]
LOCAL_USERS = ["alice", "bob", "carol", "deploy", "backup"]
KEX = ["key exchange method", "host key type", "cipher", "MAC"]


class Clock:
    """Syslog timestamps moving forward a few seconds at a time."""

    def __init__(self, rng):
        self.rng = rng
        self.t = 0  # seconds since Nov 23 00:00:00

    def tick(self):
        # Many lines share a second, as on a busy host.
        if self.rng.random() < 0.2:
            self.t += self.rng.randint(1, 2)
        day = 23 + self.t // 86400
        rem = self.t % 86400
        return "Nov %2d %02d:%02d:%02d" % (day, rem // 3600, rem % 3600 // 60, rem % 60)


def make_attackers(rng, n):
    out = []
    for _ in range(n):
        if rng.random() < 0.2:
            out.append("2001:db8:%x:%x::%x" % (rng.randint(0, 0xffff), rng.randint(0, 0xffff),
                                               rng.randint(1, 0xffff)))
        else:
            out.append("%d.%d.%d.%d" % (rng.choice([45, 61, 103, 118, 141, 185, 193, 203, 218, 222]),
                                        rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)))
    return out


def failure(rng, ip, port, user):
    shapes = [
        (30, lambda: "Failed password for %s from %s port %d ssh2" % (user, ip, port)),
        (20, lambda: "Failed password for invalid user %s from %s port %d ssh2" % (user, ip, port)),
        (14, lambda: "Invalid user %s from %s port %d" % (user, ip, port)),
        (8, lambda: "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, user)),
        (5, lambda: "error: maximum authentication attempts exceeded for %s from %s port %d ssh2 [preauth]" % (user, ip, port)),
        (4, lambda: "Disconnecting: Too many authentication failures for %s [preauth]" % user),
        (4, lambda: "User %s from %s not allowed because not listed in AllowUsers" % (user, ip)),
        (3, lambda: "Failed publickey for invalid user %s from %s port %d ssh2: RSA SHA256:%s" % (user, ip, port, "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43)))),
        (3, lambda: "Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port)),
        (3, lambda: "Connection closed by authenticating user %s %s port %d [preauth]" % (user, ip, port)),
        (3, lambda: "Disconnected from invalid user %s %s port %d [preauth]" % (user, ip, port)),
        (2, lambda: "Unable to negotiate with %s port %d: no matching %s found. Their offer: diffie-hellman-group1-sha1 [preauth]" % (ip, port, rng.choice(KEX))),
        (2, lambda: "Did not receive identification string from %s port %d" % (ip, port)),
        (1, lambda: "Bad protocol version identification 'GET / HTTP/1.1' from %s port %d" % (ip, port)),
        (1, lambda: "banner exchange: Connection from %s port %d: invalid format" % (ip, port)),
        (1, lambda: "error: Received disconnect from %s port %d:3: com.jcraft.jsch.JSchException: Auth fail [preauth]" % (ip, port)),
        (1, lambda: "Authentication failure for %s from %s" % (user, ip)),
    ]
    total = sum(w for w, _ in shapes)
    pick = rng.uniform(0, total)
    for w, f in shapes:
        pick -= w
        if pick <= 0:
            return f()
    return shapes[0][1]()


def ordinary(rng, clock_pid, host_ip):
    user = rng.choice(LOCAL_USERS)
    port = rng.randint(1024, 65535)
    shapes = [
        (18, "CRON", lambda: "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
        (18, "CRON", lambda: "pam_unix(cron:session): session closed for user root"),
        (8, "sshd", lambda: "Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%s" % (user, host_ip, port, "q1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXxC")),
        (6, "sshd", lambda: "pam_unix(sshd:session): session opened for user %s(uid=1000) by (uid=0)" % user),
        (6, "sshd", lambda: "pam_unix(sshd:session): session closed for user %s" % user),
        (5, "sshd", lambda: "Received disconnect from %s port %d:11: disconnected by user" % (host_ip, port)),
        (5, "sshd", lambda: "Disconnected from user %s %s port %d" % (user, host_ip, port)),
        (6, "systemd-logind", lambda: "New session %d of user %s." % (rng.randint(1, 99999), user)),
        (6, "systemd-logind", lambda: "Session %d logged out. Waiting for processes to exit." % rng.randint(1, 99999)),
        (5, "sudo", lambda: "   %s : TTY=pts/0 ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl status nginx" % (user, user)),
        (4, "sudo", lambda: "pam_unix(sudo:session): session opened for user root(uid=0) by %s(uid=1000)" % user),
        (3, "systemd", lambda: "pam_unix(systemd-user:session): session opened for user %s(uid=1000) by (uid=0)" % user),
        (3, "postfix/smtpd", lambda: "connect from unknown[%s]" % host_ip),
        (2, "kernel", lambda: "[%d.%06d] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=%s DST=192.0.2.10 LEN=44 PROTO=TCP SPT=%d DPT=23" % (rng.randint(1000, 999999), rng.randint(0, 999999), host_ip, port)),
        (1, "sshd", lambda: "Server listening on 0.0.0.0 port 22."),
    ]
    total = sum(w for w, _, _ in shapes)
    pick = rng.uniform(0, total)
    for w, daemon, f in shapes:
        pick -= w
        if pick <= 0:
            return daemon, f()
    return shapes[0][1], shapes[0][2]()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", type=int)
    ap.add_argument("output")
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    clock = Clock(rng)
    attackers = make_attackers(rng, 4000)
    friends = ["198.51.100.%d" % i for i in range(2, 40)]
    pid = 1000
    with open(args.output, "w", encoding="utf-8") as out:
        for _ in range(args.lines):
            stamp = clock.tick()
            if rng.random() < 0.34:
                # A connection logs one to a few lines under its own pid.
                if rng.random() < 0.6:
                    pid = 1000 + (pid + 7) % 60000
                ip = rng.choice(attackers)
                user = rng.choice(HOSTILE_USERS) if rng.random() < 0.01 else rng.choice(USERS)
                msg = failure(rng, ip, rng.randint(1024, 65535), user)
                out.write("%s bastion sshd[%d]: %s\n" % (stamp, pid, msg))
            else:
                daemon, msg = ordinary(rng, pid, rng.choice(friends))
                if daemon == "kernel":
                    out.write("%s bastion kernel: %s\n" % (stamp, msg))
                else:
                    out.write("%s bastion %s[%d]: %s\n" % (stamp, daemon, rng.randint(300, 99999), msg))


if __name__ == "__main__":
    main()
