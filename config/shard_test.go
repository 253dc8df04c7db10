package config

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, ok := range []string{"1/1", "1/3", "3/3", " 2/10 "} {
		if _, err := ParseShard(ok); err != nil {
			t.Errorf("ParseShard(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0/3", "4/3", "1/0", "-1/2", "a/b", "3", "1/2/3", "1/20000"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

// TestShardsPartition: for any N, shards 1/N … N/N are disjoint, cover the inventory,
// and give every host the same shard whatever the inventory order and name case.
func TestShardsPartition(t *testing.T) {
	var hosts []Host
	for i := range 500 {
		hosts = append(hosts, Host{Name: fmt.Sprintf("RDSH-%03d.corp.example", i)})
	}
	for _, n := range []int{1, 2, 3, 7, 10} {
		first := map[string]int{}
		for k := 1; k <= n; k++ {
			for _, h := range (Shard{K: k, N: n}).Select(hosts) {
				if prev, dup := first[h.Name]; dup {
					t.Fatalf("N=%d: %s in shards %d and %d", n, h.Name, prev, k)
				}
				first[h.Name] = k
			}
		}
		if len(first) != len(hosts) {
			t.Fatalf("N=%d: shards cover %d of %d hosts", n, len(first), len(hosts))
		}
		shuffled := append([]Host(nil), hosts...)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for k := 1; k <= n; k++ {
			for _, h := range (Shard{K: k, N: n}).Select(shuffled) {
				if first[h.Name] != k {
					t.Fatalf("N=%d: %s moved from shard %d to %d after reordering", n, h.Name, first[h.Name], k)
				}
			}
		}
		if n > 1 {
			for k := 1; k <= n; k++ {
				if c := len((Shard{K: k, N: n}).Select(hosts)); c < len(hosts)/n/2 {
					t.Errorf("N=%d: shard %d has %d hosts: badly unbalanced", n, k, c)
				}
			}
		}
	}
	if ShardOf("rdsh-001.CORP.example", 7) != ShardOf("RDSH-001.corp.example", 7) {
		t.Error("shard depends on name case")
	}
	// The split is a fixed function of the name: these values must never change, or
	// collectors of different versions would split one inventory differently.
	for name, want := range map[string]int{"RDSH-A01": 2, "LS01": 2, "CLIENT-01": 1} {
		if got := ShardOf(name, 3); got != want {
			t.Errorf("ShardOf(%s, 3) = %d, want %d", name, got, want)
		}
	}
}
