package samples

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rdsaudit/rdsaudit/collect/offline"
	"github.com/rdsaudit/rdsaudit/evidence"
)

// ScaledFleet is a generated fleet: the sample license servers plus n session hosts
// cloned, in turn, from the sample session hosts that can be collected.
type ScaledFleet struct {
	Evidence []*evidence.Evidence // in inventory order; Host is the inventory entry
}

// GroupSize is the number of session hosts per generated farm (group).
const GroupSize = 100

// Scale generates a fleet of n session hosts deterministically from the sample
// templates (the same n gives the same fleet on every machine): host i is
// RDSH-<i, 5 digits> in group farm-<i/GroupSize, 3 digits>, with the evidence of the
// i-th collectable sample session host (round robin), so the fleet carries the
// samples' mix of findings. The sample license servers come first, unchanged.
func Scale(n int) (*ScaledFleet, error) {
	if n < 1 {
		return nil, fmt.Errorf("scale: %d hosts: need at least 1", n)
	}
	work, err := os.MkdirTemp("", "rdsaudit-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if _, err := Extract(work); err != nil {
		return nil, err
	}
	evs, err := Evidence(work, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return nil, err
	}
	f := &ScaledFleet{}
	var templates []*evidence.Evidence
	for _, ev := range evs {
		switch {
		case ev.Host.HasRole(evidence.RoleLicenseServer):
			f.Evidence = append(f.Evidence, ev)
		case ev.Host.HasRole(evidence.RoleSessionHost) && ev.Status == evidence.StatusCollected:
			templates = append(templates, ev)
		}
	}
	for i := 0; i < n; i++ {
		ev := *templates[i%len(templates)] // shallow: the clones share the template's read-only sections
		ev.Host = evidence.HostRef{
			Name:    fmt.Sprintf("RDSH-%05d", i),
			Address: fmt.Sprintf("10.%d.%d.%d", 100+i/65536, i/256%256, i%256),
			Port:    5986,
			Roles:   []string{evidence.RoleSessionHost},
			Group:   fmt.Sprintf("farm-%03d", i/GroupSize),
			Tags:    []string{"generated"},
		}
		f.Evidence = append(f.Evidence, &ev)
	}
	return f, nil
}

// WriteEvidence writes each host's evidence document to dir/<host>.json, as an offline
// collector reads it (collection.source: offline).
func (f *ScaledFleet) WriteEvidence(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, ev := range f.Evidence {
		buf.Reset()
		if err := evidence.Encode(&buf, ev); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ev.Host.Name+offline.SuffixSnapshot), buf.Bytes(), 0o640); err != nil {
			return err
		}
	}
	return nil
}

// WriteInventory writes the fleet's inventory CSV (the columns config reads). endpoint,
// when not nil, gives a host's address and port (the simulator's loopback listener).
func (f *ScaledFleet) WriteInventory(w io.Writer, endpoint func(name string) (string, int, bool)) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"name", "address", "port", "roles", "group", "tags"}); err != nil {
		return err
	}
	for _, ev := range f.Evidence {
		h := ev.Host
		addr, port := h.Address, h.Port
		if endpoint != nil {
			if a, p, ok := endpoint(h.Name); ok {
				addr, port = a, p
			}
		}
		if err := cw.Write([]string{h.Name, addr, strconv.Itoa(port), strings.Join(h.Roles, ";"), h.Group, strings.Join(h.Tags, ";")}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
