#!/usr/bin/env python3
"""Writes samples/fleet and samples/inventory.csv (authoring aid; the committed files are the source of truth).

Usage: python3 samples/gen/genfleet.py samples/fleet
See samples/README.md for what each host exhibits. Fixed "now": 2026-11-01T00:00:00Z.
"""
import hashlib, os, sys, codecs

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)

K_CORE = r"SYSTEM\CurrentControlSet\Control\Terminal Server\RCM\Licensing Core"
K_POL = r"SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
K_LLS = r"SYSTEM\CurrentControlSet\Services\TermService\Parameters\LicenseServers"
K_LLS_SUB = K_LLS + r"\SpecifiedLicenseServers"
K_GRACE = r"SYSTEM\CurrentControlSet\Control\Terminal Server\RCM\GracePeriod"
K_RCM = r"SYSTEM\CurrentControlSet\Control\Terminal Server\RCM"
K_MIS = r"SYSTEM\CurrentControlSet\Control\Terminal Server\Licensing Core"
K_HWID = r"SOFTWARE\Microsoft\MSLicensing\HardwareID"
K_STORE = r"SOFTWARE\Microsoft\MSLicensing\Store"
TIMEBOMB = "L$RTMTIMEBOMB_1320153D-8DA3-4e8e-B27B-0D888223A588"

NET = r"NT AUTHORITY\NETWORK SERVICE"
SYS = r"NT AUTHORITY\SYSTEM"
ADM = r"BUILTIN\Administrators"

OSV = {
    "2012r2": ("Microsoft Windows Server 2012 R2 Standard", "6.3.9600", "9600", "4.0"),
    "2016": ("Microsoft Windows Server 2016 Standard", "10.0.14393", "14393", "5.1.14393.7428"),
    "2019": ("Microsoft Windows Server 2019 Standard", "10.0.17763", "17763", "5.1.17763.6414"),
    "2022": ("Microsoft Windows Server 2022 Standard", "10.0.20348", "20348", "5.1.20348.2849"),
    "2025": ("Microsoft Windows Server 2025 Standard", "10.0.26100", "26100", "5.1.26100.2161"),
    "win11": ("Microsoft Windows 11 Enterprise", "10.0.26100", "26100", "5.1.26100.2161"),
    "win11-23h2": ("Microsoft Windows 11 Enterprise", "10.0.22631", "22631", "5.1.22621.4391"),
}
LT_NAME = {
    1: ("Remote Desktop for Administration", "Remote Desktop for Administration"),
    2: ("Per Device", "Per Device licensing mode"),
    4: ("Per User", "Per User licensing mode"),
    5: ("Not configured", "Licensing mode is not configured"),
    6: ("AAD Per User", "Microsoft Entra ID Per User licensing mode"),
}


def blob(seed, n, header=b""):
    out = bytearray(header)
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        out += h
        h = hashlib.sha256(h).digest()
    return bytes(out[:n])


DPAPI = bytes.fromhex("01000000d08c9ddf0115d1118c7a00c04fc297eb01000000")


def utf16z(s):
    return s.encode("utf-16-le") + b"\x00\x00"


def multisz(items, ansi=False):
    if ansi:
        return b"".join(i.encode("latin-1") + b"\x00" for i in items) + b"\x00"
    return b"".join(utf16z(i) for i in items) + b"\x00\x00"


def hexlines(prefix, data):
    """regedit style: lines wrapped before 80 columns with '\\', continuation indented 2."""
    parts = ["%02x" % b for b in data]
    lines, cur = [], prefix
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else "")
        if len(cur) + len(piece) > 77 and cur.strip():
            lines.append(cur + "\\")
            cur = "  "
        cur += piece
    lines.append(cur)
    return lines


def qstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reg_value(name, v, fmt4):
    n = "@" if name == "" else qstr(name)
    kind, data = v
    if kind == "sz":
        return [n + "=" + qstr(data)]
    if kind == "dword":
        return [n + "=dword:%08x" % data]
    if kind == "bin":
        return hexlines(n + "=hex:", data)
    if kind == "multi":
        return hexlines(n + "=hex(7):", multisz(data, ansi=fmt4))
    if kind == "expand":
        raw = data.encode("latin-1") + b"\x00" if fmt4 else utf16z(data)
        return hexlines(n + "=hex(2):", raw)
    raise ValueError(kind)


