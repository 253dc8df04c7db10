package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdsaudit/rdsaudit/config"
)

// TestKubernetesBundles checks the split deployment: an Indexed Job whose pods each
// collect shard $(JOB_COMPLETION_INDEX) of N (N agreeing with completions), a central
// Job running on the bundles, both on one ReadWriteMany claim at one path, and both
// embedded configurations loading with config.Load.
func TestKubernetesBundles(t *testing.T) {
	byName := map[string]map[string]any{}
	for _, d := range docs(t, "kubernetes/bundles.yaml") {
		byName[at(t, d, "kind").(string)+"/"+at(t, d, "metadata", "name").(string)] = d
	}
	pvc, cm := byName["PersistentVolumeClaim/rdsaudit-bundles"], byName["ConfigMap/rdsaudit-bundles-config"]
	collect, central := byName["Job/rdsaudit-collect"], byName["Job/rdsaudit-central"]
	if pvc == nil || cm == nil || collect == nil || central == nil {
		t.Fatalf("objects %v", byName)
	}
	if modes := at(t, pvc, "spec", "accessModes").([]any); len(modes) != 1 || modes[0] != "ReadWriteMany" {
		t.Errorf("bundle PVC access modes %v: parallel pods need ReadWriteMany", modes)
	}
	if at(t, collect, "spec", "completionMode") != "Indexed" {
		t.Error("collector Job is not Indexed")
	}
	n := at(t, collect, "spec", "completions").(int)
	if p := at(t, collect, "spec", "parallelism").(int); p != n {
		t.Errorf("parallelism %d, completions %d", p, n)
	}
	if lbl := at(t, central, "metadata", "labels", "app.kubernetes.io/component"); lbl != "central" {
		t.Errorf("central Job label %v: the README's apply -l selectors need component=central", lbl)
	}
	if lbl := at(t, collect, "metadata", "labels", "app.kubernetes.io/component"); lbl == "central" {
		t.Error("collector Job labelled central")
	}

	dataMount := func(job map[string]any) string {
		pod := at(t, job, "spec", "template", "spec")
		if at(t, pod, "restartPolicy") != "Never" || at(t, pod, "securityContext", "runAsNonRoot") != true {
			t.Error("pod: want restartPolicy Never and runAsNonRoot")
		}
		claim := ""
		for _, v := range at(t, pod, "volumes").([]any) {
			if c, ok := v.(map[string]any)["persistentVolumeClaim"]; ok {
				claim = at(t, v, "name").(string)
				if at(t, c, "claimName") != "rdsaudit-bundles" {
					t.Errorf("claim %v", c)
				}
			}
		}
		for _, m := range at(t, pod, "containers", 0, "volumeMounts").([]any) {
			if at(t, m, "name") == claim {
				return at(t, m, "mountPath").(string)
			}
		}
		t.Fatal("no PVC mount")
		return ""
	}
	if a, b := dataMount(collect), dataMount(central); a != b {
		t.Errorf("collectors mount the bundles at %s, the central run at %s", a, b)
	}
	args := func(job map[string]any) []string {
		var out []string
		for _, a := range at(t, job, "spec", "template", "spec", "containers", 0, "args").([]any) {
			out = append(out, a.(string))
		}
		return out
	}
	ca := strings.Join(args(collect), " ")
	if !strings.HasPrefix(ca, "collect --config /etc/rdsaudit/collect.yaml ") ||
		!strings.Contains(ca, fmt.Sprintf("--shard-index $(JOB_COMPLETION_INDEX)/%d", n)) {
		t.Errorf("collector args %q: want collect … --shard-index $(JOB_COMPLETION_INDEX)/%d", ca, n)
	}
	if got := strings.Join(args(central), " "); got != "run --config /etc/rdsaudit/central.yaml" {
		t.Errorf("central args %q", got)
	}

	// Both configurations load, with the pods' mount paths under a temporary root.
	root := t.TempDir()
	for _, d := range []string{"var/lib/rdsaudit/bundles", "etc/rdsaudit-pub"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/rdsaudit-pub/k8s-collect.pub"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"collect.yaml", "central.yaml"} {
		body := at(t, cm, "data", name).(string)
		for _, p := range []string{"/var/lib/rdsaudit", "/etc/rdsaudit-pub", "/run/secrets"} {
			body = strings.ReplaceAll(body, p, root+p)
		}
		path := filepath.Join(root, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch name {
		case "collect.yaml":
			if cfg.Site.Name == "" || cfg.Signing.KeyFile == "" || cfg.Collection.Source != config.SourceWinRM {
				t.Errorf("collect.yaml: site %q, signing key %q, source %s", cfg.Site.Name, cfg.Signing.KeyFile, cfg.Collection.Source)
			}
			if !strings.Contains(ca, "--bundle "+dataMount(collect)+"/bundles") {
				t.Errorf("collectors write bundles outside %s/bundles: %s", dataMount(collect), ca)
			}
		case "central.yaml":
			if cfg.Collection.Source != config.SourceBundles || len(cfg.Bundles.TrustedKeys) == 0 ||
				cfg.Collection.Bundles[0] != root+dataMount(central)+"/bundles" {
				t.Errorf("central.yaml: source %s, bundles %v, keys %v", cfg.Collection.Source, cfg.Collection.Bundles, cfg.Bundles.TrustedKeys)
			}
		}
	}
}

// TestSystemdCollectorUnits: the per-site collector template writes bundles under the
// service's only writable path, with the site's password and signing key as
// credentials, and its timer fires before the central rdsaudit.timer.
func TestSystemdCollectorUnits(t *testing.T) {
	u := readUnit(t, "systemd/rdsaudit-collect@.service")
	for _, kv := range [][2]string{
		{"NoNewPrivileges", "yes"}, {"ProtectSystem", "strict"}, {"ReadWritePaths", "/var/lib/rdsaudit"},
		{"LoadCredential", "winrm-password:/etc/rdsaudit/%i/winrm.password"}, {"LoadCredential", "signing-key:/etc/rdsaudit/%i/signing.key"},
		{"User", "rdsaudit"}, {"CapabilityBoundingSet", ""}, {"UMask", "0027"}, {"Type", "oneshot"},
	} {
		if !u.has("Service", kv[0], kv[1]) {
			t.Errorf("rdsaudit-collect@.service lacks %s=%s", kv[0], kv[1])
		}
	}
	cmd := strings.Join(u["Service"]["ExecStart"], "")
	if !strings.HasPrefix(cmd, "/usr/local/bin/rdsaudit collect --config /etc/rdsaudit/collect-%i.yaml --bundle /var/lib/rdsaudit/bundles") {
		t.Errorf("ExecStart=%s", cmd)
	}
	timer := readUnit(t, "systemd/rdsaudit-collect@.timer")
	if !timer.has("Timer", "OnCalendar", "*-*-01 05:00:00") || !timer.has("Install", "WantedBy", "timers.target") {
		t.Error("rdsaudit-collect@.timer: want the first of the month at 05:00, wanted by timers.target")
	}
}
