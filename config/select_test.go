package config

import (
	"strings"
	"testing"
)

func TestSelection(t *testing.T) {
	hosts := []Host{
		{Name: "RDSH-A01", Group: "farm-a"}, {Name: "RDSH-A02", Group: "farm-a"},
		{Name: "RDSH-B01", Group: "farm-b"}, {Name: "LS-01"},
	}
	names := func(hs []Host) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.Name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		sel     Selection
		want    string
		wantErr string
	}{
		{sel: Selection{}, want: "RDSH-A01,RDSH-A02,RDSH-B01,LS-01"},
		{sel: Selection{Hosts: []string{"rdsh-a*"}}, want: "RDSH-A01,RDSH-A02"},
		{sel: Selection{Hosts: []string{"LS-01", "rdsh-b01"}}, want: "RDSH-B01,LS-01"},
		{sel: Selection{Groups: []string{"FARM-B"}}, want: "RDSH-B01"},
		{sel: Selection{Hosts: []string{"*01"}, Groups: []string{"farm-*"}}, want: "RDSH-A01,RDSH-B01"},
		{sel: Selection{Hosts: []string{"rdsh-a01", "typo"}}, wantErr: "--hosts: no host name of the inventory matches typo"},
		{sel: Selection{Groups: []string{"farm-c"}}, wantErr: "--group: no group"},
		{sel: Selection{Hosts: []string{"[a"}}, wantErr: "malformed pattern"},
		{sel: Selection{Hosts: []string{"LS-01"}, Groups: []string{"farm-a"}}, wantErr: "no host of the inventory matches both"},
	} {
		got, err := tc.sel.Select(hosts)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: error %v, want %q", tc.sel, err, tc.wantErr)
			}
			continue
		}
		if err != nil || names(got) != tc.want {
			t.Errorf("%+v: %s, %v; want %s", tc.sel, names(got), err, tc.want)
		}
	}
	if got := ParseList([]string{"a, b", "c", ""}); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("ParseList: %q", got)
	}
}