def write_reg(host, keys, enc, comment=None):
    fmt4 = enc == "regedit4"
    lines = ["REGEDIT4" if fmt4 else "Windows Registry Editor Version 5.00", ""]
    if comment:
        lines[1:1] = ["; " + c for c in comment]
        lines.insert(len(comment) + 1, "")
    for path, vals in keys:
        if path.startswith("-"):
            lines.append("[-HKEY_LOCAL_MACHINE\\" + path[1:] + "]")
            lines.append("")
            continue
        lines.append("[HKEY_LOCAL_MACHINE\\" + path + "]")
        for name, v in vals:
            lines.extend(reg_value(name, v, fmt4))
        lines.append("")
    nl = "\n" if enc == "utf8-lf" else "\r\n"
    text = nl.join(lines) + nl
    p = os.path.join(OUT, host + ".reg")
    if enc == "utf16":
        data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    elif enc == "utf8-bom":
        data = codecs.BOM_UTF8 + text.encode("utf-8")
    elif enc == "regedit4":
        data = text.encode("latin-1")
    else:
        data = text.encode("utf-8")
    with open(p, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- YAML emitter
def ys(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def yemit(v, ind=0):
    pad = "  " * ind
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, dict):
                if not x:
                    out.append(f"{pad}{k}: {{}}")
                else:
                    out.append(f"{pad}{k}:")
                    out.extend(yemit(x, ind + 1))
            elif isinstance(x, list):
                if not x:
                    out.append(f"{pad}{k}: []")
                elif all(not isinstance(i, (dict, list)) for i in x) and len(x) <= 6:
                    out.append(f"{pad}{k}: [" + ", ".join(ys(i) for i in x) + "]")
                else:
                    out.append(f"{pad}{k}:")
                    out.extend(yemit(x, ind + 1))
            else:
                out.append(f"{pad}{k}: {ys(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict):
                sub = yemit(x, ind + 1)
                sub[0] = pad + "- " + sub[0].lstrip()
                out.extend(sub)
            else:
                out.append(pad + "- " + ys(x))
    return out


def write_yaml(host, doc, comment):
    lines = ["# " + c for c in comment] + yemit(doc)
    with open(os.path.join(OUT, host + ".host.yaml"), "w", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


COLLECTED = "2026-10-31T22:00:00Z"
INVENTORY = []


def cim(d, off="+000"):
    # d = "2024-01-15 09:30:00"
    ymd, hms = d.split(" ")
    return ymd.replace("-", "") + hms.replace(":", "") + ".000000" + off


def ostype(osk, name, install, boot="2026-10-12 03:15:02", workgroup=False, roles=("RDS-RD-Server",), locale="en-US", off="+000"):
    cap, ver, build, ps = OSV[osk]
    o = {
        "computer_name": name,
        "caption": cap,
        "version": ver,
        "build_number": build,
        "install_date": cim(install, off),
        "last_boot_up_time": cim(boot, off),
        "domain": "WORKGROUP" if workgroup else "corp.example.com",
        "part_of_domain": not workgroup,
        "domain_role": 2 if workgroup else 3,
        "roles": list(roles),
        "ps_version": ps,
        "locale": locale,
    }
    if not roles:
        del o["roles"]
    return o


def iso(d):
    return d.replace(" ", "T") + "Z"


def session_host(name, addr, group, osk, install, enc, story, *,
                 policy=None, core=None, local_ls=None, local_ls_shape="value",
                 grace="clean", days_left=0, grace_lwt=None, grace_owner=NET,
                 x509=True, misplaced=None, wmi_lt=None, wmi_pslt=None, wmi_pscls=None,
                 ts_mode=1, specified=None, connectivity=None, deployment=None,
                 workgroup=False, errors=None, tags=(), grace_error=None):
    keys = []
    meta = []
    install_lwt = install[:10] + " 10:41:07"
    if core is not None:
        keys.append((K_CORE, [("LicensingMode", ("dword", core))]))
        meta.append((K_CORE, install_lwt, SYS))
    if policy is not None:
        vals = []
        for k, v in policy.items():
            vals.append((k, ("sz", v) if isinstance(v, str) else ("dword", v)))
        keys.append((K_POL, vals))
        meta.append((K_POL, "2026-09-14 06:02:19", SYS))
    if local_ls is not None:
        if local_ls_shape == "value":
            keys.append((K_LLS, [("SpecifiedLicenseServers", ("multi", local_ls))]))
            meta.append((K_LLS, install[:10] + " 11:03:55", SYS))
        else:
            keys.append((K_LLS, []))
            keys.append((K_LLS_SUB, [("SpecifiedLicenseServers", ("multi", local_ls))]))
            meta.append((K_LLS, install[:10] + " 11:03:55", SYS))
            meta.append((K_LLS_SUB, install[:10] + " 11:03:55", SYS))
    rcm_vals = []
    if x509:
        rcm_vals = [
            ("Certificate", ("bin", blob(name + "cert", 312))),
            ("X509 Certificate", ("bin", blob(name + "x509", 620, bytes.fromhex("308202")))),
            ("X509 Certificate ID", ("bin", blob(name + "x509id", 20))),
            ("X509 Certificate2", ("bin", blob(name + "x5092", 644, bytes.fromhex("308202")))),
        ]
    keys.append((K_RCM, rcm_vals))
    meta.append((K_RCM, install_lwt, SYS))
    gvals = []
    if grace != "missing":
        gvals.append((TIMEBOMB, ("bin", blob(name + "timebomb" + (grace_lwt or ""), 230, DPAPI))))
    if grace == "tampered":
        gvals.append(("L$RTMTIMEBOMB", ("dword", 114515)))
    keys.append((K_GRACE, gvals))
    meta.append((K_GRACE, grace_lwt or (install[:10] + " 10:41:09"), grace_owner))
    if misplaced is not None:
        keys.append((K_MIS, [("LicensingMode", ("dword", misplaced))]))
        meta.append((K_MIS, grace_lwt, ADM))
    keys.sort(key=lambda kv: kv[0].lower())
    write_reg(name, keys, enc, comment=None)

    lt = wmi_lt
    ts = {
        "namespace_present": True,
        "terminal_server_mode": ts_mode,
        "licensing_type": lt,
        "licensing_name": LT_NAME[lt][0],
        "licensing_description": LT_NAME[lt][1],
        "policy_source_licensing_type": wmi_pslt,
        "policy_source_configured_license_servers": wmi_pscls,
    }
    if grace_error:
        ts["grace_period"] = {"called": True, "error": grace_error}
    else:
        ts["grace_period"] = {"called": True, "return_value": 0, "days_left": days_left}
    ts["specified_license_servers"] = {"called": True, "return_value": 0}
    if specified:
        ts["specified_license_servers"]["servers"] = specified
    if connectivity:
        ts["connectivity"] = [{"server": s, "called": True, "return_value": 0, "status": st} for s, st in connectivity]
    doc = {
        "host": {"name": name, "address": addr, "port": 5986, "group": group, "roles": ["session_host"]},
        "collected_at": COLLECTED,
        "os": ostype(osk, name, install, workgroup=workgroup),
        "terminal_services": ts,
    }
    if tags:
        doc["host"]["tags"] = list(tags)
    if deployment:
        doc["deployment_licensing"] = deployment
    if errors:
        doc["errors"] = errors
    doc["registry_meta"] = [{"path": "HKLM\\" + p, "last_write_time": iso(t), "owner": o} for p, t, o in meta]
    write_yaml(name, doc, [f"{name}: {story}", "Per-host evidence beside " + name + ".reg; see samples/README.md."])
    INVENTORY.append((name, addr, 5986, "session_host", group, ";".join(tags)))


PU_LS01 = {"LicensingMode": 4, "LicenseServers": "LS01"}
PD_LS01 = {"LicensingMode": 2, "LicenseServers": "LS01"}
DEPLOY_A = {"use_central_licensing_settings": True, "license_servers": ["LS01"], "licensing_type": 4}
OK01 = [("LS01", 11)]

# ---------------------------------------------------------------- farm-a, Per User
for n, ip, osk, inst, enc in [
    ("RDSH-A01", "10.10.1.11", "2022", "2023-04-12", "utf16"),
    ("RDSH-A02", "10.10.1.12", "2022", "2024-02-20", "utf16"),
    ("RDSH-A03", "10.10.1.13", "2019", "2022-09-05", "utf8-lf"),
]:
    session_host(n, ip, "farm-a", osk, inst + " 09:30:00", enc, "clean Per User host (policy 4, LS01).",
                 policy=PU_LS01, core=4, wmi_lt=4, wmi_pslt=1, wmi_pscls=1, specified=["LS01"],
                 connectivity=OK01, deployment=DEPLOY_A, tags=("prod",))

session_host("RDSH-A04", "10.10.1.14", "farm-a", "2022", "2024-06-03 14:05:00", "utf16",
             "policy Per User (4) disagrees with local Licensing Core Per Device (2); policy is effective.",
             policy=PU_LS01, core=2, wmi_lt=4, wmi_pslt=1, wmi_pscls=1, specified=["LS01"],
             connectivity=OK01, deployment=DEPLOY_A, tags=("prod",))

session_host("RDSH-A05", "10.10.1.15", "farm-a", "2022", "2023-11-20 08:12:00", "utf16",
             "grace reset tampering: DaysLeft 140, GracePeriod owned by Administrators and rewritten 2026-10-28, "
             "extra L$RTMTIMEBOMB DWORD, misplaced Licensing Core key, tooltip hidden, no X509 certificate.",
             policy={"LicensingMode": 4, "LicenseServers": "LS01", "fDisableTerminalServerTooltip": 1},
             core=4, grace="tampered", days_left=140, grace_lwt="2026-10-28 03:15:07", grace_owner=ADM,
             x509=False, misplaced=4, wmi_lt=4, wmi_pslt=1, wmi_pscls=1, specified=["LS01"],
             connectivity=OK01, deployment=DEPLOY_A, tags=("prod",))

session_host("RDSH-A06", "10.10.1.16", "farm-a", "2022", "2025-01-15 11:20:00", "utf8-bom",
             "Per Device (local 2 via RDS console, no policy) in a Per User farm; local license servers LS01,LS02 "
             "(a different set from the farm); LS02 reports status 4 (lower version).",
             core=2, local_ls=["LS01", "LS02"], wmi_lt=2, wmi_pslt=0, wmi_pscls=0, specified=["LS01", "LS02"],
             connectivity=[("LS01", 11), ("LS02", 4)], tags=("prod",))

session_host("RDSH-A07", "10.10.1.17", "farm-a", "2019", "2025-03-10 16:45:00", "utf16",
             "mode not configured (local 5, no policy, TerminalServerMode 1) and grace active (37 days) on a host "
             "installed 2025-03-10; GracePeriod rewritten 2026-08-10.",
             core=5, local_ls=["LS01"], days_left=37, grace_lwt="2026-08-10 04:00:12", x509=False,
             wmi_lt=5, wmi_pslt=0, wmi_pscls=0, specified=["LS01"], connectivity=OK01, tags=("prod",))

session_host("RDSH-A08", "10.10.1.18", "farm-a", "2019", "2023-05-22 09:10:00", "utf16",
             "Per User host (policy 4) pointed at LS02 only, which holds no Per User CALs; status 4 (lower version).",
             policy={"LicensingMode": 4, "LicenseServers": "LS02"}, core=4, wmi_lt=4, wmi_pslt=1, wmi_pscls=1,
             specified=["LS02"], connectivity=[("LS02", 4)], tags=("prod",))

# ---------------------------------------------------------------- farm-b, Per Device
for n, ip, osk, inst, enc in [
    ("RDSH-B01", "10.10.2.11", "2022", "2023-08-01", "utf16"),
    ("RDSH-B02", "10.10.2.12", "2022", "2024-01-09", "regedit4"),
    ("RDSH-B03", "10.10.2.13", "2019", "2022-03-14", "utf8-lf"),
]:
    session_host(n, ip, "farm-b", osk, inst + " 07:55:00", enc, "clean Per Device host (policy 2, LS01).",
                 policy=dict(PD_LS01, fSecureLicensing=0), core=2, wmi_lt=2, wmi_pslt=1, wmi_pscls=1,
                 specified=["LS01"], connectivity=OK01, tags=("prod",))

session_host("RDSH-B04", "10.10.2.14", "farm-b", "2022", "2024-09-30 10:00:00", "utf16",
             "2022 host pointed at LS02 only, which holds only 2016 (ProductVersionID 5) Per Device CALs; "
             "status 4 (lower version); a different license-server set in farm-b.",
             policy={"LicensingMode": 2, "LicenseServers": "LS02"}, core=2, wmi_lt=2, wmi_pslt=1, wmi_pscls=1,
             specified=["LS02"], connectivity=[("LS02", 4)], tags=("prod",))

session_host("RDSH-B05", "10.10.2.15", "farm-b", "2022", "2024-11-11 13:30:00", "utf16",
             "WMI LicensingType 4 (source 0) while the policy says Per Device (2); policy lists LS03, which is not "
             "in the inventory and reports status 6 (not connectable).",
             policy={"LicensingMode": 2, "LicenseServers": "LS01,LS03", "fPreventLicenseUpgrade": 1}, core=2,
             wmi_lt=4, wmi_pslt=0, wmi_pscls=1, specified=["LS01", "LS03"],
             connectivity=[("LS01", 11), ("LS03", 6)], tags=("prod",))

session_host("RDSH-B06", "10.10.2.16", "farm-b", "2016", "2021-05-17 09:00:00", "utf16",
             "licensed Per Device 2016 host without an X509 Certificate in RCM.",
             policy=PD_LS01, core=2, x509=False, wmi_lt=2, wmi_pslt=1, wmi_pscls=1, specified=["LS01"],
             connectivity=OK01, tags=("prod",))

session_host("RDSH-B07", "10.10.2.17", "farm-b", "2012r2", "2019-02-11 12:00:00", "utf16",
             "2012 R2 host: no policy, no Licensing Core key (mode absent), no license server anywhere, "
             "grace expired (DaysLeft 0): users are refused.",
             x509=False, wmi_lt=5, wmi_pslt=0, wmi_pscls=0, days_left=0,
             errors=[{"section": "wmi:Win32_TSDeploymentLicensing", "message": "Invalid class \"Win32_TSDeploymentLicensing\""}],
             tags=("prod", "legacy"))

session_host("RDSH-B08", "10.10.2.18", "farm-b", "2019", "2022-12-01 08:30:00", "utf16",
             "GracePeriod timebomb value deleted (key empty, owner Administrators, written 2026-10-30); "
             "GetGracePeriodDays fails.",
             policy=PD_LS01, core=2, grace="missing", grace_lwt="2026-10-30 01:02:03", grace_owner=ADM,
             grace_error="Exception calling \"GetGracePeriodDays\" : \"Invalid operation \"",
             wmi_lt=2, wmi_pslt=1, wmi_pscls=1, specified=["LS01"], connectivity=OK01, tags=("prod",))

INVENTORY.append(("RDSH-B09", "10.10.2.19", 5986, "session_host", "farm-b", "prod"))

# ---------------------------------------------------------------- others
session_host("WG-01", "10.10.3.21", "branch", "2022", "2024-04-22 15:10:00", "utf8-lf",
             "workgroup host in Per User mode (local 4); local license server list in the subkey shape.",
             core=4, local_ls=["LS01"], local_ls_shape="subkey", workgroup=True, wmi_lt=4, wmi_pslt=0,
             wmi_pscls=0, specified=["LS01"], connectivity=OK01, tags=("branch",))

session_host("RDSH-C01", "10.10.4.11", "pilot", "2025", "2025-06-15 10:00:00", "utf16",
             "Server 2025 host with policy LicensingMode 6 (AAD Per User) outside Azure Virtual Desktop; "
             "LS01 holds no 2025 CALs.",
             policy={"LicensingMode": 6, "LicenseServers": "LS01"}, core=5, wmi_lt=6, wmi_pslt=1, wmi_pscls=1,
             specified=["LS01"], connectivity=OK01, tags=("pilot",))

# ---------------------------------------------------------------- license servers
def ls_reg(name, install, enc):
    keys = [(K_RCM, [])]
    write_reg(name, keys, enc)
    return [{"path": "HKLM\\" + K_RCM, "last_write_time": iso(install[:10] + " 10:41:07"), "owner": SYS}]


def kp(id_, desc, kpt, pt, pvid, pv, total, issued, avail, exp, tam):
    return {"key_pack_id": id_, "description": desc, "key_pack_type": kpt, "product_type": pt,
            "product_version": pv, "product_version_id": pvid, "total_licenses": total,
            "issued_licenses": issued, "available_licenses": avail, "expiration_date": exp, "type_and_model": tam}


def il(lid, kpid, comp, user, issue, exp, status, hw):
    return {"license_id": lid, "key_pack_id": kpid, "issued_to_user": user, "issued_to_computer": comp,
            "hardware_id": hw, "issue_date": issue, "expiration_date": exp, "license_status": status}


def hwid(seed):
    h = hashlib.sha256(seed.encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


U = 4294967295
E38 = "20380101000000.000000-000"
issued = []
lid = 1
for i in range(1, 49):
    d = 1 + (i * 3) % 27
    issued.append(il(lid, 4, "WS-%04d" % i, "CORP\\user%03d" % i, "202609%02d081500.000000-000" % d,
                     "202612%02d081500.000000-000" % d, 2, hwid("ws%d" % i)))
    lid += 1
issued.append(il(lid, 4, "CLIENT-01", "CORP\\jdoe", "20260302091244.000000-000", "20260601091244.000000-000", 2, hwid("client01-old"))); lid += 1
issued.append(il(lid, 4, "CLIENT-02", "CORP\\asmith", "20260510142210.000000-000", "20261204142210.000000-000", 2, hwid("client02"))); lid += 1
for i in range(1, 13):
    issued.append(il(lid, 5, "WS-1%03d" % i, "CORP\\user1%02d" % i, "202608%02d100000.000000-000" % (i + 1),
                     "202611%02d100000.000000-000" % (i + 10), 2, hwid("ws1%d" % i)))
    lid += 1
issued.append(il(lid, 13, "CLIENT-01", "CORP\\jdoe", "20261020080144.000000-000", "20270118080144.000000-000", 1, hwid("client01-new"))); lid += 1
issued.append(il(lid, 13, "KIOSK-07", "", "20261025120000.000000-000", "20270123120000.000000-000", 1, hwid("kiosk07"))); lid += 1
issued.append(il(lid, 13, "KIOSK-08", "", "20261026120000.000000-000", "20270124120000.000000-000", 1, hwid("kiosk08"))); lid += 1

meta = ls_reg("LS01", "2023-02-01", "utf16")
doc = {
    "host": {"name": "LS01", "address": "10.10.0.5", "port": 5986, "group": "infra", "roles": ["license_server"], "tags": ["prod"]},
    "collected_at": COLLECTED,
    "os": ostype("2022", "LS01", "2023-02-01 10:00:00", roles=("RDS-Licensing",)),
    "terminal_services": {"namespace_present": True, "terminal_server_mode": 0, "licensing_type": 1,
                          "licensing_name": LT_NAME[1][0], "licensing_description": LT_NAME[1][1],
                          "grace_period": {"called": False}, "specified_license_servers": {"called": False}},
    "license_server": {
        "activation_status": {"called": True, "return_value": 0, "status": 0},
        "key_packs": [
            kp(2, "A02-5.00-EX", 6, 3, 0, "Windows 2000 Server", U, 0, U, E38, "Built-in TS Per Device CAL"),
            kp(3, "C50-10.02-S", 2, 1, 7, "Windows Server 2022", 100, 37, 63, E38, "RDS Per User CAL"),
            kp(4, "A02-10.02-S", 2, 0, 7, "Windows Server 2022", 50, 50, 0, E38, "RDS Per Device CAL"),
            kp(5, "A02-10.01-S", 1, 0, 6, "Windows Server 2019", 25, 12, 13, E38, "RDS Per Device CAL"),
            kp(6, "C50-10.01-S", 5, 1, 6, "Windows Server 2019", 20, 20, 0, "20261215000000.000000-000", "RDS Per User CAL"),
            kp(13, "A02-10.02-T", 4, 0, 7, "Windows Server 2022", U, 3, U, E38, "RDS Per Device CAL"),
        ],
        "issued_licenses": issued,
        "issued_total": len(issued),
        "reports": [{
            "file_name": "PerUserReport_20261001_030000.xml", "generated_date": "20261001030000.000000-000",
            "scope_type": 0,
            "summary": [
                {"product_version_id": 7, "product_version": "Windows Server 2022", "installed_licenses": 100, "issued_licenses": 37, "cal_type": 1},
                {"product_version_id": 6, "product_version": "Windows Server 2019", "installed_licenses": 20, "issued_licenses": 26, "cal_type": 1},
            ],
        }],
    },
    "registry_meta": meta,
}
write_yaml("LS01", doc, ["LS01: activated 2022 license server (English); see samples/README.md for its key packs."])
INVENTORY.append(("LS01", "10.10.0.5", 5986, "license_server", "infra", "prod"))

E36 = "01.01.2036 00:00:00"
issued2 = []
for i in range(1, 9):
    issued2.append(il(100 + i, 4, "WS-2%03d" % i, "CORP\\user2%02d" % i, "%02d.03.2026 10:12:44" % (i + 10),
                      "%02d.06.2026 10:12:44" % (i + 10), 2, hwid("ws2%d" % i)))
for i in range(1, 6):
    issued2.append(il(200 + i, 5, "WS-3%03d" % i, "CORP\\user3%02d" % i, "%02d.09.2026 08:30:00" % (i + 1),
                      "%02d.12.2026 08:30:00" % (i + 1), 2, hwid("ws3%d" % i)))
meta = ls_reg("LS02", "2017-06-01", "utf16")
doc = {
    "host": {"name": "LS02", "address": "10.10.0.6", "port": 5986, "group": "infra", "roles": ["license_server"], "tags": ["prod"]},
    "collected_at": COLLECTED,
    "os": ostype("2016", "LS02", "2017-06-01 10:00:00", roles=("RDS-Licensing",), locale="de-DE", off="+060",
                 boot="2026-10-04 02:00:00"),
    "terminal_services": {"namespace_present": True, "terminal_server_mode": 0, "licensing_type": 1,
                          "licensing_name": "Remotedesktop für Verwaltung",
                          "licensing_description": "Remotedesktop für Verwaltung",
                          "grace_period": {"called": False}, "specified_license_servers": {"called": False}},
    "license_server": {
        "activation_status": {"called": True, "return_value": 0, "status": 1},
        "key_packs": [
            kp(2, "A02-5.00-EX", 6, 3, 0, "Windows 2000 Server", -1, 0, -1, "19.01.2038 03:14:07", "Built-in TS Per Device CAL"),
            kp(3, "A02-6.01-S", 2, 0, 3, "Windows Server 2008 oder Windows Server 2008 R2", 10, 0, 10, E36, "TS- oder RDS-Pro-Gerät-CAL"),
            kp(4, "A02-10.00-S", 2, 0, 5, "Windows Server 2016", 30, 8, 22, E36, "RDS-Pro-Gerät-CAL"),
            kp(5, "A02-10.01-S", 2, 0, 6, "Windows Server 2019", 50, 5, 45, "31.12.2038 00:00:00", "RDS-Pro-Gerät-CAL"),
        ],
        "issued_licenses": issued2,
        "issued_total": len(issued2),
    },
    "registry_meta": meta,
}
write_yaml("LS02", doc, ["LS02: NOT activated 2016 license server, German locale (de-DE), holding 2019 Per Device CALs",
                         "and no Per User CALs at all;",
                         "dates are locale formatted (dd.MM.yyyy) as a German-locale collector printed them."])
INVENTORY.append(("LS02", "10.10.0.6", 5986, "license_server", "infra", "prod"))

# ---------------------------------------------------------------- clients
def client(name, addr, osk, install, enc, story, store_subkeys, store_lwt, tags=()):
    keys = [(K_HWID, [("ClientHWID", ("bin", blob(name + "hwid", 20, b"\x02\x00\x00\x00")))])]
    keys.append((K_STORE, []))
    meta = [{"path": "HKLM\\" + K_HWID, "last_write_time": iso(store_lwt), "owner": SYS},
            {"path": "HKLM\\" + K_STORE, "last_write_time": iso(store_lwt), "owner": SYS}]
    for sk in store_subkeys:
        keys.append((K_STORE + "\\" + sk, [("ClLicense", ("bin", blob(name + sk, 1296, b"\x05\x00\x00\x00")))]))
        meta.append({"path": "HKLM\\" + K_STORE + "\\" + sk, "last_write_time": iso(store_lwt), "owner": SYS})
    write_reg(name, keys, enc)
    doc = {
        "host": {"name": name, "address": addr, "port": 5986, "group": "clients", "roles": ["client"], "tags": list(tags)},
        "collected_at": COLLECTED,
        "os": ostype(osk, name, install, roles=()),
        "terminal_services": {"namespace_present": False, "grace_period": {"called": False},
                              "specified_license_servers": {"called": False}},
        "registry_meta": meta,
    }
    doc["os"]["domain_role"] = 1
    write_yaml(name, doc, [f"{name}: {story}"])
    INVENTORY.append((name, addr, 5986, "client", "clients", ";".join(tags)))


client("CLIENT-01", "10.10.5.101", "win11", "2025-11-03 09:00:00", "utf16",
       "MSLicensing store rewritten 2026-10-20, after its permanent CAL (2026-03-02); LS01 issued it a temporary CAL on 2026-10-20.",
       ["LICENSE000"], "2026-10-20 07:58:12", tags=("office",))
client("CLIENT-02", "10.10.5.102", "win11-23h2", "2024-08-19 09:00:00", "utf8-lf",
       "MSLicensing Store key empty (no LICENSE subkeys) while LS01 lists an active Per Device CAL for it.",
       [], "2026-09-03 16:20:41", tags=("office",))

# ---------------------------------------------------------------- 2008 R2
doc = {
    "host": {"name": "OLD-2008R2", "address": "10.10.9.9", "port": 5985, "group": "legacy", "roles": ["session_host"], "tags": ["legacy"]},
    "collected_at": COLLECTED,
    "status": "failed",
    "failure": {"class": "unsupported_os",
                "message": "Windows Server 2008 R2 (6.1.7601) with PowerShell 2.0 is out of support and has no ConvertTo-Json; not collected"},
    "os": {"computer_name": "OLD-2008R2", "caption": "Microsoft Windows Server 2008 R2 Enterprise", "version": "6.1.7601",
           "build_number": "7601", "install_date": "20120305110000.000000+000", "domain": "corp.example.com",
           "part_of_domain": True, "domain_role": 3, "ps_version": "2.0", "locale": "en-US"},
}
write_yaml("OLD-2008R2", doc, ["OLD-2008R2: Windows Server 2008 R2 session host: unsupported, no registry evidence (no .reg)."])
INVENTORY.append(("OLD-2008R2", "10.10.9.9", 5985, "session_host", "legacy", "legacy"))

order = {n: i for i, n in enumerate(["LS01", "LS02"])}
with open(os.path.join(os.path.dirname(OUT.rstrip("/")), "inventory.csv"), "w", newline="\n") as f:
    f.write("name,address,port,roles,group,tags\n")
    for row in sorted(INVENTORY, key=lambda r: (r[4] != "infra", r[4], r[0])):
        f.write(",".join(str(x) for x in row) + "\n")
