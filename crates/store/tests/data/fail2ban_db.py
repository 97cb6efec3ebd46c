# Drives fail2ban's own database class (the reference) for rampart-store's differential
# tests. Usage: python3 fail2ban_db.py write|read|purge|open DBFILE < scenario.json
#   write  records the scenario's jails, bans, removals and positions with Fail2BanDb
#   read   answers the scenario's queries with Fail2BanDb and prints them as JSON
#   purge  runs Fail2BanDb.purge at the scenario's time with its purge age
#   open   only opens the file (which creates or upgrades it)
# The JSON shapes printed by `read` are mirrored by tests/store/fail2ban.rs.

import json
import sys

from fail2ban.server.database import Fail2BanDb
from fail2ban.server.mytime import MyTime
from fail2ban.server.ticket import BanTicket


class StubActions:
    def __init__(self, bantime):
        self.bantime = bantime

    def getBanTime(self):
        return self.bantime


class StubJail:
    """The few jail attributes Fail2BanDb consults."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.actions = StubActions(spec["bantime"])
        self.increment = spec.get("increment", False)
        self.maxtime = spec.get("maxtime", -1)

    def getMaxBanTime(self):
        return self.maxtime if self.increment else self.actions.getBanTime()


class StubLog:
    """The few file-container attributes addLog/updateLog consult."""

    def __init__(self, path, pos, digest):
        self.path, self.pos, self.digest = path, pos, digest

    def getFileName(self):
        return self.path

    def getPos(self):
        return self.pos

    def getHash(self):
        return self.digest


def ticket_data(ticket):
    return dict(ticket.getData())


def main():
    mode, dbfile = sys.argv[1], sys.argv[2]
    scenario = json.load(sys.stdin)
    MyTime.setTime(scenario.get("now"))
    db = Fail2BanDb(dbfile, purgeAge=scenario.get("purge_age", 86400))
    db.maxMatches = scenario.get("max_matches", 10)
    jails = {spec["name"]: StubJail(spec) for spec in scenario.get("jails", [])}

    if mode == "write":
        for name in scenario.get("extra_jails", []):
            db.addJail(StubJail({"name": name, "bantime": 600}))
        db.delAllJails()
        for jail in jails.values():
            db.addJail(jail)
        for ban in scenario.get("bans", []):
            ticket = BanTicket(ban["ip"], ban["time"])
            ticket.setData(ban["data"])
            ticket.setBanTime(ban["bantime"])
            ticket.setBanCount(ban["bancount"])
            db.addBan(jails[ban["jail"]], ticket)
        for removal in scenario.get("removals", []):
            if removal.get("ip") is None:
                db.delBan(jails[removal["jail"]])
            else:
                db.delBan(jails[removal["jail"]], removal["ip"])
        for log in scenario.get("logs", []):
            db.updateLog(jails[log["jail"]], StubLog(log["path"], log["pos"], log["hash"]))
        for journal in scenario.get("journals", []):
            db.updateJournal(jails[journal["jail"]], journal["name"], journal["time"], journal["iso"])
    elif mode == "purge":
        db.purge()
    elif mode == "read":
        out = read(db, jails, scenario["queries"])
        json.dump(out, sys.stdout, ensure_ascii=False, sort_keys=True)
    elif mode != "open":
        raise SystemExit("unknown mode " + mode)
    db.close()


def read(db, jails, queries):
    now = queries["now"]
    out = {}
    out["bans"] = {
        name: [[str(t.getID()), t.getTime(), ticket_data(t)] for t in db.getBans(jail=jails.get(name))]
        for name in queries["jails"] + ["*"]
    }
    out["current"] = []
    for q in queries["current"]:
        jail = jails[q["jail"]]
        tickets = db.getCurrentBans(
            jail=jail, forbantime=q["window"], fromtime=now, correctBanTime=q["correct"]
        )
        out["current"].append([
            [str(t.getID()), t.getTime(), t.getBanTime(), t.getBanCount(), ticket_data(t)]
            for t in tickets
        ])
    out["stats"] = {}
    out["merged"] = {}
    for ip in queries["ips"]:
        for name in queries["jails"] + ["*"]:
            key = ip + " " + name
            if name == "*":
                rows = db.getBan(ip, overalljails=True)
                merged = db.getBansMerged(ip=ip)
            else:
                rows = db.getBan(ip, jails[name])
                merged = db.getBansMerged(ip=ip, jail=jails[name])
            out["stats"][key] = [list(r) for r in rows]
            out["merged"][key] = None if merged is None else [
                str(merged.getID()), merged.getTime(), ticket_data(merged)
            ]
    out["logs"] = [
        db.addLog(jails[q["jail"]], StubLog(q["path"], 0, q["hash"])) for q in queries["logs"]
    ]
    out["journals"] = [
        db.getJournalPos(jails[q["jail"]], q["name"]) for q in queries["journals"]
    ]
    return out


if __name__ == "__main__":
    main()
