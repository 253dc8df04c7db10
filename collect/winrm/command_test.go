package winrm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
	"github.com/rdsaudit/rdsaudit/facts"
	"github.com/rdsaudit/rdsaudit/rules"
)

// captured is what a client sent, decoded from the SOAP the simulator read.
type captured struct {
	mu       sync.Mutex
	actions  []string
	commands []string
	stdin    []byte
	ends     int
}

func (c *captured) record(body []byte) {
	var env struct {
		Header struct {
			Action string `xml:"Action"`
		} `xml:"Header"`
		Body struct {
			Command string `xml:"CommandLine>Command"`
			Streams []struct {
				Name string `xml:"Name,attr"`
				End  string `xml:"End,attr"`
				Data string `xml:",chardata"`
			} `xml:"Send>Stream"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := env.Header.Action
	c.actions = append(c.actions, a[strings.LastIndexByte(a, '/')+1:])
	if env.Body.Command != "" {
		c.commands = append(c.commands, env.Body.Command)
	}
	for _, s := range env.Body.Streams {
		b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(s.Data))
		c.stdin = append(c.stdin, b...)
		if s.End == "true" {
			c.ends++
		}
	}
}

func plainServer(t *testing.T, ev *evidence.Evidence, f winrmtest.Faults) (*winrmtest.Server, *captured) {
	t.Helper()
	cap := &captured{}
	s := winrmtest.NewServer("rdsh01", ev, winrmtest.ServerOptions{Users: map[string]string{testUser: testPassword}, Faults: f, Capture: cap.record})
	t.Cleanup(s.Close)
	return s, cap
}

func plainCollector(t *testing.T, s *winrmtest.Server, opts winrm.Options) *winrm.Collector {
	t.Helper()
	opts.Scheme, opts.Port, opts.Auth, opts.AllowBasicOverHTTP = "http", s.Port, winrm.AuthBasic, true
	return labCollector(t, testUser, testPassword, opts)
}

// TestScriptSentInPlainText decodes what the collector sent, as the simulator read it:
// the fixed command line, then stdin (every Send, the last with End="true") holding
// one line of parameters and the embedded script byte for byte; with
// collection.key_metadata false the script without key metadata, and the keys come
// back without LastWriteTime. One collection costs Create, Command, one Send, Receive
// and Delete: the plain delivery adds one POST (the Send) to what the packed command
// line needed.
func TestScriptSentInPlainText(t *testing.T) {
	for _, km := range []bool{true, false} {
		ev := virtualHost("rdsh01", false, 0)
		when := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		ev.Registry[1].LastWriteTime = &when
		s, cap := plainServer(t, ev, winrmtest.Faults{})
		c := plainCollector(t, s, winrm.Options{NoKeyMetadata: !km})
		host := evidence.HostRef{Name: "rdsh01", Address: "127.0.0.1", Roles: []string{evidence.RoleSessionHost}}
		got := c.Collect(context.Background(), host)
		if got.Status != evidence.StatusCollected {
			t.Fatalf("key_metadata %t: %+v", km, got.Failure)
		}
		if len(cap.commands) != 1 || cap.commands[0] != winrm.CommandLine {
			t.Fatalf("key_metadata %t: command lines %q", km, cap.commands)
		}
		data, script, ok := bytes.Cut(cap.stdin, []byte("\n"))
		if !ok || string(script) != winrm.Script(km) || cap.ends != 1 {
			t.Fatalf("key_metadata %t: stdin is not the parameters and the embedded script (ends %d)", km, cap.ends)
		}
		var p winrm.ScriptParams
		if err := json.Unmarshal(data, &p); err != nil || len(p.Keys) != len(evidence.KeysFor(host.Roles)) {
			t.Errorf("key_metadata %t: parameters %s: %v", km, data, err)
		}
		if st := s.Stats(); st["Create"] != 1 || st["Command"] != 1 || st["Send"] != 1 || st["Receive"] != 1 || st["Delete"] != 1 || st["Signal"] != 0 {
			t.Errorf("key_metadata %t: POSTs %v", km, st)
		}
		k := got.Key(evidence.KeyGracePeriod)
		if k == nil || (k.LastWriteTime != nil) != km {
			t.Errorf("key_metadata %t: GracePeriod %+v", km, k)
		}
		// Redacted either way: hashed on the host with key metadata, by the collector
		// without (the host sent the hex).
		const timebombSHA = "66840dda154e8a113c31dd0ad32f7f3a366a80e8136979d8f5a101d3d29d6f72" // sha256 of 01..08
		if v := k.Value(evidence.ValTimebomb); v == nil || !v.Redacted || v.Hex != "" || v.SHA256 != timebombSHA || v.Length != 8 {
			t.Errorf("key_metadata %t: timebomb %+v, want redacted with its SHA-256", km, v)
		}
		if v := got.Key(evidence.KeyLicensingCore).Value(evidence.ValLicensingMode); v == nil || v.Number == nil {
			t.Errorf("key_metadata %t: LicensingMode %+v", km, v)
		}
	}
}

// TestSignalOnDeadline: a command still running at the host deadline is terminated with
// a Signal that actually reaches the host (a fresh short context, not the expired one),
// then the shell is deleted.
func TestSignalOnDeadline(t *testing.T) {
	s, cap := plainServer(t, virtualHost("rdsh01", false, 0), winrmtest.Faults{ScriptDelay: time.Minute})
	c := plainCollector(t, s, winrm.Options{HostTimeout: 1500 * time.Millisecond, OperationTimeout: time.Second, Retries: -1})
	got := c.Collect(context.Background(), evidence.HostRef{Name: "rdsh01", Address: "127.0.0.1", Roles: []string{evidence.RoleSessionHost}})
	if got.Failure == nil || got.Failure.Class != evidence.FailTimeout {
		t.Fatalf("want timeout, got %+v", got.Failure)
	}
	st := s.Stats()
	if st["Signal"] != 1 || st["Delete"] != 1 {
		t.Errorf("POSTs %v (%v): want one Signal, then the Delete", st, cap.actions)
	}
	if n := s.OpenShells(); n != 0 {
		t.Errorf("%d shells open", n)
	}
}

// TestLostShellReadsSpecificMessage: Windows puts the generic reason of
// w:InvalidSelectors in the fault's reason and the specific text in its WSManFault
// message; the failure says the shell was not found.
func TestLostShellReadsSpecificMessage(t *testing.T) {
	s, _ := plainServer(t, virtualHost("rdsh01", false, 0), winrmtest.Faults{LoseShell: true})
	c := plainCollector(t, s, winrm.Options{Retries: -1})
	got := c.Collect(context.Background(), evidence.HostRef{Name: "rdsh01", Address: "127.0.0.1", Roles: []string{evidence.RoleSessionHost}})
	if got.Failure == nil || !strings.Contains(got.Failure.Message, "the shell was not found on the server") || strings.Contains(got.Failure.Message, "invalid selectors") {
		t.Errorf("failure %+v: want the specific message", got.Failure)
	}
}

// TestKeyMetadataOffRulesNotEvaluable: collected with collection.key_metadata false, the
// rule that needs the GracePeriod key's LastWriteTime (RDS-GRACE-005, with a previous
// run in history) reports error (evidence missing: not evaluable), never pass; with
// key metadata the same host passes.
func TestKeyMetadataOffRulesNotEvaluable(t *testing.T) {
	now := time.Now().UTC()
	for _, km := range []bool{true, false} {
		ev := virtualHost("rdsh01", false, 0)
		when := now.AddDate(0, 0, -60)
		ev.Registry[1].LastWriteTime = &when
		s, _ := plainServer(t, ev, winrmtest.Faults{})
		c := plainCollector(t, s, winrm.Options{NoKeyMetadata: !km})
		got := c.Collect(context.Background(), evidence.HostRef{Name: "rdsh01", Address: "127.0.0.1", Roles: []string{evidence.RoleSessionHost}})
		if got.Status != evidence.StatusCollected {
			t.Fatalf("key_metadata %t: %+v", km, got.Failure)
		}
		hist := rules.MemHistory{}
		hist.Add("rdsh01", rules.HostSnapshot{RunID: "r1", At: now.AddDate(0, 0, -30), Collected: true, GraceDays: ptr(int64(90))})
		e := rules.Evaluate(rules.Input{Now: now, Hosts: []*facts.Facts{facts.Interpret(got)}, History: hist})
		var outcomes []rules.Outcome
		for _, r := range e.Results {
			if r.RuleID == "RDS-GRACE-005" {
				outcomes = append(outcomes, r.Outcome)
			}
		}
		want := rules.Pass
		if !km {
			want = rules.Error
		}
		if len(outcomes) != 1 || outcomes[0] != want {
			t.Errorf("key_metadata %t: RDS-GRACE-005 %v, want %s", km, outcomes, want)
		}
	}
}
