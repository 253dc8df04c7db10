package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rdsaudit/rdsaudit/collect/winrm"
	"github.com/rdsaudit/rdsaudit/collect/winrm/winrmtest"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// receivedCollection is the command line and stdin a simulator received, decoded from
// the SOAP it read.
func receivedCollection(t *testing.T, roles []string, opts winrm.Options) (cmdline string, stdin []byte) {
	t.Helper()
	var mu sync.Mutex
	capture := func(body []byte) {
		var env struct {
			Body struct {
				Command string `xml:"CommandLine>Command"`
				Streams []struct {
					Data string `xml:",chardata"`
				} `xml:"Send>Stream"`
			} `xml:"Body"`
		}
		if xml.Unmarshal(body, &env) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if env.Body.Command != "" {
			cmdline = env.Body.Command
		}
		for _, s := range env.Body.Streams {
			b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(s.Data))
			stdin = append(stdin, b...)
		}
	}
	ev := &evidence.Evidence{Schema: evidence.Schema, Host: evidence.HostRef{Name: "h1"}, Status: evidence.StatusCollected}
	s := winrmtest.NewServer("h1", ev, winrmtest.ServerOptions{Users: map[string]string{"u": "p"}, Capture: capture})
	defer s.Close()
	opts.Scheme, opts.Port, opts.Auth, opts.AllowBasicOverHTTP, opts.Retries = "http", s.Port, winrm.AuthBasic, true, -1
	c, err := winrm.New(opts, winrm.CredentialMap{"*": {Name: "t", Username: "u", Password: "p"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Collect(context.Background(), evidence.HostRef{Name: "h1", Address: "127.0.0.1", Roles: roles}); got.Status != evidence.StatusCollected {
		t.Fatalf("collect: %+v", got.Failure)
	}
	return cmdline, stdin
}

// printedCollection splits `rdsaudit script` output into the command line, the
// parameters line, the script and the two digests it prints.
func printedCollection(t *testing.T, out string) (cmdline, params, script, scriptSum, cmdSum string) {
	t.Helper()
	head, script, ok := strings.Cut(out, scriptMarker+"\n")
	if !ok || !strings.HasSuffix(script, "\n") {
		t.Fatalf("no script in the output:\n%s", out)
	}
	script = strings.TrimSuffix(script, "\n")
	lines := strings.Split(head, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "# command line (sha256 "):
			cmdSum = strings.TrimSuffix(strings.TrimPrefix(l, "# command line (sha256 "), "):")
			cmdline = strings.TrimPrefix(lines[i+1], "#   ")
		case strings.HasPrefix(l, "# stdin line 1"):
			params = strings.TrimPrefix(lines[i+1], "#   ")
		case strings.HasPrefix(l, "# stdin from line 2"):
			scriptSum = l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	return cmdline, params, script, scriptSum, cmdSum
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestScriptCommandPrintsWhatTheHostReceives: `rdsaudit script` prints exactly the
// command line, the parameters and the script a host receives (decoded from the SOAP
// the simulator read), with their SHA-256; --config honours collection.key_metadata.
func TestScriptCommandPrintsWhatTheHostReceives(t *testing.T) {
	chdirRoot(t)
	for _, tc := range []struct {
		name  string
		args  []string
		env   string
		roles []string
		opts  winrm.Options
	}{
		{"defaults", []string{"script"}, "", []string{evidence.RoleSessionHost}, winrm.Options{}},
		{"license server", []string{"script", "--roles", "session_host,license_server"}, "", []string{evidence.RoleSessionHost, evidence.RoleLicenseServer}, winrm.Options{}},
		{"key_metadata false", []string{"script", "--roles", "license_server", "--config", "samples/config.yaml"}, "false", []string{evidence.RoleLicenseServer}, winrm.Options{NoKeyMetadata: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("RDSAUDIT_COLLECTION_KEY_METADATA", tc.env)
			}
			code, out, errOut := rdsaudit(t, sampleNow, tc.args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			cmdline, params, script, scriptSum, cmdSum := printedCollection(t, out)
			gotCmd, gotStdin := receivedCollection(t, tc.roles, tc.opts)
			gotParams, gotScript, _ := bytes.Cut(gotStdin, []byte("\n"))
			if cmdline != gotCmd || params != string(gotParams) || script != string(gotScript) {
				t.Errorf("printed collection differs from what the host received:\ncommand %q\n    got %q\nparams %s\n   got %s\nscript equal: %t", cmdline, gotCmd, params, gotParams, script == string(gotScript))
			}
			if scriptSum != sum(string(gotScript)) || cmdSum != sum(gotCmd) {
				t.Errorf("digests %s %s, want %s %s", scriptSum, cmdSum, sum(string(gotScript)), sum(gotCmd))
			}
			if strings.Contains(script, "DefinePInvokeMethod") == tc.opts.NoKeyMetadata {
				t.Errorf("key_metadata %t not honoured", !tc.opts.NoKeyMetadata)
			}
		})
	}
	if code, _, _ := rdsaudit(t, sampleNow, "script", "--roles", "domain_controller"); code != ExitUsage {
		t.Errorf("unknown role: exit %d, want %d", code, ExitUsage)
	}
}
