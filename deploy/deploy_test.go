// Package deploy_test checks the deployment files: the systemd units' directives (CI
// also runs systemd-analyze verify on them), the Kubernetes manifests (YAML, the
// CronJob's settings, its embedded configuration loaded by config.Load), the Task
// Scheduler XML (well-formed, the monthly trigger) and the Dockerfile's instructions.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rdsaudit/rdsaudit/config"
)

// unit is a systemd unit file: section → key → values (a key may repeat).
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unit) has(section, key, value string) bool {
	for _, v := range u[section][key] {
		if v == value {
			return true
		}
	}
	return false
}

func TestSystemdUnits(t *testing.T) {
	timer := readUnit(t, "systemd/rdsaudit.timer")
	for _, kv := range [][2]string{{"OnCalendar", "*-*-01 06:00:00"}, {"Persistent", "true"}, {"Unit", "rdsaudit.service"}} {
		if !timer.has("Timer", kv[0], kv[1]) {
			t.Errorf("rdsaudit.timer lacks %s=%s", kv[0], kv[1])
		}
	}
	if !timer.has("Install", "WantedBy", "timers.target") {
		t.Error("rdsaudit.timer is not wanted by timers.target")
	}
	for _, name := range []string{"rdsaudit.service", "rdsaudit-schedule.service"} {
		u := readUnit(t, filepath.Join("systemd", name))
		for _, kv := range [][2]string{
			{"NoNewPrivileges", "yes"}, {"ProtectSystem", "strict"}, {"ReadWritePaths", "/var/lib/rdsaudit"},
			{"LoadCredential", "winrm-password:/etc/rdsaudit/winrm.password"}, {"User", "rdsaudit"},
			{"CapabilityBoundingSet", ""}, {"PrivateTmp", "yes"}, {"UMask", "0027"},
		} {
			if !u.has("Service", kv[0], kv[1]) {
				t.Errorf("%s lacks %s=%s", name, kv[0], kv[1])
			}
		}
		cmd := strings.Join(u["Service"]["ExecStart"], "")
		want := map[string]string{"rdsaudit.service": " run --config ", "rdsaudit-schedule.service": " schedule --config "}[name]
		if !strings.HasPrefix(cmd, "/usr/local/bin/rdsaudit ") || !strings.Contains(cmd, want) {
			t.Errorf("%s: ExecStart=%s", name, cmd)
		}
	}
	run := readUnit(t, "systemd/rdsaudit.service")
	if !run.has("Service", "Type", "oneshot") || len(run["Install"]) != 0 {
		t.Error("rdsaudit.service: want Type=oneshot started by the timer only (no [Install])")
	}
	sched := readUnit(t, "systemd/rdsaudit-schedule.service")
	if !sched.has("Service", "ExecReload", "/bin/kill -HUP $MAINPID") || !sched.has("Install", "WantedBy", "multi-user.target") {
		t.Error("rdsaudit-schedule.service: want reload by SIGHUP and WantedBy=multi-user.target")
	}
}

// docs decodes every document of a YAML stream.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
}

// at walks a decoded YAML value by map keys and list indexes.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesCronJob(t *testing.T) {
	byKind := map[string]map[string]any{}
	for _, d := range docs(t, "kubernetes/cronjob.yaml") {
		kind, _ := d["kind"].(string)
		if kind == "" || d["apiVersion"] == nil || at(t, d, "metadata", "name") == nil {
			t.Fatalf("a document without kind, apiVersion or metadata.name: %v", d)
		}
		byKind[kind] = d
	}
	cj := byKind["CronJob"]
	if cj == nil || byKind["PersistentVolumeClaim"] == nil || byKind["ConfigMap"] == nil {
		t.Fatalf("kinds %v, want a CronJob, a PersistentVolumeClaim and a ConfigMap", byKind)
	}
	if at(t, cj, "apiVersion") != "batch/v1" || at(t, cj, "spec", "concurrencyPolicy") != "Forbid" {
		t.Error("CronJob: want batch/v1 with concurrencyPolicy: Forbid")
	}
	if d, ok := at(t, cj, "spec", "startingDeadlineSeconds").(int); !ok || d <= 0 {
		t.Errorf("CronJob: startingDeadlineSeconds = %v", at(t, cj, "spec", "startingDeadlineSeconds"))
	}
	pod := at(t, cj, "spec", "jobTemplate", "spec", "template", "spec")
	if at(t, pod, "restartPolicy") != "Never" || at(t, pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod: want restartPolicy Never and runAsNonRoot")
	}
	volumes := map[string]map[string]any{}
	for _, v := range at(t, pod, "volumes").([]any) {
		volumes[at(t, v, "name").(string)] = v.(map[string]any)
	}
	mounts := map[string]string{}
	for _, m := range at(t, pod, "containers", 0, "volumeMounts").([]any) {
		mounts[at(t, m, "name").(string)] = at(t, m, "mountPath").(string)
	}
	var secretMount, pvcMount, configMount string
	for name, v := range volumes {
		switch {
		case v["secret"] != nil:
			secretMount = mounts[name]
		case v["persistentVolumeClaim"] != nil:
			pvcMount = mounts[name]
			if at(t, v, "persistentVolumeClaim", "claimName") != at(t, byKind["PersistentVolumeClaim"], "metadata", "name") {
				t.Error("the PVC volume names another claim")
			}
		case v["configMap"] != nil:
			configMount = mounts[name]
		}
	}
	if secretMount == "" || pvcMount == "" || configMount == "" {
		t.Fatalf("mounts: secret %q, PVC %q, config %q", secretMount, pvcMount, configMount)
	}
	args := at(t, pod, "containers", 0, "args").([]any)
	if len(args) < 3 || args[0] != "run" || args[1] != "--config" || !strings.HasPrefix(args[2].(string), configMount+"/") {
		t.Errorf("args %v: want run --config %s/…", args, configMount)
	}

	// The embedded configuration loads, reads the password from the Secret's mount and
	// writes to the PVC.
	dir := t.TempDir()
	path := filepath.Join(dir, "rdsaudit.yaml")
	body := at(t, byKind["ConfigMap"], "data", filepath.Base(args[2].(string))).(string)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the ConfigMap's configuration: %v", err)
	}
	if pf := cfg.Credentials[0].PasswordFile; !strings.HasPrefix(pf, secretMount+"/") {
		t.Errorf("password_file %s is not in the Secret's mount %s", pf, secretMount)
	}
	if !strings.HasPrefix(cfg.OutputDir, pvcMount+"/") {
		t.Errorf("output_dir %s is not on the PVC (%s)", cfg.OutputDir, pvcMount)
	}
}

