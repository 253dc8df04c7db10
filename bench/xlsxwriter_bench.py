"""Write the rows of BenchmarkWrite10k (report/bench_test.go) with XlsxWriter in
constant_memory mode: Findings (100,000 x 16), Hosts (10,000 x 23), Coverage (10,000 x 10),
About evidence list (10,000 x 4), with the same kinds of values (text, numbers, dates).
Usage: /usr/bin/python3 xlsxwriter_bench.py OUT.xlsx [hosts] [per_host]"""
import sys, time, datetime
import xlsxwriter

out = sys.argv[1]
hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
per = int(sys.argv[3]) if len(sys.argv) > 3 else 10
t0 = datetime.datetime(2026, 11, 2, 8, 0, 0)
sev = ["critical", "high", "medium", "low", "info"]
start = time.time()
wb = xlsxwriter.Workbook(out, {"constant_memory": True})
date = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
hdr = wb.add_format({"bold": True})
def header(ws, cols):
    for c, h in enumerate(cols):
        ws.write_string(0, c, h, hdr)
    ws.freeze_panes(1, 0)
wb.add_worksheet("Summary").write_string(0, 0, "RDS CAL licensing audit")
f = wb.add_worksheet("Findings")
header(f, ["Finding ID", "Rule ID", "Severity", "Status", "Outcome", "Subject", "Host", "Group", "Message",
           "Observed", "Expected", "Evidence source", "Strength", "Remediation", "First seen", "Last seen"])
r = 1
for i in range(hosts):
    name = "rdsh-%05d.corp.example" % i
    group = "farm-%02d" % (i % 20)
    for j in range(per):
        ws = f
        ws.write_string(r, 0, "F-%010X" % (i * per + j))
        ws.write_string(r, 1, "RDS-R%d" % (10 + j))
        ws.write_string(r, 2, sev[(i + j) % 5])
        ws.write_string(r, 3, "persisting")
        ws.write_string(r, 4, "fail")
        ws.write_string(r, 5, "host:" + name)
        ws.write_string(r, 6, name)
        ws.write_string(r, 7, group)
        ws.write_string(r, 8, "finding %d on host %s: observed value differs from the expected value" % (j, name))
        ws.write_string(r, 9, "observed %d" % (i * per + j))
        ws.write_string(r, 10, "expected value")
        ws.write_string(r, 11, "policy")
        ws.write_string(r, 13, "Fix the configuration by Group Policy and re-run the audit.")
        ws.write_datetime(r, 14, t0 - datetime.timedelta(days=30 * j), date)
        ws.write_datetime(r, 15, t0, date)
        r += 1
f.add_table(0, 0, r - 1, 15, {"name": "Findings", "autofilter": True,
    "columns": [{"header": h} for h in ["Finding ID", "Rule ID", "Severity", "Status", "Outcome", "Subject", "Host", "Group", "Message",
           "Observed", "Expected", "Evidence source", "Strength", "Remediation", "First seen", "Last seen"]]})
h = wb.add_worksheet("Hosts")
header(h, ["c%d" % c for c in range(23)])
for i in range(hosts):
    name = "rdsh-%05d.corp.example" % i
    row = [name, "farm-%02d" % (i % 20), "session_host", "collected", "Per User (4)", "policy", "Per User (4)", "Per User (4)",
           "Per User (4)", "ls-01.corp.example", "policy", "ls-01.corp.example", None, "ls-01.corp.example"]
    for c, v in enumerate(row):
        if v is not None:
            h.write_string(i + 1, c, v)
    h.write_number(i + 1, 14, i % 121)
    h.write_datetime(i + 1, 16, t0 - datetime.timedelta(hours=i), date)
    for c, v in zip((17, 18, 19, 20), ("Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348", "2022")):
        h.write_string(i + 1, c, v)
    h.write_datetime(i + 1, 21, t0 - datetime.timedelta(days=730 + i % 700), date)
    h.write_string(i + 1, 22, "corp.example")
for s in ["License Servers", "CAL Position", "Issued CALs", "Drift", "Waivers"]:
    header(wb.add_worksheet(s), ["a", "b"])
c = wb.add_worksheet("Coverage")
header(c, ["c%d" % k for k in range(10)])
for i in range(hosts):
    name = "rdsh-%05d.corp.example" % i
    for k, v in enumerate([name, "farm-%02d" % (i % 20), "session_host", "collected"]):
        c.write_string(i + 1, k, v)
    c.write_string(i + 1, 7, "winrm")
    c.write_datetime(i + 1, 8, t0, date)
a = wb.add_worksheet("About")
for i in range(hosts):
    name = "rdsh-%05d.corp.example" % i
    a.write_string(i + 1, 0, name)
    a.write_number(i + 1, 1, 20000 + i)
    a.write_string(i + 1, 2, "evidence/" + name + ".json")
    a.write_string(i + 1, 3, "%064x" % i)
wb.close()
print("xlsxwriter-s %.2f" % (time.time() - start))