// task is the part of a Task Scheduler task definition the test checks.
type task struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/windows/2004/02/mit/task Task"`
	Calendar struct {
		Days   []int `xml:"ScheduleByMonth>DaysOfMonth>Day"`
		Months struct {
			List []struct{ XMLName xml.Name } `xml:",any"`
		} `xml:"ScheduleByMonth>Months"`
		StartBoundary string `xml:"StartBoundary"`
	} `xml:"Triggers>CalendarTrigger"`
	Principal struct {
		LogonType string `xml:"LogonType"`
		RunLevel  string `xml:"RunLevel"`
	} `xml:"Principals>Principal"`
	Settings struct {
		MultipleInstancesPolicy string `xml:"MultipleInstancesPolicy"`
		StartWhenAvailable      bool   `xml:"StartWhenAvailable"`
		ExecutionTimeLimit      string `xml:"ExecutionTimeLimit"`
	} `xml:"Settings"`
	Exec struct {
		Command   string `xml:"Command"`
		Arguments string `xml:"Arguments"`
	} `xml:"Actions>Exec"`
}

func TestTaskSchedulerXML(t *testing.T) {
	data, err := os.ReadFile("windows/rdsaudit-task.xml")
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed: every token decodes, to the end.
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rdsaudit-task.xml is not well-formed: %v", err)
		}
	}
	var tk task
	if err := xml.Unmarshal(data, &tk); err != nil {
		t.Fatal(err)
	}
	if len(tk.Calendar.Days) != 1 || tk.Calendar.Days[0] != 1 || len(tk.Calendar.Months.List) != 12 || tk.Calendar.StartBoundary == "" {
		t.Errorf("trigger: %+v, want day 1 of all 12 months", tk.Calendar)
	}
	if tk.Settings.MultipleInstancesPolicy != "IgnoreNew" || !tk.Settings.StartWhenAvailable || tk.Settings.ExecutionTimeLimit == "" {
		t.Errorf("settings: %+v", tk.Settings)
	}
	if tk.Principal.LogonType != "Password" || tk.Principal.RunLevel != "LeastPrivilege" {
		t.Errorf("principal: %+v", tk.Principal)
	}
	if !strings.HasSuffix(tk.Exec.Command, `\rdsaudit.exe`) || !strings.HasPrefix(tk.Exec.Arguments, "run --config ") {
		t.Errorf("action: %+v", tk.Exec)
	}
	ps, err := os.ReadFile("windows/register-task.ps1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"'rdsaudit-task.xml'", "Register-ScheduledTask", "-LogonType Password", "param("} {
		if !bytes.Contains(ps, []byte(want)) {
			t.Errorf("register-task.ps1 lacks %s", want)
		}
	}
}

// dockerInstructions are the Dockerfile instructions.
var dockerInstructions = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true, "COPY": true,
	"ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true, "ONBUILD": true,
	"STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true,
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Logical lines: comments and blank lines dropped, continuations joined.
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+trimmed)
		cur = ""
	}
	if cur != "" {
		t.Fatalf("the Dockerfile ends in a continuation: %q", cur)
	}
	stages := map[string]bool{}
	var froms []string
	var user, entrypoint string
	cgo := false
	for i, l := range lines {
		kw, rest, _ := strings.Cut(l, " ")
		kw = strings.ToUpper(kw)
		if !dockerInstructions[kw] {
			t.Fatalf("line %q: unknown instruction %s", l, kw)
		}
		if len(froms) == 0 && kw != "ARG" && kw != "FROM" {
			t.Fatalf("instruction %d (%s) comes before the first FROM", i, kw)
		}
		f := strings.Fields(rest)
		switch kw {
		case "FROM":
			froms = append(froms, f[0])
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			}
			user = "" // per stage
		case "COPY":
			if from, ok := strings.CutPrefix(f[0], "--from="); ok && !stages[from] {
				t.Errorf("COPY --from=%s: no such stage", from)
			}
		case "RUN":
			if strings.Contains(rest, "go build") && strings.Contains(rest, "CGO_ENABLED=0") {
				cgo = true
			}
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		}
	}
	if !cgo {
		t.Error("the binary is not built with CGO_ENABLED=0")
	}
	if len(froms) < 2 || !strings.Contains(froms[len(froms)-1], "distroless/static") {
		t.Errorf("stages %v: want a build stage and a distroless/static final stage", froms)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 || ep[0] != "/usr/local/bin/rdsaudit" {
		t.Errorf("ENTRYPOINT %s: want the exec form of /usr/local/bin/rdsaudit", entrypoint)
	}
}
